"""Streaming filter for WebDAV 207 multistatus bodies: bytes in, bytes out, no I/O.

The body is checked incrementally by expat (namespace-aware, so ``D:``, ``d:`` and a
default ``xmlns="DAV:"`` are the same thing). Each ``<response>`` is held until its end
tag, then dropped, rewritten or cloned as a :class:`ResponsePolicy` decides. Everything
the filter does not change is copied byte for byte from the input: output is built from
slices of the input, never by re-serialising, so memory stays bounded by the largest
single ``<response>`` plus one input chunk.

Inside every kept response, propstats whose status is 2xx are moved before the others,
because rclone 1.60.1 reads only the first propstat's status and drops an entry whose
first propstat says 404 (NzbDav puts the 404 ones first).

Two implementations give the same bytes and the same errors. :class:`_ExpatFilter` sees
every element through expat's callbacks, about fifteen Python calls per response.
:class:`MultistatusFilter` recognises most responses by their shape (see "the fast
path" below), slices them, and has expat read a placeholder in their place; whatever it
does not recognise it hands to an :class:`_ExpatFilter` of its own.
"""

from __future__ import annotations

import codecs
import functools
import re
from collections.abc import Callable, Sequence
from typing import Final, NamedTuple, Protocol
from urllib.parse import quote, unquote
from xml.parsers import expat

__all__ = [
    "MultistatusError",
    "MultistatusFilter",
    "PrefixRewrite",
    "ResponsePolicy",
    "filter_multistatus",
]

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
_XML_SPACE_BYTES: Final = b" \t\r\n"
# Characters left unescaped when re-encoding a path: RFC 3986 pchar minus ":" (a colon in
# a first segment would read as a scheme).
_PATH_SAFE: Final = "/!$&'()*+,;=@"
_NOT_A_SEQUENCE: Final = "ResponsePolicy.client_paths must return a sequence of paths"
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


class PrefixRewrite(NamedTuple):
    """A policy's promise about a family of plain paths, which lets the fast path skip it.

    A policy may carry one as ``prefix_rewrite``: for every path that ``path_pattern``
    matches whole, client_paths(path) is the single path ``new`` + path[len(old):], and
    path starts with ``old``. The fast path then rewrites a run of such responses with
    one split and join instead of asking the policy once per response.
    """

    path_pattern: bytes
    """Regular expression source (no capturing groups) of ASCII paths that need no
    percent-decoding, XML escaping or dot-segment removal."""
    old: bytes
    new: bytes
    """Written as it is: already percent-encoded."""


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


def _shared_tail(path: str, client_path: str) -> int:
    """Where in path the longest tail of whole segments it shares with client_path starts.

    -1 if they share none.
    """
    at = path.find("/")
    while at != -1 and not client_path.endswith(path[at:]):
        at = path.find("/", at + 1)
    return at


def _encode_unescaped(path: str, client_path: str) -> str:
    """client_path percent-encoded, keeping the longest tail of segments it shares with path.

    path has nothing percent-encoded, so its raw offsets are its decoded offsets.
    """
    at = _shared_tail(path, client_path)
    if at == -1:
        return _quote_path(client_path)
    return _quote_path(client_path[: len(client_path) - len(path) + at]) + path[at:]


def _split_plain_href(text: str) -> tuple[str, str] | None:
    """(scheme and authority, path) of an href that needs no decoding, resolving or trimming.

    For such an href _parse_href gives no lead, rest or trail, and the path both raw and
    decoded; None for any other href (with "%", "?", "#", dot segments, surrounding space,
    relative, or another scheme).
    """
    if "%" in text or "?" in text or "#" in text or text[-1:] in _XML_SPACE:
        return None
    if text.startswith("http://"):
        slash = text.find("/", 7)
    elif text.startswith("https://"):
        slash = text.find("/", 8)
    elif text.startswith("/") and not text.startswith("//"):
        slash = 0
    else:
        return None
    if slash < 0:
        return text, "/"  # after an authority the path is absolute
    path = text[slash:]
    if "/./" in path or "/../" in path or path.endswith(("/.", "/..")):
        return None
    return text[:slash], path


# The folder of a plain href: its href text up to the last segment, its path, and if
# the policy kept that segment, the client's path for the folder and its new href text
# (None if unchanged).
_Folder = tuple[bytes, str, "str | None", "bytes | None"]


@functools.lru_cache(maxsize=256)
def _folder_of(prefix: str, path: str, client_path: str | None) -> _Folder:
    """The folder of a plain href (scheme and authority, and path) that the policy showed
    as client_path (None if it dropped or cloned it)."""
    leaf = path[path.rfind("/") + 1 :]
    folder_path = path[: len(path) - len(leaf)]
    client_folder = new_folder = None
    if client_path is not None and client_path.endswith(leaf):
        client_folder = client_path[: len(client_path) - len(leaf)]
        if not client_folder.endswith("/"):
            client_folder = None
        elif client_folder != folder_path:
            # client_folder ends in "/": the tail the folder shares with it, plus the
            # leaf, is the tail path shares with client_path, so encoding the folder
            # alone gives the same text.
            text = prefix + _encode_unescaped(folder_path, client_folder)
            new_folder = _xml_escape(text).encode()
    return (prefix + folder_path).encode(), folder_path, client_folder, new_folder


def _last_segment(path: str) -> str:
    return path.rstrip("/").rpartition("/")[2]


def _edit_start(edit: tuple[int, int, bytes]) -> int:
    return edit[0]


def _is_2xx(status: str) -> bool:
    match = _STATUS_CODE.match(status)
    return match is not None and 200 <= int(match.group(1)) < 300


def _check_root(head: bytes | bytearray, name: str, at: int) -> None:
    """Raise unless the root element, whose first two bytes are head, is a DAV: multistatus."""
    if head[:1] != b"<" or head[1:] == b"\x00":
        raise MultistatusError(
            f"multistatus is not in an ASCII-compatible encoding (root element at byte {at})"
        )
    if name != _MULTISTATUS:
        raise MultistatusError(
            f"expected a {{DAV:}}multistatus root element at byte {at}, found {_clark(name)}"
        )


def _declared_codec(encoding: str) -> str:
    """The codec of an XML declaration's encoding; raise if this filter cannot write it."""
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
    return codec


def _ended_early(length: int, response: int | None, error: expat.ExpatError) -> MultistatusError:
    """The body stopped after length bytes (inside the response that starts at response)."""
    where = "" if response is None else f" inside the <response> that starts at byte {response}"
    reason = expat.ErrorString(error.code)
    return MultistatusError(f"multistatus ended early after {length} bytes{where}: {reason}")


def _malformed(at: int, line: int, column: int, error: expat.ExpatError) -> MultistatusError:
    """expat found the body malformed at byte at."""
    reason = expat.ErrorString(error.code)
    return MultistatusError(
        f"malformed multistatus at byte {at} (line {line}, column {column}): {reason}"
    )


def _doctype_error(name: str, at: int) -> MultistatusError:
    return MultistatusError(
        f"multistatus has a DOCTYPE ({name}) at byte {at}; "
        "a WebDAV reply has none, and its entities are not expanded here"
    )


