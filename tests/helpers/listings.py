"""Listings to filter, and policies to filter them with: shared by the listing tests.

Generated listings have entries inside and outside the shard, hrefs as full URLs, paths
or relative references, percent-encoded in several styles, any DAV: prefix, optional
pretty-printing, 404 propstats before, after or instead of the 200 one.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import quote, unquote, urlsplit

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

DAV = "{DAV:}"
HEAD = (
    b'<?xml version="1.0" encoding="utf-8"?>'
    b'<D:multistatus xmlns:D="DAV:" xmlns:Z="urn:schemas-microsoft-com:">'
)
TAIL = b"</D:multistatus>"
OK = "<D:status>HTTP/1.1 200 OK</D:status>"
MISSING = "<D:status>HTTP/1.1 404 Not Found</D:status>"


# -- policies -----------------------------------------------------------------------


class ShardOne:
    """Shard 1 of four: /.ids/<4-7>/... shown under /.ids-s1, everything else dropped."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def client_paths(self, backend_path: str) -> Sequence[str]:
        self.seen.append(backend_path)
        if backend_path != "/.ids" and not backend_path.startswith("/.ids/"):
            return ()
        rest = backend_path[len("/.ids") :]
        if rest in ("", "/"):
            return ("/.ids-s1" + rest,)
        if rest[1] in "4567" and rest[2:3] in ("", "/"):
            return ("/.ids-s1" + rest,)
        return ()


class Identity:
    def client_paths(self, backend_path: str) -> Sequence[str]:
        return (backend_path,)


class RootListing:
    """/.ids is shown as itself and as two shard folders; everything else as is."""

    def client_paths(self, backend_path: str) -> Sequence[str]:
        if backend_path == "/.ids":
            return ("/.ids", "/.ids-s0", "/.ids-s1")
        return (backend_path,)


@dataclass
class Fixed:
    """Maps given paths as told; anything else is dropped."""

    table: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def client_paths(self, backend_path: str) -> Sequence[str]:
        return self.table.get(backend_path, ())


# -- documents ----------------------------------------------------------------------


def folder(href: str, name: str, *, first: str = "", p: str = "D") -> str:
    """One NzbDav folder <response>, one line; first is put before the 200 propstat."""
    return (
        f"<{p}:response><{p}:href>{href}</{p}:href>{first}<{p}:propstat><{p}:prop>"
        f"<{p}:displayname>{name}</{p}:displayname>"
        f"<{p}:resourcetype><{p}:collection /></{p}:resourcetype>"
        f"<{p}:getlastmodified>Mon, 01 Jan 0001 00:00:00 GMT</{p}:getlastmodified>"
        f"<Z:Win32FileAttributes>00000010</Z:Win32FileAttributes>"
        f"<{p}:getcontentlength>0</{p}:getcontentlength>"
        f"<{p}:iscollection>1</{p}:iscollection></{p}:prop>"
        f"<{p}:status>HTTP/1.1 200 OK</{p}:status></{p}:propstat></{p}:response>"
    )


def missing(prop: str = "getetag") -> str:
    return f"<D:propstat><D:prop><D:{prop} /></D:prop>{MISSING}</D:propstat>"


def doc(*responses: str) -> bytes:
    return HEAD + "".join(responses).encode() + TAIL


# -- generated listings ---------------------------------------------------------------
# relative references, percent-encoded in several styles, any DAV: prefix, optional
# pretty-printing, 404 propstats before, after or instead of the 200 one.

NAME_CHARS = "ab Z09-_.~%#?[]&<>'\"=+;:,@!$é中😀/"
HOSTS = ["http://localhost:8080", "https://nzbdav.example:443", "http://[::1]:8080"]
LAYOUTS = ["ok", "404-last", "404-only", "status"]


def _encode_segment(segment: str, style: str) -> str:
    if style == "strict":
        return quote(segment, safe="")
    if style == "dotnet":
        return quote(segment, safe="!$&'()*+,;=:@")
    if style == "lower":
        return re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), quote(segment, safe=""))
    # Only what must be escaped for the path to read back the same: a raw IRI.
    return "".join({"%": "%25", "?": "%3F", "#": "%23", "/": "%2F"}.get(c, c) for c in segment)


def _xml_text(text: str, charrefs: bool) -> str:
    if charrefs:
        table = {"&": "&#38;", "<": "&#60;", ">": "&#62;"}
    else:
        table = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
    return "".join(table.get(c, c) for c in text)


@dataclass
class Entry:
    path: str  # decoded
    raw: str  # percent-encoded absolute path
    href: str  # the href as written (before XML escaping)
    layout: str  # one of LAYOUTS or "404-first"


@dataclass
class Listing:
    data: bytes
    entries: list[Entry]
    host: str  # scheme and authority of full-URL hrefs, else ""
    base_path: str | None


def _no_dot_segment(name: str) -> bool:
    return all(piece not in (".", "..") for piece in name.split("/"))


names = st.text(NAME_CHARS, min_size=1, max_size=8).filter(_no_dot_segment)


