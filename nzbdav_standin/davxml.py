"""WebDAV XML as NWebDav reads and writes it.

Replies are what .NET's ``XmlWriter`` makes of NWebDav's ``XDocument``: an XML
declaration, the root ``<D:multistatus xmlns:D="DAV:" xmlns:Z="urn:...">``,
everything on one line, empty elements written ``<D:collection />`` (with a
space), DAV elements prefixed ``D:``, Win32 ones ``Z:``, any other namespace
declared inline as the default one.

PROPFIND bodies are parsed the NWebDav way: no body, a body whose root is
not ``DAV:propfind``, or an empty ``propfind`` all mean allprop; the last of
``propname``/``allprop``/``include``/``prop`` decides the mode.
"""

from __future__ import annotations

import enum
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from xml.sax.saxutils import escape

DAV_NS = "DAV:"
WIN32_NS = "urn:schemas-microsoft-com:"

XML_DECLARATION = '<?xml version="1.0" encoding="utf-8"?>'
MULTISTATUS_OPEN = f'<D:multistatus xmlns:D="{DAV_NS}" xmlns:Z="{WIN32_NS}">'
MULTISTATUS_CLOSE = "</D:multistatus>"
CONTENT_TYPE = 'text/xml; charset="utf-8"'

PropName = tuple[str, str]
"""A property name as ``(namespace, local name)``; the namespace may be empty."""

PropValue = str | tuple[PropName, ...]
"""Text, or a list of empty child elements (``resourcetype``)."""


class XmlBodyError(ValueError):
    """A request body .NET's XML reader would reject: NzbDav answers 500."""


def _tag(name: PropName) -> tuple[str, str]:
    namespace, local = name
    if namespace == DAV_NS:
        return f"D:{local}", ""
    if namespace == WIN32_NS:
        return f"Z:{local}", ""
    if namespace:
        return local, f' xmlns="{escape(namespace, {chr(34): "&quot;"})}"'
    return local, ""


def empty_element(name: PropName) -> str:
    """Return ``<D:name />`` as .NET writes an empty element."""
    tag, declaration = _tag(name)
    return f"<{tag}{declaration} />"


def element(name: PropName, value: PropValue) -> str:
    """Return one property element with its value."""
    tag, declaration = _tag(name)
    if isinstance(value, str):
        inner = escape(value)
    else:
        inner = "".join(empty_element(child) for child in value)
    return f"<{tag}{declaration}>{inner}</{tag}>"


def status_line(code: int) -> str:
    """Return ``HTTP/1.1 <code> <reason>`` as written in ``<D:status>``."""
    return f"HTTP/1.1 {code} {HTTPStatus(code).phrase}"


def clark(name: PropName) -> str:
    """Return a name as .NET's ``XName.ToString()`` shows it: ``{namespace}local``."""
    namespace, local = name
    return f"{{{namespace}}}{local}" if namespace else local


class PropMode(enum.Flag):
    """What a PROPFIND asks for (NWebDav's ``PropertyMode``)."""

    NONE = 0
    NAMES = 1
    ALL = 2
    SELECTED = 4


@dataclass(frozen=True)
class PropRequest:
    """A parsed PROPFIND body."""

    mode: PropMode
    names: tuple[PropName, ...] = field(default=())


ALLPROP = PropRequest(PropMode.ALL)


def _split_tag(tag: str) -> PropName:
    if tag.startswith("{"):
        namespace, _, local = tag[1:].partition("}")
        return namespace, local
    return "", tag


def _parse_root(body: bytes) -> ET.Element:
    if b"<!DOCTYPE" in body:
        # XmlReader's default settings prohibit DTDs.
        raise XmlBodyError("DTD is prohibited in this XML document")
    try:
        return ET.fromstring(body)
    except ET.ParseError as error:
        raise XmlBodyError(str(error)) from error


def parse_propfind(body: bytes) -> PropRequest:
    """Parse a PROPFIND body; raise ``XmlBodyError`` where .NET would throw."""
    if not body:
        return ALLPROP
    root = _parse_root(body)
    if _split_tag(root.tag) != (DAV_NS, "propfind") or len(root) == 0:
        return ALLPROP
    mode = PropMode.NONE
    names: list[PropName] = []
    for child in root:
        kind = _split_tag(child.tag)
        if kind == (DAV_NS, "propname"):
            mode = PropMode.NAMES
        elif kind == (DAV_NS, "allprop"):
            mode = PropMode.ALL
        else:
            mode = (
                PropMode.ALL | PropMode.SELECTED
                if kind == (DAV_NS, "include")
                else PropMode.SELECTED
            )
            names.extend(_split_tag(grandchild.tag) for grandchild in child)
    return PropRequest(mode, tuple(names))