def _ordered_ranges(
    start: int, end: int, propstats: Sequence[tuple[int, int, bool]]
) -> list[tuple[int, int]]:
    """A response's byte ranges in output order: 2xx propstats first.

    propstats are (start, end, status is 2xx) in input order, inside start..end.
    """
    first_bad = next((i for i, (_start, _end, ok) in enumerate(propstats) if not ok), None)
    if first_bad is None or not any(ok for _start, _end, ok in propstats[first_bad + 1 :]):
        return [(start, end)]  # already 2xx first (or no 2xx at all)
    order = [ps for ps in propstats if ps[2]] + [ps for ps in propstats if not ps[2]]
    # Propstats change places; what lies between them (whitespace) stays put.
    ranges = [(start, propstats[0][0])]
    for slot, (moved_start, moved_end, _ok) in enumerate(order):
        ranges.append((moved_start, moved_end))
        if slot + 1 < len(propstats):
            ranges.append((propstats[slot][1], propstats[slot + 1][0]))
    ranges.append((propstats[-1][1], end))
    return ranges


def _render(
    out: list[bytes | bytearray],
    buf: bytearray,
    base: int,
    ranges: list[tuple[int, int]],
    edits: list[tuple[int, int, bytes]],
) -> None:
    """Write the ranges of buf (offsets from base) in order, with the edits inside them applied."""
    for start, end in ranges:
        at = start
        for edit_start, edit_end, data in edits:
            if edit_start >= start and edit_end <= end:
                out.append(buf[at - base : edit_start - base])
                out.append(data)
                at = edit_end
        out.append(buf[at - base : end - base])


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
        if raw == decoded:
            return _encode_unescaped(raw, client_path)
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


def _parse_href(text: str, base_path: str | None) -> _Href | None:
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
    elif not scheme and not raw_path.startswith("/") and base_path is not None:
        # RFC 3986 section 5.2.2: an empty path is the base itself, else merge.
        base = base_path
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


class _Response:
    """What the filter learnt about the <response> being read."""

    __slots__ = ("displaynames", "hrefs", "propstats", "start")

    def __init__(self, start: int) -> None:
        self.start = start
        self.hrefs: list[tuple[_Element, str]] = []  # element and its text
        self.propstats: list[tuple[_Element, bool]] = []  # element and "status is 2xx"
        self.displaynames: list[_Element] = []


class _Filter:
    """What both filters share: how they are made, what they count, the input they hold,
    and how feed() and close() keep the first failure (see MultistatusFilter)."""

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
        self._out: list[bytes | bytearray] = []
        self._failure: MultistatusError | None = None
        self._closed = False

    def feed(self, data: bytes) -> bytes:
        """Take the next chunk of the body; return the output that is ready (maybe b"")."""
        if self._closed:
            raise RuntimeError("MultistatusFilter.feed() called after close()")
        if self._failure is not None:
            raise self._failure
        if not data:
            return b""
        return self._keeping_failure(self._filter, data)

    def close(self) -> bytes:
        """End of the body: return the rest of the output; raise if the body is incomplete."""
        if self._closed:
            return b""
        if self._failure is not None:
            raise self._failure
        out = self._keeping_failure(self._end_of_body)
        self._closed = True
        return out

    def _keeping_failure(self, step: Callable[..., bytes], *data: bytes) -> bytes:
        """step(*data); a failure is kept, to be raised again by later calls."""
        try:
            return step(*data)
        except MultistatusError as exc:
            self._failure = exc
            raise
        except BaseException:
            self._failure = MultistatusError("multistatus filter stopped by an earlier error")
            raise

    def _filter(self, data: bytes) -> bytes:
        """feed() for a chunk that is not empty."""
        raise NotImplementedError

    def _end_of_body(self) -> bytes:
        """close() for the first time."""
        raise NotImplementedError


class _ExpatFilter(_Filter):
    """The reference filter: every element seen through expat's callbacks."""

    def __init__(self, policy: ResponsePolicy, *, base_path: str | None = None) -> None:
        super().__init__(policy, base_path=base_path)
        self._emitted = 0  # every byte before this offset has been written or dropped
        self._depth = 0  # open elements
        self._response: _Response | None = None
        self._element: _Element | None = None  # the open href
        self._propstat: _Element | None = None  # the open propstat
        self._text: list[str] = []
        self._propstat_ok = False
        self._text_encoding = "utf-8"
        self._text_errors = "strict"

        parser = expat.ParserCreate(namespace_separator=_NS_SEP)
        parser.buffer_text = True
        parser.StartElementHandler = self._start
        parser.EndElementHandler = self._end
        parser.XmlDeclHandler = self._xml_decl
        parser.StartDoctypeDeclHandler = self._doctype
        self._parser = parser

    # -- public interface -------------------------------------------------------------

    def _filter(self, data: bytes) -> bytes:
        self._buf += data
        self._parse(data, final=False)
        return self._take_output()

    def _end_of_body(self) -> bytes:
        self._parse(b"", final=True)
        # The handlers are bound methods: dropping them frees this filter without waiting
        # for the cycle collector.
        parser = self._parser
        parser.StartElementHandler = parser.EndElementHandler = None
        parser.XmlDeclHandler = parser.StartDoctypeDeclHandler = None
        self._pass_to(self._base + len(self._buf))
        return self._take_output()

    # -- parsing ----------------------------------------------------------------------

    def _parse(self, data: bytes, *, final: bool) -> None:
        try:
            self._parser.Parse(data, final)
        except expat.ExpatError as exc:
            if final:
                response = None if self._response is None else self._response.start
                raise _ended_early(self._base + len(self._buf), response, exc) from None
            at = self._parser.ErrorByteIndex
            raise _malformed(at, exc.lineno, exc.offset, exc) from None

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
        _check_root(self._buf[at - self._base : at - self._base + 2], name, at)
        self._pass_to(at)

    def _xml_decl(self, _version: str | None, encoding: str | None, _standalone: int) -> None:
        if encoding is not None and _declared_codec(encoding) != "utf-8":
            # New text goes out as ASCII with character references: valid in any
            # ASCII-compatible encoding.
            self._text_encoding, self._text_errors = "ascii", "xmlcharrefreplace"

    def _doctype(self, name: str, *_ids: object) -> None:
        raise _doctype_error(name, self._parser.CurrentByteIndex)

    # -- deciding and writing one response --------------------------------------------

    def _finish(self, response: _Response, end: int) -> None:
        """Write the response that ends at byte end as the policy says, or drop it."""
        self._emitted = end
        if not response.hrefs:
            self.bad_hrefs += 1
            return
        mapped: list[tuple[_Element, _Href | None, Sequence[str]]] = []
        for element, href_text in response.hrefs:
            href = _parse_href(href_text, self._base_path)
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

        propstats = [(element.start, element.end, ok) for element, ok in response.propstats]
        ranges = _ordered_ranges(response.start, end, propstats)
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
                _render(self._out, self._buf, self._base, ranges, edits)
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
        _render(self._out, self._buf, self._base, ranges, edits)
        self.responses_out += 1

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


