"""The one way shardproxy makes an XML parser: expat that refuses DTDs and entities.

A WebDAV reply has no DOCTYPE. One with nested entity declarations (the "billion
laughs") makes a few kilobytes expand to gigabytes in expat's memory and hold the
event loop while it does; an external entity would make the parser read files or URLs.
So every parser made here stops at the first DOCTYPE, entity declaration or external
reference, before expat expands anything, with ``ForbiddenXml`` naming the byte offset.
Pure: no I/O.
"""

from __future__ import annotations

from typing import Final, NoReturn
from xml.parsers import expat

# expat reports namespaced names as "<uri><separator><local name>".
NAMESPACE_SEPARATOR: Final = " "


class ForbiddenXml(ValueError):
    """The body declares a DTD or entities; the message says what and at which byte."""


def new_parser() -> expat.XMLParserType:
    """A namespace-aware expat parser (names as ``"DAV: href"``) that refuses DTDs.

    Callers set their own handlers for elements and text; the handlers set here must
    stay: replacing ``StartDoctypeDeclHandler``, ``EntityDeclHandler`` or
    ``ExternalEntityRefHandler`` would open the door again.
    """
    parser = expat.ParserCreate(namespace_separator=NAMESPACE_SEPARATOR)
    # Parameter entities (and with them an external DTD subset) are never read.
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)

    def doctype(name: str, *_ids: object) -> NoReturn:
        raise ForbiddenXml(
            f"XML body has a DOCTYPE ({name}) at byte {parser.CurrentByteIndex}; "
            "a WebDAV reply has none, and its entities are not expanded here"
        )

    def entity(name: str, *_rest: object) -> NoReturn:
        raise ForbiddenXml(
            f"XML body declares the entity {name!r} at byte {parser.CurrentByteIndex}; "
            "entities are not expanded here"
        )

    def external(_context: str, _base: str | None, system_id: str | None, *_: object) -> NoReturn:
        raise ForbiddenXml(
            f"XML body refers to the external entity {system_id!r} at byte "
            f"{parser.CurrentByteIndex}; nothing outside the body is read"
        )

    parser.StartDoctypeDeclHandler = doctype
    parser.EntityDeclHandler = entity
    parser.ExternalEntityRefHandler = external
    return parser


def release(parser: expat.XMLParserType) -> None:
    """Drop every handler, so the objects they are bound to are freed at once.

    The refusing handlers close over the parser itself: without this the parser and
    everything its handlers reach live until the garbage collector finds the cycle.
    """
    parser.StartElementHandler = parser.EndElementHandler = None
    parser.CharacterDataHandler = parser.XmlDeclHandler = None
    parser.StartDoctypeDeclHandler = parser.EntityDeclHandler = None
    parser.ExternalEntityRefHandler = None