@st.composite
def paths(draw: st.DrawFn) -> list[str]:
    """A decoded path as its segments."""
    kind = draw(st.sampled_from(["root", "shard", "shard", "other-shard", "elsewhere"]))
    if kind == "root":
        return [".ids", *draw(st.sampled_from([[], [""]]))]
    if kind == "elsewhere":
        top = draw(st.sampled_from(["content", "nzbs", ".ids-s1", ".idsx"]))
        return [top, *draw(st.lists(names, max_size=2))]
    first = draw(st.sampled_from("4567" if kind == "shard" else "012389abcdef"))
    return [".ids", first, *draw(st.lists(names, max_size=3))]


@st.composite
def listings(draw: st.DrawFn, *, allow_404_first: bool = True) -> Listing:
    prefix = draw(st.sampled_from(["D", "d", "a", ""]))
    space = draw(st.sampled_from(["", "\n", "\n  ", "\r\n\t"]))
    style = draw(st.sampled_from(["url", "path", "relative"]))
    charrefs = draw(st.booleans())
    layouts = [*LAYOUTS, "404-first"] if allow_404_first else LAYOUTS
    q = f"{prefix}:" if prefix else ""
    xmlns = f'xmlns:{prefix}="DAV:"' if prefix else 'xmlns="DAV:"'

    entries: list[Entry] = []
    host = draw(st.sampled_from(HOSTS)) if style == "url" else ""
    for parts in draw(st.lists(paths(), max_size=8)):
        encoding = draw(st.sampled_from(["strict", "dotnet", "lower", "raw"]))
        raw = "/" + "/".join(_encode_segment(part, encoding) for part in parts)
        href = host + raw
        if style == "relative":  # relative to /.ids/
            inside = raw.startswith("/.ids/") and len(raw) > len("/.ids/")
            href = raw.removeprefix("/.ids/") if inside else ".." + raw
        layout = draw(st.sampled_from(layouts))
        entries.append(Entry("/" + "/".join(parts), raw, href, layout))

    def element(name: str, content: str) -> str:
        return f"{space}<{q}{name}>{content}</{q}{name}>"

    def propstat(status: str, props: str) -> str:
        return element("propstat", element("prop", props) + element("status", status) + space)

    body = []
    for entry in entries:
        name = _xml_text(entry.path.rstrip("/").rpartition("/")[2], charrefs)
        good = propstat(
            "HTTP/1.1 200 OK",
            element("displayname", name)
            + element("resourcetype", f"<{q}collection/>")
            + '<Z:Win32FileAttributes xmlns:Z="urn:schemas-microsoft-com:">'
            + "00000010</Z:Win32FileAttributes>",
        )
        bad = propstat("HTTP/1.1 404 Not Found", f"<{q}getetag/>")
        inner = {
            "ok": good,
            "404-first": bad + good,
            "404-last": good + bad,
            "404-only": bad,
            "status": element("status", "HTTP/1.1 200 OK"),
        }[entry.layout]
        body.append(
            element("response", element("href", _xml_text(entry.href, charrefs)) + inner + space)
        )
    root = f"<{q}multistatus {xmlns}>{''.join(body)}{space}</{q}multistatus>"
    text = f'<?xml version="1.0" encoding="utf-8"?>{space}{root}{space}'
    return Listing(text.encode(), entries, host, "/.ids/" if style == "relative" else None)


def shard_one_paths(listing: Listing) -> list[str]:
    return [p for entry in listing.entries for p in ShardOne().client_paths(entry.path)]


def written_hrefs(out: bytes) -> list[str]:
    """The href texts of a well-formed multistatus, in order."""
    root = ET.fromstring(out)
    return [
        href.text or ""
        for response in root.iter(f"{DAV}response")
        for href in response.findall(f"{DAV}href")
    ]


def decoded_path(href: str, base_path: str | None) -> str:
    """What a client makes of a written href (relative ones here are relative to /.ids/)."""
    path = urlsplit(href).path
    if base_path is not None and not path.startswith("/"):
        path = "/" + path.removeprefix("../") if path.startswith("../") else base_path + path
    return unquote(path, errors="strict")


PROPERTY_SETTINGS = settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


class Scatter:
    """Keeps, drops or moves each path under one of several heads, by its length."""

    def client_paths(self, backend_path: str) -> Sequence[str]:
        kind = len(backend_path) % 5
        if kind == 0:
            return ()
        if kind == 1:
            return (backend_path,)
        if kind == 2:
            return ("/my views/#1" + backend_path,)
        second = backend_path.find("/", 1)
        rest = backend_path[second:] if second > 0 else ""
        return (f"/s{len(backend_path) % 3}" + rest,)