# -- the fast path ------------------------------------------------------------------------
#
# Most responses of a listing have the same tags in the same order and differ only in
# their text. The first response of each such shape is checked by expat once (its tags
# alone, inside the real root start tag) and the shape becomes one compiled pattern: its
# tags verbatim, text without "<" between them. A response that matches such a pattern,
# in input with nothing but plain characters (no "&", no "]]>", no bytes XML forbids,
# valid UTF-8), is well-formed: the validating parser reads a placeholder element in its
# place. Where its href, propstats and statuses lie is known from the shape, so it is
# dropped, rewritten or reordered by slicing. Everything else (new shapes past a few a
# body, entities, comments, CDATA, several hrefs, clones) goes through _ExpatFilter, one
# root item at a time, inside the body's own root start tag; a body not in UTF-8 goes
# through one _ExpatFilter whole.
#
# A policy that rewrites a family of plain paths by swapping a prefix (PrefixRewrite: a
# shard view's folders) gets a narrower variant of each one-propstat shape, whose href
# admits only those paths: a run of responses matching it is rewritten with one split
# and join. filter_multistatus goes further for a whole body: if its prolog and root
# start tag are byte for byte ones expat accepted before and all it holds is one such
# run, it is well-formed by the same argument and no parser runs at all.

# Bytes XML 1.0 allows somewhere in a document: all but the C0 controls other than tab,
# newline and carriage return.
_XML_BYTES: Final = bytes(b for b in range(256) if b >= 0x20 or b in b"\t\n\r")
# Bytes that never need a second look in the text of a response the fast path takes:
# ASCII XML characters but "&" (references are left to expat) and "]" (of "]]>").
_PLAIN_BYTES: Final = bytes(b for b in _XML_BYTES if b < 0x80 and b not in b"&]")
_CONTINUATION_BYTES: Final = bytes(range(0x80, 0xC0))
# What the validating parser reads in place of a response handled by a shape pattern.
_PLACEHOLDER: Final = b"<_/>"
_TEXT: Final = rb"[^<]*+"  # and no "&": see _clean and MultistatusFilter.feed
_HREF_TEXT: Final = rb"([^<\r]*+)"  # expat would turn "\r" into "\n"
_SLOT_TEXT: Final = rb"([^<]*+)"
# The scheme and authority _split_plain_href takes as they are, which XML escaping keeps.
_PLAIN_AUTHORITY: Final = rb"(?:https?://[0-9A-Za-z._~:@\[\]!$'()*+,;=-]*+)?"
_REWRITES_PER_SHAPE: Final = 16
# The last segment of a plain href (see _split_plain_href) that XML escaping leaves as is:
# no "/", "%", "?", "#", "&", "<", ">", not "." or "..", no space at its end.
_PLAIN_LEAF = re.compile(rb"(?!\.\.?\Z)[^\x00-\x1f/%?#&<>\x7f-\xff]*(?<! )")
# The prolog up to the root start tag: byte order mark, space, declarations, comments.
_PROLOG = re.compile(rb"(?:\xef\xbb\xbf)?(?:[ \t\r\n]+|<\?.*?\?>|<!--.*?-->)*", re.DOTALL)
_SHAPES_PER_ROOT: Final = 8  # patterns tried, most recently matched first
_ROOTS_REMEMBERED: Final = 32
_SHAPES_REMEMBERED: Final = 256
_ANALYSES_PER_FILTER: Final = 8  # new shapes one body may make us study

_PROLOG_STATE: Final = 0
_BODY_STATE: Final = 1
_EPILOG_STATE: Final = 2
_NOT_PENDING: Final = 0
_PENDING_RESPONSE: Final = 1  # a <response> start tag as the root writes it; withheld scan
_PENDING_ITEM: Final = 2  # anything else, scanned token by token


class _Shape:
    """One shape of <response>: a pattern of its tags, and what the fast path needs of it.

    In a fast shape's pattern, group ``href`` is the href's text. With several propstats, each
    has an empty group just before it and one just after it, and a group for the text of
    its status: ``propstats`` holds those group numbers (0 for no status).
    """

    __slots__ = (
        "_rewriting",
        "fast",
        "href",
        "match",
        "pattern",
        "propstats",
        "rewrite",
    )

    def __init__(
        self,
        pattern: re.Pattern[bytes],
        *,
        fast: bool,
        href: int = 0,
        propstats: tuple[tuple[int, int, int], ...] = (),
        rewrite: PrefixRewrite | None = None,
    ) -> None:
        self.pattern = pattern
        self.match: Callable[[bytes | bytearray, int], re.Match[bytes] | None] = pattern.match
        self.fast = fast  # one text-only href at level 2, at most one text-only status a propstat
        self.href = href
        self.propstats = propstats
        # Set on a variant whose href matches only the paths the rewrite covers.
        self.rewrite = rewrite
        self._rewriting: dict[PrefixRewrite, _Shape | None] = {}

    def rewriting(self, rewrite: PrefixRewrite) -> _Shape | None:
        """This shape with its href narrowed to plain hrefs of paths the rewrite covers.

        None for shapes the run rewrite cannot take: slow ones, and those with several
        propstats (those are reordered response by response).
        """
        try:
            return self._rewriting[rewrite]
        except KeyError:
            pass
        variant = None
        if self.fast and not self.propstats:
            href = b"(" + _PLAIN_AUTHORITY + rewrite.path_pattern + b")"
            source = self.pattern.pattern.replace(_HREF_TEXT, href, 1)
            variant = _Shape(re.compile(source), fast=True, href=self.href, rewrite=rewrite)
        if len(self._rewriting) >= _REWRITES_PER_SHAPE:
            self._rewriting.clear()
        self._rewriting[rewrite] = variant
        return variant


# (root start tag, tags of a response) -> its shape, or None if the tags are malformed.
_KNOWN_SHAPES: dict[tuple[bytes, tuple[bytes, ...]], _Shape | None] = {}
# root start tag -> shapes most recently matched first.
_SHAPES_BY_ROOT: dict[bytes, list[_Shape]] = {}


class _Root:
    """What a body's root start tag tells the fast path."""

    __slots__ = ("at", "close_tag", "end", "end_tag", "open_tag", "tag", "utf8")

    def __init__(self, at: int, tag: bytes, qname: bytes, *, utf8: bool) -> None:
        prefix = qname[: len(qname) - len(b"multistatus")]
        self.at = at  # where it starts
        self.end = at + len(tag)
        self.tag = tag
        self.end_tag = b"</" + qname + b">"
        self.open_tag = b"<" + prefix + b"response>"  # as the root's prefix writes it
        self.close_tag = b"</" + prefix + b"response>"
        self.utf8 = utf8  # the body's encoding, as its XML declaration says


# Bodies' prologs up to the end of the root start tag -> what they told.
_KNOWN_ROOTS: dict[bytes, _Root] = {}


