"""Streaming filter for WebDAV 207 multistatus bodies: bytes in, bytes out, no I/O.

The body is parsed incrementally with expat (namespace-aware, so ``D:``, ``d:`` and a
default ``xmlns="DAV:"`` are the same thing). Each ``<response>`` is held until its end
tag, then dropped, rewritten or cloned as a :class:`ResponsePolicy` decides. Everything
the filter does not change is copied byte for byte from the input: output is built from
slices of the input located by expat's byte offsets, never by re-serialising, so memory
stays bounded by the largest single ``<response>`` plus one input chunk.

Inside every kept response, propstats whose status is 2xx are moved before the others,
because rclone 1.60.1 reads only the first propstat's status and drops an entry whose
first propstat says 404 (NzbDav puts the 404 ones first).
"""

from __future__ import annotations

import codecs
import functools
import re
from collections.abc import Sequence
from typing import Final, Protocol
from urllib.parse import quote, unquote
from xml.parsers import expat

__all__ = ["MultistatusError", "MultistatusFilter", "ResponsePolicy"]

# expat reports namespaced names as "<uri><separator><local name>".
_NS_SEP: Final = " "
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
# An href split into scheme+authority (kept verbatim), path, and query/fragment.
_HREF_PARTS = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*:)?(//[^/?#]*)?([^?#]*)(.*)", re.DOTALL)
_DOT_SEGMENT = re.compile(r"(?:^|/)\.\.?(?:/|$)")
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_STATUS_CODE = re.compile(r"[ \t\r\n]*(?:HTTP/[^ \t\r\n]+[ \t\r\n]+)?([0-9]{3})(?![0-9])")
# Characters XML 1.0 cannot carry at all, not even as character references.
_NOT_XML_CHAR = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_XML_SPACE: Final = " \t\r\n"
# Characters left unescaped when re-encoding a path: RFC 3986 pchar minus ":" (a colon in
# a first segment would read as a scheme).
_PATH_SAFE: Final = "/!$&'()*+,;=@"
_ASCII_PROBE: Final = "<?xml version='1.0'?>/=\"abcXYZ019 \t\r\n"


class MultistatusError(ValueError):
    """The backend's multistatus is malformed or truncated.

    The message says what was wrong and at which byte offset of the body.
    """


class ResponsePolicy(Protocol):
    """Decides what becomes of each ``<response>`` of a multistatus."""

    def client_paths(self, backend_path: str) -> Sequence[str]:
        """Decoded backend href path of one <response> -> the decoded client paths to show it as.

        () drops the response; (p,) rewrites its href to p; (p, q, ...) emits the response
        once per path (clones: each clone's <displayname> text is replaced by the last
        segment of its path).
        """
        ...


def _clark(name: str) -> str:
    """expat's "uri local" name in Clark notation, for messages."""
    uri, sep, local = name.rpartition(_NS_SEP)
    return f"{{{uri}}}{local}" if sep else local


def _xml_escape(text: str) -> str:
    if "&" in text:
        text = text.replace("&", "&amp;")
    if "<" in text:
        text = text.replace("<", "&lt;")
    if ">" in text:
        text = text.replace(">", "&gt;")
    if "\r" in text:
        text = text.replace("\r", "&#13;")
    return text


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 section 5.2.4, for paths."""
    parts = path.split("/")
    kept: list[str] = []
    for segment in parts:
        if segment == "..":
            if len(kept) > 1 or (kept and kept[0]):
                kept.pop()
        elif segment != ".":
            kept.append(segment)
    if parts[-1] in (".", ".."):
        kept.append("")  # "/a/b/.." names the folder "/a/"
    return "/".join(kept)


@functools.lru_cache(maxsize=256)
def _quote_path(path: str) -> str:
    """Percent-encode a decoded path (the same few leading parts recur in a listing)."""
    return quote(path, safe=_PATH_SAFE)


def _last_segment(path: str) -> str:
    return path.rstrip("/").rpartition("/")[2]


def _edit_start(edit: tuple[int, int, bytes]) -> int:
    return edit[0]


def _is_2xx(status: str) -> bool:
    match = _STATUS_CODE.match(status)
    return match is not None and 200 <= int(match.group(1)) < 300


class _Element:
    """Where one tracked element sits in the input: absolute byte offsets."""

    __slots__ = ("content_end", "content_start", "empty", "end", "start")

    def __init__(self, start: int, content_start: int, empty: bool) -> None:
        self.start = start  # its "<"
        self.content_start = content_start  # just past the start tag
        self.empty = empty  # written as <x/>
        self.content_end = content_start  # the "<" of its end tag
        self.end = content_start  # just past its end tag


class _Href:
    """One href of a response, split so that a rewrite keeps what it does not change."""

    __slots__ = ("decoded", "lead", "prefix", "raw_path", "rest", "trail")

    def __init__(
        self,
        *,
        lead: str,
        prefix: str,
        raw_path: str,
        rest: str,
        trail: str,
        decoded: str,
    ) -> None:
        self.lead = lead  # whitespace before the URL in the element text
        self.prefix = prefix  # scheme and authority, verbatim ("" for a path)
        self.raw_path = raw_path  # percent-encoded path
        self.rest = rest  # query and fragment, verbatim
        self.trail = trail
        self.decoded = decoded  # percent-decoded path: what the policy sees

    def text_for(self, client_path: str) -> str | None:
        """The element text that shows this href as client_path; None if it is unchanged."""
        if client_path == self.decoded:
            return None
        return self.lead + self.prefix + self._encode(client_path) + self.rest + self.trail

    def _encode(self, client_path: str) -> str:
        # Keep the raw form of the longest tail of segments that client_path shares with
        # the backend path, so only the changed leading part is re-encoded.
        raw, decoded = self.raw_path, self.decoded
        if raw == decoded:  # nothing percent-encoded: raw offsets are decoded offsets
            at = decoded.find("/")
            while at != -1 and not client_path.endswith(decoded[at:]):
                at = decoded.find("/", at + 1)
            if at == -1:
                return _quote_path(client_path)
            return _quote_path(client_path[: len(client_path) - len(decoded) + at]) + raw[at:]
        segments = raw.split("/")
        head = client_path
        kept = 0
        for raw_segment in reversed(segments[1:]):
            segment = unquote(raw_segment) if "%" in raw_segment else raw_segment
            if not head.endswith("/" + segment):
                break
            head = head[: len(head) - len(segment) - 1]
            kept += 1
        if not kept:
            return _quote_path(head)
        return _quote_path(head) + "/" + "/".join(segments[len(segments) - kept :])


class _Response:
    """What the filter learnt about the <response> being read."""

    __slots__ = ("displaynames", "hrefs", "propstats", "start")

    def __init__(self, start: int) -> None:
        self.start = start
        self.hrefs: list[tuple[_Element, str]] = []  # element and its text
        self.propstats: list[tuple[_Element, bool]] = []  # element and "status is 2xx"
        self.displaynames: list[_Element] = []


class MultistatusFilter:
    """Filters a 207 multistatus body as it streams, one <response> at a time.

    Call :meth:`feed` with each chunk of the backend's body and send what it returns;
    call :meth:`close` at the end of the body and send what it returns. Both raise
    :class:`MultistatusError` when the body is not a well-formed DAV: multistatus.

    ``base_path`` is the percent-encoded path of the request sent to the backend; it
    resolves relative hrefs (those are written back as absolute paths when rewritten).
    Without it, a relative href reaches the policy as the relative decoded path.
    """

    responses_in: int
    """<response> elements read."""
    responses_out: int
    """<response> elements written (a cloned response counts once per clone)."""
    bad_hrefs: int
    """hrefs that could not be decoded (or were missing); their responses are dropped."""

    def __init__(self, policy: ResponsePolicy, *, base_path: str | None = None) -> None:
        self._policy = policy
        self._base_path = base_path
        self.responses_in = 0
        self.responses_out = 0
        self.bad_hrefs = 0
        # The input not yet written or dropped: _buf[0] is byte _base of the stream.
        self._buf = bytearray()
        self._base = 0
        self._emitted = 0  # every byte before this offset has been written or dropped
        self._out: list[bytes | bytearray] = []
        self._depth = 0  # open elements
        self._response: _Response | None = None
        self._element: _Element | None = None  # the open href
        self._propstat: _Element | None = None  # the open propstat
        self._text: list[str] = []
        self._propstat_ok = False
        self._text_encoding = "utf-8"
        self._text_errors = "strict"
        self._failure: MultistatusError | None = None
        self._closed = False

        parser = expat.ParserCreate(namespace_separator=_NS_SEP)
        parser.buffer_text = True
        parser.StartElementHandler = self._start
        parser.EndElementHandler = self._end
        parser.XmlDeclHandler = self._xml_decl
        parser.StartDoctypeDeclHandler = self._doctype
        self._parser = parser

    # -- public interface -------------------------------------------------------------

    def feed(self, data: bytes) -> bytes:
        """Take the next chunk of the body; return the output that is ready (maybe b"")."""
        if self._closed:
            raise RuntimeError("MultistatusFilter.feed() called after close()")
        if self._failure is not None:
            raise self._failure
        if not data:
            return b""
        self._buf += data
        self._parse(data, final=False)
        return self._take_output()

    def close(self) -> bytes:
        """End of the body: return the rest of the output; raise if the body is incomplete."""
        if self._closed:
            return b""
        if self._failure is not None:
            raise self._failure
        self._parse(b"", final=True)
        self._closed = True
        self._pass_to(self._base + len(self._buf))
        return self._take_output()

    # -- parsing ----------------------------------------------------------------------

    def _parse(self, data: bytes, *, final: bool) -> None:
        try:
            self._parser.Parse(data, final)
        except expat.ExpatError as exc:
            reason = expat.ErrorString(exc.code)
            if final:
                where = ""
                if self._response is not None:
                    where = f" inside the <response> that starts at byte {self._response.start}"
                message = (
                    f"multistatus ended early after {self._base + len(self._buf)} bytes"
                    f"{where}: {reason}"
                )
            else:
                message = (
                    f"malformed multistatus at byte {self._parser.ErrorByteIndex} "
                    f"(line {exc.lineno}, column {exc.offset}): {reason}"
                )
            self._failure = MultistatusError(message)
            raise self._failure from None
        except MultistatusError as exc:
            self._failure = exc
            raise
        except BaseException:
            self._failure = MultistatusError("multistatus filter stopped by an earlier error")
            raise

    def _take_output(self) -> bytes:
        out = b"".join(self._out)
        self._out.clear()
        # Forget the input that is done with; what remains is the open <response> (or
        # the bytes since the last event) plus the part of the chunk expat still holds.
        done = self._emitted - self._base
        if done:
            del self._buf[:done]
            self._base = self._emitted
        return out

    def _pass_to(self, offset: int) -> None:
        """Write the input up to offset unchanged."""
        if offset > self._emitted:
            self._out.append(self._buf[self._emitted - self._base : offset - self._base])
            self._emitted = offset

    def _open(self, start: int) -> _Element:
        """The element whose start tag begins at byte start."""
        tag = _START_TAG.match(self._buf, start - self._base)
        if tag is None:  # pragma: no cover - expat accepted the tag, so it is there
            raise MultistatusError(f"cannot find the end of the start tag at byte {start}")
        end = tag.end() + self._base
        return _Element(start, end, self._buf[end - self._base - 2] == 0x2F)  # "/>"

    def _close(self, element: _Element, at: int) -> None:
        """Note where element ends, given expat's offset for its end event."""
        if element.empty:
            return
        element.content_end = at
        # The end tag is "</name S?>": no quotes, so the first ">" closes it.
        element.end = self._buf.index(b">", at - self._base) + 1 + self._base

    def _capture_text(self) -> None:
        self._text.clear()
        self._parser.CharacterDataHandler = self._text.append

    def _captured_text(self) -> str:
        self._parser.CharacterDataHandler = None
        return "".join(self._text)

    # -- expat handlers ---------------------------------------------------------------

    def _start(self, name: str, _attributes: dict[str, str]) -> None:
        level = self._depth
        self._depth = level + 1
        response = self._response
        if response is not None:
            if level == 2:
                if name == _HREF:
                    self._element = self._open(self._parser.CurrentByteIndex)
                    self._capture_text()
                elif name == _PROPSTAT:
                    self._propstat = self._open(self._parser.CurrentByteIndex)
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
            at = self._parser.CurrentByteIndex
            self._pass_to(at)
            if name == _RESPONSE:
                self._response = _Response(at)
                self.responses_in += 1
        elif level == 0:
            self._root(name)

    def _end(self, name: str) -> None:
        self._depth = level = self._depth - 1
        response = self._response
        if response is not None:
            if level == 2:
                if name == _HREF and self._element is not None:
                    self._close(self._element, self._parser.CurrentByteIndex)
                    response.hrefs.append((self._element, self._captured_text()))
                    self._element = None
                elif name == _PROPSTAT and self._propstat is not None:
                    self._close(self._propstat, self._parser.CurrentByteIndex)
                    response.propstats.append((self._propstat, self._propstat_ok))
                    self._propstat = None
            elif level == 3:
                if name == _STATUS and self._propstat is not None:
                    self._propstat_ok = _is_2xx(self._captured_text())
            elif level == 1:
                element = self._open(response.start)
                self._close(element, self._parser.CurrentByteIndex)
                self._response = None
                self._finish(response, element.end)
            return
        if level <= 1:
            self._pass_to(self._parser.CurrentByteIndex)

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

    def _root(self, name: str) -> None:
        at = self._parser.CurrentByteIndex
        head = self._buf[at - self._base : at - self._base + 2]
        if head[:1] != b"<" or head[1:] == b"\x00":
            raise MultistatusError(
                f"multistatus is not in an ASCII-compatible encoding (root element at byte {at})"
            )
        if name != _MULTISTATUS:
            raise MultistatusError(
                f"expected a {{DAV:}}multistatus root element at byte {at}, found {_clark(name)}"
            )
        self._pass_to(at)

    def _xml_decl(self, _version: str | None, encoding: str | None, _standalone: int) -> None:
        if encoding is None:
            return
        try:
            codec = codecs.lookup(encoding).name
            ascii_compatible = _ASCII_PROBE.encode(codec) == _ASCII_PROBE.encode("ascii")
        except (LookupError, UnicodeError):
            ascii_compatible = False
        if not ascii_compatible:
            raise MultistatusError(
                f"multistatus declares encoding {encoding!r}, which this filter cannot "
                "rewrite (it needs UTF-8 or another ASCII-compatible encoding)"
            )
        if codec != "utf-8":
            # New text goes out as ASCII with character references: valid in any
            # ASCII-compatible encoding.
            self._text_encoding, self._text_errors = "ascii", "xmlcharrefreplace"

    def _doctype(self, name: str, *_ids: object) -> None:
        raise MultistatusError(
            f"multistatus has a DOCTYPE ({name}) at byte {self._parser.CurrentByteIndex}; "
            "a WebDAV reply has none, and its entities are not expanded here"
        )

    # -- deciding and writing one response --------------------------------------------

    def _finish(self, response: _Response, end: int) -> None:
        """Write the response that ends at byte end as the policy says, or drop it."""
        self._emitted = end
        if not response.hrefs:
            self.bad_hrefs += 1
            return
        mapped: list[tuple[_Element, _Href | None, Sequence[str]]] = []
        for element, href_text in response.hrefs:
            href = self._parse_href(href_text)
            if href is None:
                self.bad_hrefs += 1
                mapped.append((element, None, ()))
                continue
            paths = self._policy.client_paths(href.decoded)
            if isinstance(paths, str):
                raise TypeError("ResponsePolicy.client_paths must return a sequence of paths")
            mapped.append((element, href, paths))
        if not any(paths for _element, _href, paths in mapped):
            return

        ranges = self._ordered_ranges(response, end)
        edits: list[tuple[int, int, bytes]]
        if len(mapped) == 1:
            element, href, paths = mapped[0]
            assert href is not None
            for path in paths:
                edits = []
                text = href.text_for(path)
                if text is not None:
                    edits.append(self._text_edit(element, text))
                if len(paths) > 1:
                    name = _NOT_XML_CHAR.sub("\ufffd", _last_segment(path))
                    edits.extend(self._text_edit(dn, name) for dn in response.displaynames)
                    edits.sort(key=_edit_start)
                self._render(ranges, edits)
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
        self._render(ranges, edits)
        self.responses_out += 1

    def _parse_href(self, text: str) -> _Href | None:
        """Split and decode an href; None if it cannot be decoded."""
        url, lead, trail = text, "", ""
        if text and (text[0] in _XML_SPACE or text[-1] in _XML_SPACE):
            url = text.strip(_XML_SPACE)
            lead = text[: len(text) - len(text.lstrip(_XML_SPACE))]
            trail = text[len(lead) + len(url) :]
        match = _HREF_PARTS.fullmatch(url)
        if match is None:  # pragma: no cover - the pattern matches any string
            return None
        scheme, authority = match.group(1, 2)
        raw_path, rest = match.group(3, 4)
        prefix = url[: match.start(3)]
        if authority is not None:
            raw_path = raw_path or "/"  # after an authority the path is absolute
        elif not scheme and not raw_path.startswith("/") and self._base_path is not None:
            # RFC 3986 section 5.2.2: an empty path is the base itself, else merge.
            base = self._base_path
            raw_path = base[: base.rfind("/") + 1] + raw_path if raw_path else base
        if _DOT_SEGMENT.search(raw_path):
            # Clients resolve "." and ".." before they look at a path; so must the policy.
            raw_path = _remove_dot_segments(raw_path)
        if "%" in raw_path:
            if _BAD_PERCENT.search(raw_path):
                return None
            try:
                decoded = unquote(raw_path, errors="strict")
            except UnicodeDecodeError:
                return None
            if _DOT_SEGMENT.search(decoded):
                return None  # "%2E%2E": some clients would resolve it, some not; trust neither
        else:
            decoded = raw_path
        return _Href(
            lead=lead, prefix=prefix, raw_path=raw_path, rest=rest, trail=trail, decoded=decoded
        )

    def _ordered_ranges(self, response: _Response, end: int) -> list[tuple[int, int]]:
        """The response's input byte ranges in output order: 2xx propstats first."""
        propstats = response.propstats
        first_bad = next((i for i, (_ps, ok) in enumerate(propstats) if not ok), None)
        if first_bad is None or not any(ok for _ps, ok in propstats[first_bad + 1 :]):
            return [(response.start, end)]  # already 2xx first (or no 2xx at all)
        order = [ps for ps, ok in propstats if ok] + [ps for ps, ok in propstats if not ok]
        # Propstats change places; what lies between them (whitespace) stays put.
        ranges = [(response.start, propstats[0][0].start)]
        for slot, moved in enumerate(order):
            ranges.append((moved.start, moved.end))
            if slot + 1 < len(propstats):
                ranges.append((propstats[slot][0].end, propstats[slot + 1][0].start))
        ranges.append((propstats[-1][0].end, end))
        return ranges

    def _text_edit(self, element: _Element, text: str) -> tuple[int, int, bytes]:
        """An edit that sets element's text content."""
        data = _xml_escape(text).encode(self._text_encoding, self._text_errors)
        if not element.empty:
            return element.content_start, element.content_end, data
        return element.start, element.end, self._expanded(element, data)

    def _expanded(self, element: _Element, content: bytes) -> bytes:
        """An empty element written out with content: <x a="1"/> -> <x a="1">content</x>."""
        start_tag = self._slice(element.start, element.content_start)
        name_match = _TAG_NAME.match(start_tag)
        name = name_match.group(1) if name_match else b""
        return bytes(start_tag[:-2].rstrip(b" \t\r\n")) + b">" + content + b"</" + name + b">"

    def _href_element(self, element: _Element, href: _Href, path: str) -> bytes:
        """A copy of an href element that shows path."""
        text = href.text_for(path)
        if text is None:
            return bytes(self._slice(element.start, element.end))
        _start, _end, data = self._text_edit(element, text)
        if element.empty:
            return data
        return (
            bytes(self._slice(element.start, element.content_start))
            + data
            + bytes(self._slice(element.content_end, element.end))
        )

    def _slice(self, start: int, end: int) -> bytearray:
        return self._buf[start - self._base : end - self._base]

    def _render(self, ranges: list[tuple[int, int]], edits: list[tuple[int, int, bytes]]) -> None:
        """Write the input ranges in order, with the edits that fall inside them applied."""
        out = self._out
        buf = self._buf
        base = self._base
        for start, end in ranges:
            at = start
            for edit_start, edit_end, data in edits:
                if edit_start >= start and edit_end <= end:
                    out.append(buf[at - base : edit_start - base])
                    out.append(data)
                    at = edit_end
            out.append(buf[at - base : end - base])
