"""The one XML parser factory refuses DTDs, entity declarations and external entities."""

from __future__ import annotations

from xml.parsers import expat

import pytest

from shardproxy.listing.safexml import ForbiddenXml, new_parser, release

LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE m [<!ENTITY a "ha">'
    + b"".join(b'<!ENTITY %c "%s">' % (98 + i, (b"&%c;" % (97 + i)) * 10) for i in range(8))
    + b']><m xmlns="DAV:">&i;</m>'
)


def parse(body: bytes, texts: list[str] | None = None) -> list[str]:
    """The element names a factory parser reports for ``body`` (texts into ``texts``)."""
    names: list[str] = []
    parser = new_parser()
    parser.StartElementHandler = lambda name, _attributes: names.append(name)
    if texts is not None:
        parser.CharacterDataHandler = texts.append
    try:
        parser.Parse(body, True)
    finally:
        release(parser)
    return names


def test_plain_namespaced_xml_parses() -> None:
    assert parse(b'<D:multistatus xmlns:D="DAV:"><D:response/></D:multistatus>') == [
        "DAV: multistatus",
        "DAV: response",
    ]


def test_nested_entities_are_refused_before_any_expansion() -> None:
    texts: list[str] = []
    with pytest.raises(ForbiddenXml, match=r"DOCTYPE \(m\) at byte \d+"):
        parse(LAUGHS, texts)
    assert texts == []


def test_a_doctype_without_entities_is_refused() -> None:
    with pytest.raises(ForbiddenXml, match="DOCTYPE"):
        parse(b'<!DOCTYPE multistatus><multistatus xmlns="DAV:"/>')


def test_an_external_dtd_is_refused() -> None:
    with pytest.raises(ForbiddenXml, match="DOCTYPE"):
        parse(b'<!DOCTYPE m SYSTEM "file:///etc/passwd"><m>&x;</m>')


def test_an_undeclared_entity_is_an_error_not_an_expansion() -> None:
    with pytest.raises(expat.ExpatError, match="undefined entity"):
        parse(b"<m>&x;</m>")


def test_the_refusing_handlers_answer_even_when_doctype_handler_is_bypassed() -> None:
    # An entity declaration reaches its own handler when the DOCTYPE one is not there.
    parser = new_parser()
    parser.StartDoctypeDeclHandler = None
    with pytest.raises(ForbiddenXml, match="entity 'a'"):
        parser.Parse(b'<!DOCTYPE m [<!ENTITY a "x">]><m>&a;</m>', True)
    release(parser)