def _tags_of(block: bytes) -> tuple[bytes, ...] | None:
    """The tags of an element in order, with b"" where text lies between two of them.

    None if the element holds comments, CDATA or PIs.
    """
    tags: list[bytes] = []
    at = 0
    while True:
        lt = block.find(b"<", at)
        if lt < 0:
            return tuple(tags)
        if lt > at and tags:
            tags.append(b"")
        kind = block[lt + 1 : lt + 2]
        if kind in (b"!", b"?"):
            return None
        if kind == b"/":
            at = block.find(b">", lt) + 1
            if not at:
                return None
            tags.append(block[lt:at])
            continue
        tag = _START_TAG.match(block, lt)
        if tag is None:
            return None
        at = tag.end()
        tags.append(tag.group())


def _study(root_tag: bytes, root_end: bytes, skeleton: tuple[bytes, ...]) -> _Shape | None:
    """The shape of a response with these tags; None if they are not well-formed there.

    skeleton is what _tags_of gives. expat reads the tags alone under the root start
    tag; what _ExpatFilter would track (the level-2 hrefs and propstats, the level-3
    statuses) is noted by tag index. Text may lie where the skeleton had some, and in
    the href and statuses (a pattern with fewer places for text is quicker to match).
    """
    tags = tuple(tag for tag in skeleton if tag)
    with_text: set[int] = set()  # indexes of the tags that text comes before
    for index, tag in enumerate(skeleton):
        if not tag:
            with_text.add(index - len(with_text))
    offsets: dict[int, int] = {}
    at = len(root_tag)
    for index, tag in enumerate(tags):
        offsets[at] = index
        at += len(tag)
    parser = expat.ParserCreate(namespace_separator=_NS_SEP)
    open_elements: list[int] = []  # tag index of each open element's start tag
    children: list[tuple[str, int]] = []  # (name or "end", tag index) at level 1
    hrefs: list[tuple[int, int]] = []  # (start, end) tag index of each level-2 href
    propstats: list[tuple[int, int, list[tuple[int, int]]]] = []  # and their statuses

    def on_start(name: str, _attributes: dict[str, str]) -> None:
        index = offsets.get(parser.CurrentByteIndex, -1)
        level = len(open_elements)
        open_elements.append(index)
        if level == 1:
            children.append((name, index))
        elif level == 2 and name == _PROPSTAT:
            propstats.append((index, -1, []))
        elif level == 3 and name == _STATUS and propstats and propstats[-1][1] < 0:
            propstats[-1][2].append((index, -1))

    def on_end(name: str) -> None:
        start_index = open_elements.pop()
        level = len(open_elements)
        index = start_index
        if not tags[start_index].endswith(b"/>"):
            index = offsets.get(parser.CurrentByteIndex, -1)
        if level == 1:
            children.append(("end", index))
        elif level == 2 and name == _HREF:
            hrefs.append((start_index, index))
        elif level == 2 and name == _PROPSTAT:
            propstats[-1] = (start_index, index, propstats[-1][2])
        elif level == 3 and name == _STATUS and propstats and propstats[-1][1] < 0:
            propstats[-1][2][-1] = (start_index, index)

    parser.StartElementHandler = on_start
    parser.EndElementHandler = on_end
    try:
        parser.Parse(root_tag + b"".join(tags) + root_end, True)
    except expat.ExpatError:
        return None
    finally:
        parser.StartElementHandler = parser.EndElementHandler = None
    fast = (
        children == [(_RESPONSE, 0), ("end", len(tags) - 1)]
        and len(hrefs) == 1
        and hrefs[0][1] == hrefs[0][0] + 1  # text only (an empty element ends where it starts)
        and all(
            len(statuses) <= 1 and all(end == begin + 1 for begin, end in statuses)
            for _start, _end, statuses in propstats
        )
    )
    # Text slots (by the index of the tag that follows) that get a group, and empty
    # groups before (by tag index) or after (by -1 - tag index) a tag.
    slots: dict[int, int] = {}
    marks: dict[int, int] = {}
    groups = 0
    ordered: list[tuple[int, int, int]] = []
    if fast:
        groups = 1
        slots[hrefs[0][1]] = 1
        if len(propstats) > 1:
            for begin, end, statuses in propstats:
                before, after, status = groups + 1, groups + 2, 0
                groups += 2
                if statuses:
                    groups += 1
                    status = groups
                    slots[statuses[0][1]] = status
                marks[begin] = before
                marks[-1 - end] = after
                ordered.append((before, after, status))
    # Groups are numbered in the order they open, so number them as the pattern is built.
    numbers: dict[int, int] = {}
    pieces: list[bytes] = []
    for index, tag in enumerate(tags):
        if index:
            if index in slots:
                numbers[slots[index]] = len(numbers) + 1
                pieces.append(_HREF_TEXT if slots[index] == 1 else _SLOT_TEXT)
            elif index in with_text:
                pieces.append(_TEXT)
        if index in marks:
            numbers[marks[index]] = len(numbers) + 1
            pieces.append(b"()")
        pieces.append(re.escape(tag))
        if -1 - index in marks:
            numbers[marks[-1 - index]] = len(numbers) + 1
            pieces.append(b"()")
    assert len(numbers) == groups
    return _Shape(
        re.compile(b"".join(pieces)),
        fast=fast,
        href=numbers.get(1, 0),
        propstats=tuple(
            (numbers[before], numbers[after], numbers[status] if status else 0)
            for before, after, status in ordered
        ),
    )


def _shape_of(root_tag: bytes, root_end: bytes, skeleton: tuple[bytes, ...]) -> _Shape | None:
    """The shape of a response with this skeleton, studied once per process."""
    key = (root_tag, skeleton)
    try:
        return _KNOWN_SHAPES[key]
    except KeyError:
        pass
    shape = _study(root_tag, root_end, skeleton)
    if len(_KNOWN_SHAPES) >= _SHAPES_REMEMBERED:
        _KNOWN_SHAPES.clear()
    _KNOWN_SHAPES[key] = shape
    return shape


def _shapes_for(root_tag: bytes) -> list[_Shape]:
    """The shapes seen under this root start tag, newest first (shared by every filter)."""
    shapes = _SHAPES_BY_ROOT.get(root_tag)
    if shapes is None:
        if len(_SHAPES_BY_ROOT) >= _ROOTS_REMEMBERED:
            _SHAPES_BY_ROOT.clear()
        shapes = _SHAPES_BY_ROOT[root_tag] = []
    return shapes


def _clean(block: bytes | bytearray) -> bool:
    """True if the texts of this element are plain: UTF-8 XML characters, no "&", no "]]>"."""
    if not block.isascii():
        try:
            bytes(block).decode("utf-8")
        except UnicodeDecodeError:
            return False
        if b"\xef\xbf\xbe" in block or b"\xef\xbf\xbf" in block:  # U+FFFE, U+FFFF
            return False
    return not block.translate(None, _XML_BYTES) and b"&" not in block and b"]]>" not in block


