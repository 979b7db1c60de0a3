"""The reference listing filter: every element of the body seen through expat.

This is the specification. expat reads the whole body, namespace-aware (``D:``, ``d:``
and a default ``xmlns="DAV:"`` are the same thing); each ``<response>`` is dropped,
rewritten or cloned as the policy decides once its end tag is read, and the output is
made of slices of the input (see ``edits``). A body expat refuses raises ListingError
with the byte offset expat gives.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Sequence
from typing import Final
from xml.parsers import expat

from shardproxy.listing.edits import (
    Edit,
    is_2xx,
    last_segment,
    ordered_ranges,
    render,
)
from shardproxy.listing.errors import Filtered, ListingError
from shardproxy.listing.href import Href, parse_href, xml_escape
from shardproxy.listing.policy import ResponsePolicy
from shardproxy.listing.safexml import NAMESPACE_SEPARATOR as _NS_SEP
from shardproxy.listing.safexml import ForbiddenXml, new_parser, release

_MULTISTATUS: Final = "DAV: multistatus"
_RESPONSE: Final = "DAV: response"
_HREF: Final = "DAV: href"
_PROPSTAT: Final = "DAV: propstat"
_PROP: Final = "DAV: prop"
_STATUS: Final = "DAV: status"
_DISPLAYNAME: Final = "DAV: displayname"
# A start tag from its "<" to its ">", skipping quoted attribute values (which may hold
# ">"). expat has already checked the tag, so this only has to find where it ends.
_START_TAG = re.compile(rb"""<[^>"']*(?:(?:"[^"]*"|'[^']*')[^>"']*)*>""")
_TAG_NAME = re.compile(rb"<([^ \t\r\n/>]+)")
_ASCII_PROBE: Final = "<?xml version='1.0'?>/=\"abcXYZ019 \t\r\n"
_NOT_A_SEQUENCE: Final = "ResponsePolicy.client_paths must return a sequence of paths"


def filter_reference(
    policy: ResponsePolicy, body: bytes, *, base_path: str | None = None
) -> Filtered:
    """The listing ``body`` as ``policy`` shows it; ListingError if it is malformed.

    ``base_path`` is the percent-encoded path of the request sent to the backend; it
    resolves relative hrefs.
    """
    return _Reader(policy, body, base_path).run()


def check_root(head: bytes, name: str, at: int) -> None:
    """Raise unless the root element, whose first two bytes are head, is a DAV: multistatus."""
    if head[:1] != b"<" or head[1:] == b"\x00":
        raise ListingError(
            f"multistatus is not in an ASCII-compatible encoding (root element at byte {at})"
        )
    if name != _MULTISTATUS:
        uri, sep, local = name.rpartition(_NS_SEP)
        clark = f"{{{uri}}}{local}" if sep else local
        raise ListingError(
            f"expected a {{DAV:}}multistatus root element at byte {at}, found {clark}"
        )


def _declared_codec(encoding: str) -> str:
    """The codec of an XML declaration's encoding; raise if this filter cannot write it."""
    try:
        codec = codecs.lookup(encoding).name
        ascii_compatible = _ASCII_PROBE.encode(codec) == _ASCII_PROBE.encode("ascii")
    except (LookupError, UnicodeError):
        ascii_compatible = False
    if not ascii_compatible:
        raise ListingError(
            f"multistatus declares encoding {encoding!r}, which this filter cannot "
            "rewrite (it needs UTF-8 or another ASCII-compatible encoding)"
        )
    return codec


class _Element:
    """Where one element sits in the body: byte offsets."""

    __slots__ = ("content_end", "content_start", "empty", "end", "start")

    def __init__(self, start: int, content_start: int, empty: bool) -> None:
        self.start = start  # its "<"
        self.content_start = content_start  # just past the start tag
        self.empty = empty  # written as <x/>
        self.content_end = content_start  # the "<" of its end tag
        self.end = content_start  # just past its end tag


class _Response:
    """What the reader learnt about the <response> being read."""

    __slots__ = ("displaynames", "hrefs", "propstats", "start")

    def __init__(self, start: int) -> None:
        self.start = start
        self.hrefs: list[tuple[_Element, str]] = []  # element and its text
        self.propstats: list[tuple[_Element, bool]] = []  # element and "status is 2xx"
        self.displaynames: list[_Element] = []