POLICIES = [ShardOne, Identity, RootListing, Scatter]
# Content that is well-formed anywhere inside an element, and takes a response off the
# fast path or tests how it ends.
CONTENT = [
    "<!-- c -->",
    "<![CDATA[x]]>",
    "<?pi x?>",
    "&amp;",
    "&#38;",
    "\r\n",
    " \t",
    "é",
    "]",
    "<D:responsedescription>d</D:responsedescription>",
    '<X:a xmlns:X="urn:x"><D:href>/.ids/5</D:href></X:a>',
    '<X:response xmlns:X="urn:x"/>',
    '<D:status xmlns:D="DAV:">HTTP/1.1 404 x</D:status>',
    "<D:propstat><D:prop/><D:status>HTTP/1.1 404 x</D:status></D:propstat>",
    "<D:propstat><D:prop/></D:propstat>",
]
# Bytes that break a body wherever they land (or, by chance, do not).
BREAKAGE = [b"<", b">", b"&", b"&bad;", b"]]>", b"\x01", b"\xff", b"\xef\xbf\xbe", b"</x>"]


@st.composite
def unusual(draw: st.DrawFn, listing: Listing) -> bytes:
    """The listing with content inserted after tags and tags spelt differently."""
    data = listing.data
    if draw(st.booleans()):
        data = data.replace(b"<D:response>", b"<D:response >", 1)
    if draw(st.booleans()):
        data = data.replace(b"</D:response>", b"</D:response\n>", 1)
    if draw(st.booleans()):  # a second prefix for DAV:, used by one response
        data = data.replace(b'xmlns:D="DAV:"', b'xmlns:D="DAV:" xmlns:q="DAV:"', 1)
        data = data.replace(b"<D:response>", b"<q:response>", 1)
        data = data.replace(b"</D:response>", b"</q:response>", 1)
    if draw(st.booleans()):  # not UTF-8: every byte reads as a character
        data = data.replace(b'encoding="utf-8"', b'encoding="ISO-8859-1"')
    tag_ends = [m.end() for m in re.finditer(rb">", data)][1:-1]  # inside the root
    for _ in range(draw(st.integers(0, 3))):
        if tag_ends:
            at = draw(st.sampled_from(tag_ends))
            snippet = draw(st.sampled_from(CONTENT)).encode()
            data = data[:at] + snippet + data[at:]
            tag_ends = [end + len(snippet) if end > at else end for end in tag_ends]
    return data


@st.composite
def broken(draw: st.DrawFn, data: bytes) -> bytes:
    """data with bytes inserted, deleted or cut off at random places."""
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(data)))
        edit = draw(st.sampled_from(["insert", "delete", "truncate"]))
        if edit == "insert":
            data = data[:at] + draw(st.sampled_from(BREAKAGE)) + data[at:]
        elif edit == "delete":
            data = data[:at] + data[at + draw(st.integers(1, 8)) :]
        else:
            data = data[:at]
    return data


HEX = "0123456789abcdef"


@st.composite
def nzbdav_listings(draw: st.DrawFn, *, tidy: bool | None = None) -> bytes:
    """NzbDav's listing of a folder of its /.ids tree (shard 1's when tidy), one line.

    Untidy ones have odd names, a stray entry of another folder, 404 propstats first.
    """
    if tidy is None:
        tidy = draw(st.booleans())
    prefix = draw(st.sampled_from(["D", "d", ""]))
    space = draw(st.sampled_from(["", "", "\n", "\r\n  "]))
    host = draw(st.sampled_from(["http://127.0.0.1:8080", "https://[::1]:443", "", "HTTP://h"]))
    q = f"{prefix}:" if prefix else ""
    xmlns = f'xmlns:{prefix}="DAV:"' if prefix else 'xmlns="DAV:"'
    levels = draw(st.lists(st.sampled_from(HEX), min_size=1, max_size=4))
    levels[0] = draw(st.sampled_from("4567" if tidy or draw(st.booleans()) else HEX))
    folder = "/.ids/" + "/".join(levels)
    name = st.one_of(st.sampled_from(HEX), st.uuids().map(str))
    if not tidy:
        name = st.one_of(name, st.sampled_from(["a b", "x%41", "&amp;", "é", "..", "-_", "a>"]))
    entries = [(folder + "/", levels[-1])]
    entries += [(f"{folder}/{leaf}", leaf) for leaf in draw(st.lists(name, max_size=17))]
    if not tidy and draw(st.booleans()):  # one entry of another folder, maybe another shard's
        stray = ("/.ids/" + draw(st.sampled_from(HEX)), "x")
        entries.insert(draw(st.integers(0, len(entries))), stray)

    def element(name: str, content: str) -> str:
        return f"{space}<{q}{name}>{content}</{q}{name}>"

    body = []
    for path, leaf in entries:
        props = element("displayname", leaf) + element("getcontentlength", "0")
        good = element("propstat", element("prop", props) + element("status", "HTTP/1.1 200 OK"))
        bad = element(
            "propstat", element("prop", f"<{q}getetag/>") + element("status", "HTTP/1.1 404 x")
        )
        inner = bad + good if not tidy and draw(st.integers(0, 3)) == 0 else good
        body.append(element("response", element("href", host + path) + inner))
    root = f"<{q}multistatus {xmlns}>{''.join(body)}{space}</{q}multistatus>"
    return f'<?xml version="1.0" encoding="utf-8"?>{space}{root}{space}'.encode()