def _scan_item(buf: bytearray, at: int, depth: int) -> tuple[int, int, bool]:
    """Go on scanning an item of the root: (where to go on, depth, whether it ended there).

    An item is an element, a comment, a PI or a CDATA section. The bytes were checked by
    expat or will be before anything is made of the answer, so markup can be trusted.
    """
    while True:
        lt = buf.find(b"<", at)
        if lt < 0:
            return len(buf), depth, False
        if buf.startswith(b"<!--", lt):
            close, skip = b"-->", 4
        elif buf.startswith(b"<![CDATA[", lt):
            close, skip = b"]]>", 9
        elif buf.startswith(b"<?", lt):
            close, skip = b"?>", 2
        elif buf.startswith(b"</", lt):
            close, skip = b">", 2
            depth -= 1
        else:
            tag = _START_TAG.match(buf, lt)
            if tag is None:
                return lt, depth, False
            at = tag.end()
            if buf[at - 2] != 0x2F:  # not "/>"
                depth += 1
            elif depth == 0:
                return at, 0, True
            continue
        end = buf.find(close, lt + skip)
        if end < 0:
            return lt, depth + (close == b">"), False
        at = end + len(close)
        if depth <= 0:
            return at, 0, True


def _run_of(
    shape: _Shape, buf: bytes | bytearray, first: re.Match[bytes]
) -> tuple[list[re.Match[bytes]], int]:
    """first and the responses of its shape right after it, with only whitespace between;
    and where the last ends."""
    run = [first]
    end = first.end()
    match = shape.match
    size = len(buf)
    while True:
        at = end
        while at < size and buf[at] in _XML_SPACE_BYTES:
            at += 1
        following = match(buf, at)
        if following is None:
            return run, end
        run.append(following)
        end = following.end()


def _names_response(buf: bytearray, at: int) -> bool:
    """True if the element starting at at has the local name "response"."""
    name = _TAG_NAME.match(buf, at)
    return name is not None and (
        name.group(1) == b"response" or name.group(1).endswith(b":response")
    )


# Responses found in the body: (start, end) in the buffer, and when the fast path takes
# them the shape pattern's matches (responses of one shape with only whitespace between
# them) and the shape; (None, None) for a response _ExpatFilter reads.
_Item = tuple[int, int, "list[re.Match[bytes]] | None", "_Shape | None"]


@functools.lru_cache(maxsize=64)
def _is_2xx_bytes(status: bytes) -> bool:
    """_is_2xx of a UTF-8 status text (a listing repeats the same few)."""
    return _is_2xx(status.decode())


def _propstats_of(match: re.Match[bytes], shape: _Shape) -> list[tuple[int, int, bool]]:
    """(start, end, status is 2xx) of each propstat of a response matched by shape."""
    return [
        (match.start(before), match.start(after), status > 0 and _is_2xx_bytes(match[status]))
        for before, after, status in shape.propstats
    ]


class _Answered:
    """A policy whose answer for one path is already known (the fast path asked it)."""

    def __init__(self, policy: ResponsePolicy, path: str, paths: Sequence[str]) -> None:
        self._policy = policy
        self._path: str | None = path
        self._paths = paths

    def client_paths(self, backend_path: str) -> Sequence[str]:
        if backend_path == self._path:
            self._path = None
            return self._paths
        return self._policy.client_paths(backend_path)


def filter_multistatus(
    policy: ResponsePolicy, body: bytes, *, base_path: str | None = None
) -> bytes:
    """A whole body filtered: what a MultistatusFilter's feed(body) and close() give.

    Raises MultistatusError as they would. A listing made only of responses the policy's
    prefix_rewrite covers, of a shape and under a root start tag this process has seen
    before, is rewritten in one pass without a parser.
    """
    rewrite: PrefixRewrite | None = getattr(policy, "prefix_rewrite", None)
    if rewrite is not None:
        out = _rewritten_whole(rewrite, body)
        if out is not None:
            return out
    listing = MultistatusFilter(policy, base_path=base_path)
    return listing.feed(body) + listing.close()


def _rewritten_whole(rewrite: PrefixRewrite, body: bytes) -> bytes | None:
    """The body with every href rewritten, if all it holds is a run of covered responses.

    Nothing in such a body needs a parser: its prolog and root start tag are byte for byte
    ones expat accepted before (_KNOWN_ROOTS), each response matches a shape pattern whose
    tags expat accepted under that root, its texts are plain ASCII XML characters without
    references or "]]>", and only whitespace and the root's end tag surround the
    responses. None when any of that does not hold.
    """
    prolog = _PROLOG.match(body)
    assert prolog is not None  # the pattern matches the empty string
    tag = _START_TAG.match(body, prolog.end())
    if tag is None:
        return None
    root = _KNOWN_ROOTS.get(body[: tag.end()])
    if root is None or not root.utf8 or root.tag.endswith(b"/>"):
        return None
    at = root.end
    while at < len(body) and body[at] in _XML_SPACE_BYTES:
        at += 1
    for shape in _SHAPES_BY_ROOT.get(root.tag, ()):
        narrow = shape.rewriting(rewrite)
        if narrow is not None:
            first = narrow.match(body, at)
            if first is not None:
                run, end = _run_of(narrow, body, first)
                break
    else:
        return None
    if body[end:].strip(_XML_SPACE_BYTES) != root.end_tag:
        return None
    odd = body.translate(None, _PLAIN_BYTES)
    if odd and (odd.strip(b"]") or b"]]>" in body):
        return None
    pieces = body.split(rewrite.old, len(run))
    if len(pieces) != len(run) + 1 or rewrite.old in pieces[-1]:
        return None
    return rewrite.new.join(pieces)


