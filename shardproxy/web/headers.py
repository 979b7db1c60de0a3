"""Which headers cross the proxy: hop-by-hop fields stay behind, values keep their bytes."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from multidict import CIMultiDict

from shardproxy.backend.reply import BackendReply, header_text

# RFC 9110 section 7.6.1, plus the non-standard ones proxies traditionally drop. Expect
# is answered by our own server; forwarding it would make the backend wait for us.
HOP_BY_HOP_HEADERS = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "expect",
    }
)


def client_headers(raw: Iterable[tuple[bytes, bytes]]) -> CIMultiDict[str]:
    """A client's headers to forward, byte for byte, without hop-by-hop fields
    (including those its Connection header names).

    Each value is read as Latin-1, which maps every byte to one character and back, so
    a value that is not UTF-8 reaches the backend exactly as the client sent it.
    """
    kept = []
    named = ""
    for raw_name, raw_value in raw:
        name = raw_name.decode("latin-1")
        lower = name.lower()
        if lower in HOP_BY_HOP_HEADERS:
            if lower == "connection":
                named += "," + raw_value.decode("latin-1")
            continue
        kept.append((name, raw_value.decode("latin-1")))
    # Built in one go: cheaper than one add() per header on every request.
    copy: CIMultiDict[str] = CIMultiDict(kept)
    if named:
        for token in named.split(","):
            copy.popall(token.strip(), None)
    return copy


ReplyHeaders = list[tuple[str, str]]


def reply_headers_of(
    upstream: BackendReply, map_location: Callable[[str], str | None] | None = None
) -> ReplyHeaders:
    """The backend's headers to pass on: without hop-by-hop ones or Content-Length.

    ``map_location``, if given, rewrites a Location value in the same pass (None drops
    it). A plain
    list, which aiohttp's response takes as it is: the hot path builds no multidict of
    its own.
    """
    headers: ReplyHeaders = []
    named = b""
    for name, value in upstream.raw_headers:
        lower = name.lower()
        if lower in _NOT_PASSED_ON:
            if lower == b"connection":
                named += b"," + value.lower()
            continue
        # header_text's answer for the common all-ASCII value, without the call.
        text = value.decode("ascii") if value.isascii() else header_text(value)
        if map_location is not None and lower == b"location":
            mapped = map_location(text)
            if mapped is None:
                continue
            text = mapped
        headers.append((name.decode("latin-1"), text))
    if named and named != b",keep-alive":  # the usual value, settled without a set
        # Connection: keep-alive names no header; anything else it names is dropped too.
        dropped = {token.strip().decode("latin-1") for token in named.split(b",")} - _NO_NAMES
        if dropped:
            headers = [(name, value) for name, value in headers if name.lower() not in dropped]
    return headers


_NOT_PASSED_ON = frozenset(name.encode() for name in HOP_BY_HOP_HEADERS | {"content-length"})
_NO_NAMES = frozenset({"", "keep-alive", "close"})


def replace_header(headers: ReplyHeaders, name: str, value: str) -> None:
    """Set ``name`` to ``value`` in a header list, dropping any earlier values."""
    lower = name.lower()
    headers[:] = [(n, v) for n, v in headers if n.lower() != lower]
    headers.append((name, value))
