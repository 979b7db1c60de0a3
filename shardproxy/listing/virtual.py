"""NzbDav's virtual ``.ids`` folders above the fifth level, listed as a shard view shows them.

Above the fifth level NzbDav's ``.ids`` tree is fixed: every folder lists the sixteen
folders ``0``..``f``, all dated ``Mon, 01 Jan 0001``, whatever the library holds. So a
shard view's folders there follow from the shard map alone, and this module writes the
listing the proxy would send after filtering NzbDav's answer (``filter_listing`` with
the shard's policy): the same bytes, property-tested against the NzbDav stand-in. Hrefs
are full URLs built from the request's Host header, as NzbDav writes them; a Host whose
spelling NzbDav might normalise in ways not modelled here gets no answer (None), and the
request goes to NzbDav.
"""

from __future__ import annotations

import functools
import re
from typing import Final
from xml.sax.saxutils import escape

from shardproxy.core.shards import HEX_DIGITS, ID_LEVELS, IDS_NAME, IDS_ROOT, ShardMap, ViewPath
from shardproxy.listing.propfind import DAV_NS, WIN32_NS, AskedProps, PropMode, PropName

CONTENT_TYPE: Final = 'text/xml; charset="utf-8"'
VIRTUAL_DATE: Final = "Mon, 01 Jan 0001 00:00:00 GMT"
"""NzbDav's date for every virtual folder: .NET's DateTime.MinValue."""

_HEAD: Final = (
    f'<?xml version="1.0" encoding="utf-8"?><D:multistatus xmlns:D="{DAV_NS}" xmlns:Z="{WIN32_NS}">'
)
_TAIL: Final = "</D:multistatus>"
_STATUS_OK: Final = "<D:status>HTTP/1.1 200 OK</D:status>"
_NAME: Final = "\0"  # where a folder's name goes in a propstat template (XML has no NUL)

# A virtual folder's properties in NzbDav's order, values as written; the displayname's
# value is the folder's name.
_FOLDER_PROPS: Final[tuple[tuple[PropName, str], ...]] = (
    ((DAV_NS, "displayname"), _NAME),
    ((DAV_NS, "resourcetype"), "<D:collection />"),
    ((DAV_NS, "getlastmodified"), VIRTUAL_DATE),
    ((WIN32_NS, "Win32FileAttributes"), "00000010"),
    ((DAV_NS, "quota-available-bytes"), str(2**63 - 1)),
    ((DAV_NS, "quota-used-bytes"), "0"),
    ((DAV_NS, "getcontentlength"), "0"),
    ((DAV_NS, "iscollection"), "1"),
)

_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
# A Host NzbDav writes back as it came but for case and a ":80": a dotted quad in its
# canonical spelling, or a name whose last label starts with a letter (so .NET cannot
# read it as a number like "127.1" or "0x7f.1" and rewrite it); a port without leading
# zeros. IPv6 literals and anything else are left to NzbDav.
_HOST: Final = re.compile(
    rf"(?:{_OCTET}(?:\.{_OCTET}){{3}}|(?:[A-Za-z0-9-]+\.)*[A-Za-z][A-Za-z0-9-]*)"
    r"(?::([1-9][0-9]{0,4}))?"
)


def nzbdav_origin(host: str | None) -> str | None:
    """``http://host[:port]`` as NzbDav writes it in hrefs for this Host header, or None
    if this module does not claim to know how NzbDav would spell it."""
    if host is None:
        return None
    plain = _HOST.fullmatch(host)
    if plain is None or (plain[1] is not None and int(plain[1]) > 65535):
        return None
    lowered = host.lower()
    return "http://" + (lowered[:-3] if lowered.endswith(":80") else lowered)


def virtual_folder(backend_path: str, shard: int, shard_map: ShardMap) -> ViewPath | None:
    """The place in shard ``shard``'s view of a decoded ``/.ids/...`` path that names a
    folder above the fifth level; None for anything else (leaf folders, files)."""
    if not backend_path.startswith(IDS_ROOT):
        return None
    rest = backend_path[len(IDS_ROOT) :]
    slash = rest.endswith("/")
    names = (rest[:-1] if slash else rest).split("/")
    if names[0]:
        return None  # "/.idsx", not "/.ids"
    levels = "".join(names[1:])
    if len(names) - 1 >= ID_LEVELS or len(levels) != len(names) - 1:
        return None  # a leaf folder or deeper, or a level that is not one character
    if any(level not in HEX_DIGITS for level in levels):
        return None
    if levels and shard_map.shard_of(levels[0]) != shard:
        return None
    return ViewPath(shard, levels, "", slash)