class _Reader:
    """One pass of expat over one body, writing the output as responses end."""

    def __init__(self, policy: ResponsePolicy, body: bytes, base_path: str | None) -> None:
        self._policy = policy
        self._body = body
        self._base_path = base_path
        self._out: list[bytes] = []
        self._emitted = 0  # every byte before this offset has been written or dropped
        self._depth = 0
        self._response: _Response | None = None
        self._href: _Element | None = None
        self._propstat: _Element | None = None
        self._propstat_ok = False
        self._text: list[str] = []
        self._text_encoding = "utf-8"
        self._text_errors = "strict"
        self.responses_in = 0
        self.responses_out = 0
        self.bad_hrefs = 0
        parser = new_parser()
        parser.buffer_text = True
        parser.StartElementHandler = self._start
        parser.EndElementHandler = self._end
        parser.XmlDeclHandler = self._xml_decl
        self._parser = parser

    def run(self) -> Filtered:
        parser = self._parser
        try:
            self._parse(parser)
        except ForbiddenXml as exc:
            raise ListingError(f"multistatus refused: {exc}") from None
        finally:
            # The handlers are bound methods: dropping them frees this reader at once.
            release(parser)
        self._pass_to(len(self._body))
        return Filtered(b"".join(self._out), self.responses_in, self.responses_out, self.bad_hrefs)

    def _parse(self, parser: expat.XMLParserType) -> None:
        try:
            parser.Parse(self._body, False)
        except expat.ExpatError as exc:
            raise ListingError(
                f"malformed multistatus at byte {parser.ErrorByteIndex}: "
                f"{expat.ErrorString(exc.code)}"
            ) from None
        try:
            parser.Parse(b"", True)
        except expat.ExpatError as exc:
            inside = ""
            if self._response is not None:
                inside = f" inside the <response> that starts at byte {self._response.start}"
            raise ListingError(
                f"multistatus ended early after {len(self._body)} bytes{inside}: "
                f"{expat.ErrorString(exc.code)}"
            ) from None

    # -- offsets ------------------------------------------------------------------------

    def _pass_to(self, offset: int) -> None:
        """Write the body up to offset unchanged."""
        if offset > self._emitted:
            self._out.append(self._body[self._emitted : offset])
            self._emitted = offset

    def _open(self, start: int) -> _Element:
        """The element whose start tag begins at byte start."""
        tag = _START_TAG.match(self._body, start)
        if tag is None:  # pragma: no cover - expat accepted the tag, so it is there
            raise ListingError(f"cannot find the end of the start tag at byte {start}")
        end = tag.end()
        return _Element(start, end, self._body[end - 2] == 0x2F)  # "/>"

    def _close(self, element: _Element, at: int) -> None:
        """Note where element ends, given expat's offset for its end event."""
        if element.empty:
            return
        element.content_end = at
        # The end tag is "</name S?>": no quotes, so the first ">" closes it.
        element.end = self._body.index(b">", at) + 1

    def _capture_text(self) -> None:
        self._text.clear()
        self._parser.CharacterDataHandler = self._text.append

    def _captured_text(self) -> str:
        self._parser.CharacterDataHandler = None
        return "".join(self._text)

    # -- expat handlers -----------------------------------------------------------------

    def _start(self, name: str, _attributes: dict[str, str]) -> None:
        level = self._depth
        self._depth = level + 1
        at = self._parser.CurrentByteIndex
        response = self._response
        if response is not None:
            if level == 2:
                if name == _HREF:
                    self._href = self._open(at)
                    self._capture_text()
                elif name == _PROPSTAT:
                    self._propstat = self._open(at)
                    self._propstat_ok = False
            elif level == 3 and self._propstat is not None:
                if name == _PROP:
                    # Most elements are props: give them handlers that look for little.
                    self._parser.StartElementHandler = self._start_in_prop
                    self._parser.EndElementHandler = self._end_in_prop
                elif name == _STATUS:
                    self._capture_text()
            return
        if level == 1:
            self._pass_to(at)
            if name == _RESPONSE:
                self._response = _Response(at)
                self.responses_in += 1
        elif level == 0:
            check_root(self._body[at : at + 2], name, at)

    def _end(self, name: str) -> None:
        self._depth = level = self._depth - 1
        at = self._parser.CurrentByteIndex
        response = self._response
        if response is None:
            if level <= 1:
                self._pass_to(at)
            return
        if level == 2:
            if name == _HREF and self._href is not None:
                self._close(self._href, at)
                response.hrefs.append((self._href, self._captured_text()))
                self._href = None
            elif name == _PROPSTAT and self._propstat is not None:
                self._close(self._propstat, at)
                response.propstats.append((self._propstat, self._propstat_ok))
                self._propstat = None
        elif level == 3:
            if name == _STATUS and self._propstat is not None:
                self._propstat_ok = is_2xx(self._captured_text())
        elif level == 1:
            element = self._open(response.start)
            self._close(element, at)
            self._response = None
            self._finish(response, element.end)

    def _start_in_prop(self, name: str, _attributes: dict[str, str]) -> None:
        level = self._depth
        self._depth = level + 1
        if level == 4 and name == _DISPLAYNAME and self._response is not None:
            self._response.displaynames.append(self._open(self._parser.CurrentByteIndex))

    def _end_in_prop(self, name: str) -> None:
        self._depth = level = self._depth - 1
        if level == 4:
            if name == _DISPLAYNAME and self._response is not None:
                self._close(self._response.displaynames[-1], self._parser.CurrentByteIndex)
        elif level == 3:  # the end of <prop>
            self._parser.StartElementHandler = self._start
            self._parser.EndElementHandler = self._end

    def _xml_decl(self, _version: str | None, encoding: str | None, _standalone: int) -> None:
        if encoding is not None and _declared_codec(encoding) != "utf-8":
            # New text goes out as ASCII with character references: valid in any
            # ASCII-compatible encoding.
            self._text_encoding, self._text_errors = "ascii", "xmlcharrefreplace"

    # -- deciding and writing one response ----------------------------------------------

    def _finish(self, response: _Response, end: int) -> None:
        """Write the response that ends at byte end as the policy says, or drop it."""
        self._emitted = end
        if not response.hrefs:
            self.bad_hrefs += 1
            return
        mapped: list[tuple[_Element, Href | None, Sequence[str]]] = []
        for element, href_text in response.hrefs:
            href = parse_href(href_text, self._base_path)
            if href is None:
                self.bad_hrefs += 1
                mapped.append((element, None, ()))
                continue
            paths = self._policy.client_paths(href.decoded)
            if isinstance(paths, str):
                raise TypeError(_NOT_A_SEQUENCE)
            mapped.append((element, href, paths))
        if not any(paths for _element, _href, paths in mapped):
            return
        propstats = [(element.start, element.end, ok) for element, ok in response.propstats]
        ranges = ordered_ranges(response.start, end, propstats)
        if len(mapped) == 1:
            element, href, paths = mapped[0]
            assert href is not None
            for path in paths:
                edits: list[Edit] = []
                text = href.text_for(path)
                if text is not None:
                    edits.append(self._text_edit(element, text))
                if len(paths) > 1:
                    name = last_segment(path)
                    edits.extend(self._text_edit(dn, name) for dn in response.displaynames)
                    edits.sort(key=lambda edit: edit[0])
                render(self._out, self._body, ranges, edits)
            self.responses_out += len(paths)
            return
        # RFC 4918 lets a status-only response list several hrefs: each is mapped on
        # its own (to nothing, one or several href elements) in the one response.
        edits = []
        for element, href, paths in mapped:
            if href is not None and len(paths) == 1:
                text = href.text_for(paths[0])
                if text is not None:
                    edits.append(self._text_edit(element, text))
            elif href is None or not paths:
                edits.append((element.start, element.end, b""))
            else:
                copies = [self._href_element(element, href, path) for path in paths]
                edits.append((element.start, element.end, b"".join(copies)))
        render(self._out, self._body, ranges, edits)
        self.responses_out += 1

    def _text_edit(self, element: _Element, text: str) -> Edit:
        """An edit that sets element's text content."""
        data = xml_escape(text).encode(self._text_encoding, self._text_errors)
        if not element.empty:
            return element.content_start, element.content_end, data
        # <x a="1"/> written out with content: <x a="1">content</x>.
        start_tag = self._body[element.start : element.content_start]
        name_match = _TAG_NAME.match(start_tag)
        name = name_match.group(1) if name_match else b""
        expanded = start_tag[:-2].rstrip(b" \t\r\n") + b">" + data + b"</" + name + b">"
        return element.start, element.end, expanded

    def _href_element(self, element: _Element, href: Href, path: str) -> bytes:
        """A copy of an href element that shows path."""
        text = href.text_for(path)
        if text is None:
            return self._body[element.start : element.end]
        _start, _end, data = self._text_edit(element, text)
        if element.empty:
            return data
        body = self._body
        return (
            body[element.start : element.content_start]
            + data
            + body[element.content_end : element.end]
        )