def render_response(
    href: str, props: Sequence[tuple[PropName, PropValue]], request: PropRequest
) -> str:
    """Return one ``<D:response>`` of a PROPFIND reply.

    Unsupported requested properties each get their own 404 propstat, written
    before the 200 propstat because NWebDav adds that one last. A response
    with no supported property has no 200 propstat at all.
    """
    parts = ["<D:response><D:href>", escape(href), "</D:href>"]
    status_ok = f"<D:status>{status_line(200)}</D:status>"
    if request.mode == PropMode.NAMES:
        # NWebDav puts the names straight into the propstat, without <D:prop>.
        names = "".join(empty_element(name) for name, _ in props)
        parts.append(f"<D:propstat>{names}{status_ok}</D:propstat>")
        parts.append("</D:response>")
        return "".join(parts)
    values = dict(props)
    found: list[str] = []
    added: set[PropName] = set()
    wanted: list[PropName] = []
    if request.mode & PropMode.ALL:
        wanted.extend(name for name, _ in props)
    if request.mode & PropMode.SELECTED:
        wanted.extend(request.names)
    for name in wanted:
        if name in added:
            continue
        added.add(name)
        if name in values:
            found.append(element(name, values[name]))
        else:
            parts.append(
                f"<D:propstat><D:prop>{empty_element(name)}</D:prop>"
                f"<D:status>{status_line(404)}</D:status>"
                f"<D:responsedescription>Property {escape(clark(name))} is not supported."
                "</D:responsedescription></D:propstat>"
            )
    if found:
        parts.append(f"<D:propstat><D:prop>{''.join(found)}</D:prop>{status_ok}</D:propstat>")
    parts.append("</D:response>")
    return "".join(parts)


def multistatus(responses: Iterable[str]) -> Iterator[str]:
    """Yield a whole multistatus document, piece by piece, one line in all."""
    yield XML_DECLARATION + MULTISTATUS_OPEN
    yield from responses
    yield MULTISTATUS_CLOSE


def render_status_response(href: str, code: int) -> str:
    """Return a ``<D:response>`` with an href and a bare status (COPY/MOVE errors)."""
    return (
        f"<D:response><D:href>{escape(href)}</D:href>"
        f"<D:status>{status_line(code)}</D:status></D:response>"
    )


def parse_proppatch(body: bytes) -> list[PropName]:
    """Return the property names a PROPPATCH sets or removes; ``XmlBodyError`` if malformed."""
    if not body:
        raise XmlBodyError("PROPPATCH needs a propertyupdate body")
    root = _parse_root(body)
    if _split_tag(root.tag) != (DAV_NS, "propertyupdate"):
        raise XmlBodyError("Invalid root element (expected 'propertyupdate')")
    names: list[PropName] = []
    for action in root:
        if _split_tag(action.tag) not in {(DAV_NS, "set"), (DAV_NS, "remove")}:
            continue
        for prop in action:
            if _split_tag(prop.tag) == (DAV_NS, "prop"):
                names.extend(_split_tag(item.tag) for item in prop)
    return names


def render_proppatch(href: str, results: Sequence[tuple[PropName, int]]) -> str:
    """Return a PROPPATCH reply: one response, one propstat per property that failed."""
    propstats = "".join(
        f"<D:propstat><D:prop>{empty_element(name)}</D:prop>"
        f"<D:status>{status_line(code)}</D:status></D:propstat>"
        for name, code in results
        if code != 200
    )
    response = f"<D:response><D:href>{escape(href)}</D:href>{propstats}</D:response>"
    return "".join(multistatus([response]))


@dataclass(frozen=True)
class LockRequest:
    """The parts of a LOCK body NWebDav uses."""

    scope: str
    owner: str


def parse_lockinfo(body: bytes) -> LockRequest:
    """Parse a LOCK body; ``XmlBodyError`` for anything NWebDav rejects with 400."""
    if not body:
        raise XmlBodyError("Request-content couldn't be read")
    root = _parse_root(body)
    if _split_tag(root.tag) != (DAV_NS, "lockinfo"):
        raise XmlBodyError("Invalid root element (expected 'lockinfo')")

    def only_child(parent_name: str) -> ET.Element:
        parents = [c for c in root if _split_tag(c.tag) == (DAV_NS, parent_name)]
        if len(parents) != 1 or len(parents[0]) != 1:
            raise XmlBodyError(f"expected one {parent_name} with one child")
        return parents[0][0]

    scope = _split_tag(only_child("lockscope").tag)
    if scope not in {(DAV_NS, "exclusive"), (DAV_NS, "shared")}:
        raise XmlBodyError("Invalid lockscope (expected 'exclusive' or 'shared')")
    if _split_tag(only_child("locktype").tag) != (DAV_NS, "write"):
        raise XmlBodyError("Invalid locktype (expected 'write')")
    owner = only_child("owner")
    return LockRequest(scope[1], "".join(owner.itertext()))


def render_lock(
    *, scope: str, depth: str, owner: str, timeout: str, token: str, lock_root: str
) -> str:
    """Return a LOCK reply body (``<D:prop><D:lockdiscovery>``)."""
    return (
        XML_DECLARATION
        + f'<D:prop xmlns:D="{DAV_NS}" xmlns:Z="{WIN32_NS}"><D:lockdiscovery><D:activelock>'
        + "<D:locktype><D:write /></D:locktype>"
        + f"<D:lockscope><D:{scope} /></D:lockscope>"
        + f"<D:depth>{depth}</D:depth>"
        + f"<D:owner><D:href>{escape(owner)}</D:href></D:owner>"
        + f"<D:timeout>{timeout}</D:timeout>"
        + f"<D:locktoken><D:href>{escape(token)}</D:href></D:locktoken>"
        + f"<D:lockroot><D:href>{escape(lock_root)}</D:href></D:lockroot>"
        + "</D:activelock></D:lockdiscovery></D:prop>"
    )