def render_virtual_folder(
    folder: ViewPath,
    origin: str,
    depth: int,
    asked: AskedProps,
    shard_map: ShardMap,
    *,
    max_bytes: int | None = None,
) -> bytes | None:
    """The 207 body for a PROPFIND of ``folder`` (Depth 0 or 1) asking ``asked``; None if
    it would be larger than ``max_bytes``.

    ``origin`` comes from ``nzbdav_origin``. At the view's root the children are the
    first characters the shard owns; below it, all sixteen. (A body naming thousands of
    properties a folder lacks makes a listing megabytes long, as it would from NzbDav.)
    """
    parts = _propstat_parts(asked)
    href = origin + str(folder)
    names: list[tuple[str, str]] = [(href, folder.levels[-1] if folder.levels else IDS_NAME)]
    if depth > 0:
        # NzbDav's child href: the folder's href with one trailing "/" cut, "/", the name.
        parent = href[:-1] if href.endswith("/") else href
        owners = shard_map.owner_of_char
        names += [
            (f"{parent}/{c}", c)
            for c, owner in zip(HEX_DIGITS, owners, strict=True)
            if folder.levels or owner == folder.shard
        ]
    out = [_HEAD]
    size = len(_HEAD) + len(_TAIL)
    for entry_href, name in names:
        out.append(_response(entry_href, name, parts))
        size += len(out[-1])  # characters: never more than the bytes they encode to
        if max_bytes is not None and size > max_bytes:
            return None
    out.append(_TAIL)
    body = "".join(out).encode()
    return None if max_bytes is not None and len(body) > max_bytes else body


def _response(href: str, name: str, parts: tuple[str, ...]) -> str:
    return f"<D:response><D:href>{href}</D:href>{name.join(parts)}</D:response>"


@functools.lru_cache(maxsize=64)
def _propstat_parts(asked: AskedProps) -> tuple[str, ...]:
    """A virtual folder's propstats for ``asked``, split where its name goes.

    As NzbDav writes them and the shard filter passes them on: the 200 propstat first,
    then one 404 propstat per name asked for that a folder does not have. Cached: a pure
    function of its argument, and clients ask in a handful of ways.
    """
    if asked.mode == PropMode.NAMES:
        # NWebDav puts the names straight into the propstat, without <D:prop>.
        names = "".join(_empty_element(name) for name, _ in _FOLDER_PROPS)
        return (f"<D:propstat>{names}{_STATUS_OK}</D:propstat>",)
    values = dict(_FOLDER_PROPS)
    wanted: list[PropName] = []
    if asked.mode & PropMode.ALL:
        wanted += values
    if asked.mode & PropMode.SELECTED:
        wanted += asked.names
    found: list[str] = []
    missing: list[str] = []
    for name in dict.fromkeys(wanted):
        if name in values:
            tag, _ = _tag(name)
            found.append(f"<{tag}>{values[name]}</{tag}>")
        else:
            missing.append(
                f"<D:propstat><D:prop>{_empty_element(name)}</D:prop>"
                "<D:status>HTTP/1.1 404 Not Found</D:status>"
                f"<D:responsedescription>Property {escape(_clark(name))} is not supported."
                "</D:responsedescription></D:propstat>"
            )
    ok = [f"<D:propstat><D:prop>{''.join(found)}</D:prop>{_STATUS_OK}</D:propstat>"]
    return tuple("".join((ok if found else []) + missing).split(_NAME))


def _tag(name: PropName) -> tuple[str, str]:
    """An element's tag as .NET's XmlWriter writes it, and its namespace declaration."""
    namespace, local = name
    if namespace == DAV_NS:
        return f"D:{local}", ""
    if namespace == WIN32_NS:
        return f"Z:{local}", ""
    if namespace:
        return local, f' xmlns="{escape(namespace, {chr(34): "&quot;"})}"'
    return local, ""


def _empty_element(name: PropName) -> str:
    tag, declaration = _tag(name)
    return f"<{tag}{declaration} />"


def _clark(name: PropName) -> str:
    """A name as .NET's ``XName.ToString()`` shows it: ``{namespace}local``."""
    namespace, local = name
    return f"{{{namespace}}}{local}" if namespace else local