class MultistatusFilter(_Filter):
    """Filters a 207 multistatus body as it streams, one <response> at a time.

    Call :meth:`feed` with each chunk of the backend's body and send what it returns;
    call :meth:`close` at the end of the body and send what it returns. Both raise
    :class:`MultistatusError` when the body is not a well-formed DAV: multistatus.

    ``base_path`` is the percent-encoded path of the request sent to the backend; it
    resolves relative hrefs (those are written back as absolute paths when rewritten).
    Without it, a relative href reaches the policy as the relative decoded path.
    """

    def __init__(self, policy: ResponsePolicy, *, base_path: str | None = None) -> None:
        super().__init__(policy, base_path=base_path)
        self._done = 0  # every byte before this offset has been written or dropped
        self._pos = 0  # where scanning goes on
        self._state = _PROLOG_STATE
        self._pending = _NOT_PENDING  # the root item that starts at _pos is incomplete
        self._pending_at = (
            0  # where its scan goes on (for a response, where to look for an end tag)
        )
        self._pending_depth = 0  # elements open in it there
        # Whether _buf may hold non-ASCII bytes, or bytes that could make text malformed.
        self._ascii = True
        self._suspect = False
        # The validating parser: it has read _buf up to byte _checked of the stream, which
        # is its own byte _checked - _shift (placeholders are shorter than responses).
        validator = expat.ParserCreate(namespace_separator=_NS_SEP)
        validator.StartElementHandler = self._root
        validator.XmlDeclHandler = self._xml_decl
        validator.StartDoctypeDeclHandler = self._doctype
        self._validator = validator
        self._checked = 0
        self._shift = 0
        # Line breaks and characters in the bytes already forgotten, for messages.
        self._lines = 0
        self._column = 0
        self._after_cr = False
        self._utf8 = True
        # Bodies in other encodings go through an _ExpatFilter whole.
        self._whole: _ExpatFilter | None = None
        self._root_at = -1
        self._root_tag = b""
        self._root_end = b""
        self._open_tag = b""  # <response> as the root's prefix writes it, without attributes
        self._close_tag = b""
        self._shapes: list[_Shape] = []
        self._analyses_left = _ANALYSES_PER_FILTER
        # The folder of the last plain href the fast path read (see _folder_of).
        self._folder: _Folder = (b"", "", None, None)
        self._rewrite: PrefixRewrite | None = getattr(policy, "prefix_rewrite", None)

    def _filter(self, data: bytes) -> bytes:
        if self._whole is not None:
            return self._take_counts(self._whole.feed(data))
        buf = self._buf
        odd = data.translate(None, _PLAIN_BYTES)
        if odd:
            if not odd.isascii():
                self._ascii = False
            if odd.strip(b"]") or b"]]>" in buf[-2:] + data:
                self._suspect = True
        buf += data
        items = self._scan(final=False)
        if self._whole is not None:  # the root came, and the body is not in UTF-8
            return self._take_counts(self._whole.feed(bytes(buf)))
        self._emit(items)
        return self._take_output()

    def _end_of_body(self) -> bytes:
        if self._whole is not None:
            return self._take_counts(self._whole.close())
        self._validate([self._buf[self._checked - self._base :]], [], final=True)
        self._checked = self._base + len(self._buf)
        if self._state == _BODY_STATE:
            self._emit(self._scan(final=True))
        if self._state != _EPILOG_STATE:  # pragma: no cover - expat saw the whole body
            raise MultistatusError("multistatus filter lost its place in a complete body")
        self._out.append(self._buf[self._done - self._base :])
        self._done = self._base + len(self._buf)
        return self._take_output()

    # -- finding the items of the root --------------------------------------------------

    def _scan(self, *, final: bool) -> list[_Item]:
        """Find the complete <response> elements in _buf and have the new bytes validated.

        Returns (start, end, match) for each, offsets into _buf; match is the shape
        pattern's match for a response the fast path takes, None for one that goes
        through _ExpatFilter. Leaves _pos where the next item (or text) starts.
        """
        buf = self._buf
        base = self._base
        checked = self._checked - base  # buf[:checked] has been validated
        position = self._checked - self._shift  # the validator's offset of buf[checked]
        pieces: list[bytes | bytearray] = []
        marks: list[tuple[int, int]] = []  # (validator offset, shift from there on)
        items: list[_Item] = []
        if self._state == _PROLOG_STATE:
            checked = self._find_root()
            position = checked + base - self._shift
            if self._whole is not None:
                return items
        at = self._pos - base
        if self._state == _BODY_STATE:
            open_tag = self._open_tag
            shapes = self._shapes
            suspect = self._suspect
            rewrite = self._rewrite
            while True:
                if self._pending:
                    end = self._go_on(at, final=final)
                    if end < 0:
                        break
                    item = self._item(at, end)
                    if item is not None:
                        items.append(item)
                    at = end
                lt = buf.find(b"<", at)
                if lt < 0:
                    break
                at = lt
                if buf.startswith(open_tag, lt):
                    match = None
                    for shape in shapes:
                        match = shape.match(buf, lt)
                        if match is not None:
                            break
                    if match is not None:
                        if shape is not shapes[0]:  # keep the shape that matched first in line
                            shapes.remove(shape)
                            shapes.insert(0, shape)
                        fast = shape.fast
                        if fast and not suspect and lt >= checked:
                            # The common case: a run of responses of this shape, with
                            # nothing but whitespace between them, read in one pass; and
                            # if the policy rewrites their hrefs by prefix, one made of
                            # those only.
                            if rewrite is not None:
                                narrow = shape.rewriting(rewrite)
                                if narrow is not None:
                                    narrow_match = narrow.match(buf, lt)
                                    if narrow_match is not None:
                                        shape, match = narrow, narrow_match
                            run, end = _run_of(shape, buf, match)
                            if lt == checked and marks and marks[-1][0] == position:
                                # Right after the last placeholder: it stands for both.
                                marks[-1] = (position, base + end - position)
                            else:
                                pieces.append(buf[checked:lt])
                                pieces.append(_PLACEHOLDER)
                                position += lt - checked + len(_PLACEHOLDER)
                                marks.append((position, base + end - position))
                            checked = end
                            items.append((lt, end, run, shape))
                            at = end
                            continue
                        same_shape = shape.match
                        while match is not None:  # and the responses of its shape right after
                            end = match.end()
                            if not fast or (suspect and not _clean(buf[lt:end])):
                                items.append((lt, end, None, None))
                            else:
                                if lt == checked and marks and marks[-1][0] == position:
                                    # Right after the last placeholder: it stands for both.
                                    checked = end
                                    marks[-1] = (position, base + end - position)
                                elif lt >= checked:
                                    pieces.append(buf[checked:lt])
                                    pieces.append(_PLACEHOLDER)
                                    position += lt - checked + len(_PLACEHOLDER)
                                    checked = end
                                    marks.append((position, base + end - position))
                                items.append((lt, end, [match], shape))
                            lt = at = end
                            if fast and not suspect:  # validated before: on in a run
                                break
                            match = same_shape(buf, end)
                        continue
                    self._pending = _PENDING_RESPONSE
                    self._pending_at = base + lt + len(open_tag)
                    continue
                kind = buf[lt + 1 : lt + 2]
                if kind == b"/":
                    self._state = _EPILOG_STATE  # the root's end tag
                    break
                if len(buf) - lt < len(open_tag) and open_tag.startswith(buf[lt:]):
                    break  # too little to tell what comes
                self._pending = _PENDING_ITEM
                self._pending_at = base + lt
                self._pending_depth = 0
        self._pos = base + at
        if checked < len(buf):
            pieces.append(buf[checked:])
            position += len(buf) - checked
            checked = len(buf)
        if pieces:
            self._validate(pieces, marks, final=False)
            self._checked = base + checked
            self._shift = self._checked - position
        return items

    def _go_on(self, start: int, *, final: bool) -> int:
        """Scan on in the pending item at _buf[start]; its end in _buf, or -1 if not yet."""
        buf = self._buf
        base = self._base
        if self._pending == _PENDING_RESPONSE:
            if not final:
                # A response of another shape: wait for an end tag before scanning it.
                hint = self._pending_at - base
                if buf.find(self._close_tag, hint) < 0:
                    self._pending_at = base + max(hint, len(buf) - len(self._close_tag) + 1)
                    return -1
            self._pending = _PENDING_ITEM
            self._pending_at = base + start
            self._pending_depth = 0
        at, depth, ended = _scan_item(buf, self._pending_at - base, self._pending_depth)
        if not ended:
            self._pending_at = base + at
            self._pending_depth = depth
            return -1
        self._pending = _NOT_PENDING
        return at

    def _item(self, start: int, end: int) -> _Item | None:
        """What the complete root item in _buf[start:end] is: a response or nothing."""
        buf = self._buf
        if not buf.startswith(self._open_tag, start):
            if buf[start + 1] in b"!?" or not _names_response(buf, start):
                return None
            return start, end, None, None
        block = bytes(buf[start:end])
        if self._analyses_left <= 0:
            return start, end, None, None
        skeleton = _tags_of(block)
        if skeleton is None:
            return start, end, None, None
        shape = _shape_of(self._root_tag, self._root_end, skeleton)
        if shape is None:  # malformed: the validator says where
            return start, end, None, None
        if shape not in self._shapes:
            self._analyses_left -= 1
            self._shapes.insert(0, shape)
            del self._shapes[_SHAPES_PER_ROOT:]
            known = _shapes_for(self._root_tag)
            if shape not in known:
                known.insert(0, shape)
                del known[_SHAPES_PER_ROOT:]
        match = shape.match(buf, start)
        if (
            match is None
            or match.end() != end
            or not shape.fast
            or (self._suspect and not _clean(block))
        ):
            return start, end, None, None
        return start, end, [match], shape

    def _find_root(self) -> int:
        """Validate the prolog and the root start tag; return how much of _buf was validated."""
        buf = self._buf  # nothing is forgotten before the root: _base is 0
        checked = self._checked
        prolog = _PROLOG.match(buf)
        cut = len(buf)
        head = b""
        if prolog is not None and buf[prolog.end() + 1 : prolog.end() + 2] not in b"?!":
            root = _START_TAG.match(buf, prolog.end())
            if root is not None:
                cut = root.end()  # most likely the root's start tag: stop the validator there
                head = bytes(buf[:cut])
                known = _KNOWN_ROOTS.get(head) if not checked else None
                if known is not None:  # the handlers would learn nothing new
                    validator = self._validator
                    validator.StartElementHandler = validator.XmlDeclHandler = None
                    validator.StartDoctypeDeclHandler = None
                    self._validate([head], [], final=False)
                    self._checked = cut
                    self._take_root(known)
                    return cut
        if cut > checked:
            self._validate([buf[checked:cut]], [], final=False)
            checked = cut
        if self._root_at < 0 and checked < len(buf):
            self._validate([buf[checked:]], [], final=False)
            checked = len(buf)
        self._checked = checked
        if self._root_at < 0:
            return checked
        # Neither can come after the root; dropping them ends the validator's references to
        # this filter, so it is freed without waiting for the cycle collector.
        self._validator.XmlDeclHandler = None
        self._validator.StartDoctypeDeclHandler = None
        root = _START_TAG.match(buf, self._root_at)
        name = _TAG_NAME.match(buf, self._root_at)
        assert root is not None and name is not None  # expat reported the start tag
        learnt = _Root(self._root_at, bytes(root.group()), name.group(1), utf8=self._utf8)
        if head and len(head) == learnt.end:
            if len(_KNOWN_ROOTS) >= _ROOTS_REMEMBERED:
                _KNOWN_ROOTS.clear()
            _KNOWN_ROOTS[head] = learnt
        self._take_root(learnt)
        return checked

    def _take_root(self, root: _Root) -> None:
        """Go on from the root start tag, which expat has accepted."""
        self._root_at = root.at
        self._root_tag = root.tag
        self._root_end = root.end_tag
        self._open_tag = root.open_tag
        self._close_tag = root.close_tag
        self._utf8 = root.utf8
        if not root.utf8:  # the fast path reads UTF-8 only
            self._whole = _ExpatFilter(self._policy, base_path=self._base_path)
        self._shapes = _shapes_for(root.tag).copy()  # reordered as they match, here only
        self._pos = root.end
        self._state = _EPILOG_STATE if root.tag.endswith(b"/>") else _BODY_STATE

    # -- validation -----------------------------------------------------------------

    def _validate(
        self, pieces: list[bytes | bytearray], marks: list[tuple[int, int]], *, final: bool
    ) -> None:
        """Have expat check the next bytes; raise MultistatusError where it finds a fault."""
        data = pieces[0] if len(pieces) == 1 else b"".join(pieces)
        try:
            self._validator.Parse(data, final)
        except expat.ExpatError as exc:
            if final:
                length = self._base + len(self._buf)
                raise _ended_early(length, self._open_response(), exc) from None
            index = self._validator.ErrorByteIndex
            shift = self._shift
            for position, after in marks:
                if index < position:
                    break
                shift = after
            at = index + shift
            line, column = self._line_column(at - self._base)
            raise _malformed(at, line, column, exc) from None

    def _open_response(self) -> int | None:
        """Where the unfinished <response> starts, if the body ends inside one."""
        if self._state != _BODY_STATE or not self._pending:
            return None
        buf = self._buf
        at = self._pos - self._base
        while True:  # a pending response may have ended (with "</D:response >", say)
            end, _depth, ended = _scan_item(buf, at, 0)
            if not ended:
                break
            at = buf.find(b"<", end)
            if at < 0 or buf.startswith(b"</", at):
                return None
        start = self._base + at
        if buf.startswith(self._open_tag, at):
            return start
        tag = _START_TAG.match(buf, at)
        if tag is None:
            return None
        names: list[str] = []
        parser = expat.ParserCreate(namespace_separator=_NS_SEP)
        parser.StartElementHandler = lambda name, _attributes: names.append(name)
        try:
            parser.Parse(self._root_tag + tag.group(), False)
        except expat.ExpatError:
            return None
        return start if names[1:] == [_RESPONSE] else None

    def _line_column(self, end: int) -> tuple[int, int]:
        """expat's line and column of the byte at _buf[end]."""
        lines, column, _after_cr = self._position_after(max(0, min(end, len(self._buf))))
        return lines + 1, column

    def _position_after(self, end: int) -> tuple[int, int, bool]:
        """Line breaks before _buf[end], characters since the last, and whether a CR ends them."""
        buf = self._buf
        if not end:
            return self._lines, self._column, self._after_cr
        last = max(buf.rfind(b"\n", 0, end), buf.rfind(b"\r", 0, end))
        if last < 0:
            return self._lines, self._column + self._characters(0, end), False
        head = buf[:end]
        breaks = head.count(b"\n") + head.count(b"\r") - head.count(b"\r\n")
        if self._after_cr and head.startswith(b"\n"):
            breaks -= 1  # the second half of a CR LF already counted
        return self._lines + breaks, self._characters(last + 1, end), buf[end - 1] == 0x0D

    def _characters(self, start: int, end: int) -> int:
        """How many characters expat counts in _buf[start:end]."""
        if self._ascii or not self._utf8:
            return end - start
        return len(self._buf[start:end].translate(None, _CONTINUATION_BYTES))

    # -- expat handlers (the validator calls only these, and the first only once) ---------

    def _root(self, name: str, _attributes: dict[str, str]) -> None:
        self._validator.StartElementHandler = None
        at = self._validator.CurrentByteIndex
        _check_root(self._buf[at : at + 2], name, at)  # nothing is forgotten yet
        self._root_at = at

    def _xml_decl(self, _version: str | None, encoding: str | None, _standalone: int) -> None:
        if encoding is None:
            return
        if _declared_codec(encoding) != "utf-8":
            self._utf8 = False

    def _doctype(self, name: str, *_ids: object) -> None:
        raise _doctype_error(name, self._validator.CurrentByteIndex)

    # -- writing ----------------------------------------------------------------------

    def _emit(self, items: list[_Item]) -> None:
        """Write the validated input up to _pos, each response as the policy says."""
        buf = self._buf
        out = self._out
        client_paths = self._policy.client_paths
        cursor = self._done - self._base  # buf[:cursor] is written or dropped
        taken = written = 0  # responses in and out of the folder shortcut
        folder, folder_path, client_folder, new_folder = self._folder
        folder_len = len(folder)
        plain_leaf = _PLAIN_LEAF.fullmatch
        for start, end, run, shape in items:
            if run is None or shape is None:
                out.append(buf[cursor:start])
                out.append(self._through_expat(bytes(buf[start:end]), self._policy))
                cursor = end
                continue
            rewrite = shape.rewrite
            if rewrite is not None:
                # Each href holds rewrite.old once; if nothing else in the run does, the
                # whole run is rewritten by one split and join.
                pieces = buf[start:end].split(rewrite.old)
                if len(pieces) == len(run) + 1:
                    out.append(buf[cursor:start])
                    out.append(rewrite.new.join(pieces))
                    cursor = end
                    taken += len(run)
                    written += len(run)
                    continue
            group = shape.href
            reorder = bool(shape.propstats)
            for match in run:
                text_start, text_end = match.span(group)
                leaf_start = text_start + folder_len
                paths: Sequence[str] | None = None
                if (
                    folder_len
                    and buf.startswith(folder, text_start)
                    and plain_leaf(buf, leaf_start, text_end) is not None
                ):
                    # An entry of the folder seen last: its href is that folder's plus a
                    # plain last segment, which a rewrite of the folder's part keeps.
                    leaf = buf[leaf_start:text_end].decode()
                    paths = client_paths(folder_path + leaf)
                    if isinstance(paths, str):
                        raise TypeError(_NOT_A_SEQUENCE)
                    if (
                        len(paths) == 1
                        and client_folder is not None
                        and paths[0] == client_folder + leaf
                    ):
                        taken += 1
                        written += 1
                        if reorder:
                            if new_folder is None:
                                cursor = self._write_kept(match, shape, cursor, None, b"")
                            else:
                                edit = (text_start, leaf_start)
                                cursor = self._write_kept(match, shape, cursor, edit, new_folder)
                        elif new_folder is not None:
                            out.append(buf[cursor:text_start])
                            out.append(new_folder)
                            cursor = leaf_start
                        continue
                    if not paths:
                        taken += 1
                        out.append(buf[cursor : match.start()])
                        cursor = match.end()
                        continue
                cursor = self._emit_response(match, shape, cursor, paths)
                folder, folder_path, client_folder, new_folder = self._folder
                folder_len = len(folder)
        self.responses_in += taken
        self.responses_out += written
        upto = self._pos - self._base
        if upto > cursor:
            out.append(buf[cursor:upto])
            cursor = upto
        self._done = self._base + cursor

    def _emit_response(
        self,
        match: re.Match[bytes],
        shape: _Shape,
        cursor: int,
        paths: Sequence[str] | None,
    ) -> int:
        """Write one response the fast path took (paths: the policy's answer if asked).

        Returns where the input is written or dropped up to.
        """
        buf = self._buf
        out = self._out
        start, end = match.span()
        text_start, text_end = match.span(shape.href)
        text = buf[text_start:text_end].decode()
        plain = _split_plain_href(text)
        if plain is not None:
            href = None
            prefix, path = plain
        else:
            href = _parse_href(text, self._base_path)
            if href is None:
                self.bad_hrefs += 1
                self.responses_in += 1
                out.append(buf[cursor:start])
                return end
            prefix, path = "", href.decoded
        if paths is None:
            paths = self._policy.client_paths(path)
            if isinstance(paths, str):
                raise TypeError(_NOT_A_SEQUENCE)
        folder = None
        if href is None and len(prefix) + len(path) == len(text):
            folder = _folder_of(prefix, path, paths[0] if len(paths) == 1 else None)
            self._folder = folder
        if len(paths) > 1:  # clones: _ExpatFilter finds the displaynames
            out.append(buf[cursor:start])
            answered = _Answered(self._policy, path, paths)
            out.append(self._through_expat(bytes(buf[start:end]), answered))
            return end
        self.responses_in += 1
        if not paths:
            out.append(buf[cursor:start])
            return end
        self.responses_out += 1
        client_path = paths[0]
        if client_path == path:
            return self._write_kept(match, shape, cursor, None, b"")
        if folder is not None and folder[3] is not None:  # the folder's text changes
            leaf_start = text_start + len(folder[0])
            if buf.find(b">", leaf_start, text_end) < 0:  # the leaf needs no escaping
                return self._write_kept(match, shape, cursor, (text_start, leaf_start), folder[3])
        if href is None:
            new_text = prefix + _encode_unescaped(path, client_path)
        else:
            new_text = href.text_for(client_path) or ""
        data = _xml_escape(new_text).encode()
        return self._write_kept(match, shape, cursor, (text_start, text_end), data)

    def _write_kept(
        self,
        match: re.Match[bytes],
        shape: _Shape,
        cursor: int,
        edit: tuple[int, int] | None,
        data: bytes,
    ) -> int:
        """Write a kept response: buf[edit] replaced by data, 2xx propstats first."""
        buf = self._buf
        out = self._out
        if shape.propstats:
            start, end = match.span()
            ranges = _ordered_ranges(start, end, _propstats_of(match, shape))
            if len(ranges) > 1:
                out.append(buf[cursor:start])
                edits = [] if edit is None else [(edit[0], edit[1], data)]
                _render(out, buf, 0, ranges, edits)
                return end
        if edit is None:
            return cursor
        out.append(buf[cursor : edit[0]])
        out.append(data)
        return edit[1]

    def _through_expat(self, response: bytes, policy: ResponsePolicy) -> bytes:
        """One root item filtered by _ExpatFilter, inside the body's root start tag."""
        head = self._root_tag
        listing = _ExpatFilter(policy, base_path=self._base_path)
        out = listing.feed(head + response + self._root_end) + listing.close()
        self.responses_in += listing.responses_in
        self.responses_out += listing.responses_out
        self.bad_hrefs += listing.bad_hrefs
        return out[len(head) : len(out) - len(self._root_end)]

    def _take_counts(self, out: bytes) -> bytes:
        """Pass on what the _ExpatFilter reading the whole body wrote, and its counts."""
        whole = self._whole
        assert whole is not None
        self.responses_in = whole.responses_in
        self.responses_out = whole.responses_out
        self.bad_hrefs = whole.bad_hrefs
        return out

    def _take_output(self) -> bytes:
        out = b"".join(self._out)
        self._out.clear()
        done = self._done - self._base
        if done:
            self._lines, self._column, self._after_cr = self._position_after(done)
            del self._buf[:done]
            self._base = self._done
            if not self._buf:
                self._ascii = True
                self._suspect = False
        return out
