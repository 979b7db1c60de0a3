"""What a PROPFIND request body asks for, read the way NzbDav's WebDAV library reads it.

NWebDav takes no body, a root that is not ``DAV:propfind`` or a ``propfind`` without
children as allprop; otherwise the last of ``propname``, ``allprop``, ``include`` and
``prop`` (any other child counts as ``prop``) decides the mode, and the children of
``include`` and ``prop`` elements are the names asked for. .NET's XML reader refuses a
DTD; so does this one (``safexml``'s parser), which also keeps entity declarations from
ever being expanded.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from xml.parsers import expat

from shardproxy.listing.safexml import NAMESPACE_SEPARATOR as _NS_SEP
from shardproxy.listing.safexml import ForbiddenXml, new_parser, release

DAV_NS = "DAV:"
WIN32_NS = "urn:schemas-microsoft-com:"

PropName = tuple[str, str]
"""A property name as ``(namespace, local name)``; the namespace may be empty."""


class PropfindBodyError(ValueError):
    """A PROPFIND body NzbDav's XML reader would refuse (NzbDav answers 500)."""


class PropMode(enum.Flag):
    """What a PROPFIND asks for (NWebDav's ``PropertyMode``)."""

    NONE = 0
    NAMES = 1
    ALL = 2
    SELECTED = 4


@dataclass(frozen=True)
class AskedProps:
    """A PROPFIND body as NWebDav understands it: the mode and the names asked for."""

    mode: PropMode
    names: tuple[PropName, ...] = ()


ALLPROP = AskedProps(PropMode.ALL)


def _name(expat_name: str) -> PropName:
    namespace, sep, local = expat_name.rpartition(_NS_SEP)
    return (namespace, local) if sep else ("", expat_name)


class _Reader:
    """Collects the root, its children and their children's names as expat reports them."""

    def __init__(self) -> None:
        self.depth = 0
        self.root: PropName | None = None
        self.children = 0
        self.mode = PropMode.NONE
        self.collecting = False
        self.names: list[PropName] = []

    def start(self, name: str, _attributes: object) -> None:
        self.depth += 1
        if self.depth == 1:
            self.root = _name(name)
        elif self.depth == 2:
            self.children += 1
            kind = _name(name)
            self.collecting = kind not in ((DAV_NS, "propname"), (DAV_NS, "allprop"))
            if kind == (DAV_NS, "propname"):
                self.mode = PropMode.NAMES
            elif kind == (DAV_NS, "allprop"):
                self.mode = PropMode.ALL
            elif kind == (DAV_NS, "include"):
                self.mode = PropMode.ALL | PropMode.SELECTED
            else:
                self.mode = PropMode.SELECTED
        elif self.depth == 3 and self.collecting:
            self.names.append(_name(name))

    def end(self, _name: str) -> None:
        self.depth -= 1


def read_propfind(body: bytes) -> AskedProps:
    """What ``body`` asks for; PropfindBodyError where NzbDav would answer 500."""
    if not body:
        return ALLPROP
    reader = _Reader()
    parser = new_parser()
    parser.StartElementHandler = reader.start
    parser.EndElementHandler = reader.end
    try:
        parser.Parse(body, True)
    except expat.ExpatError as exc:
        raise PropfindBodyError(f"malformed PROPFIND body: {exc}") from None
    except ForbiddenXml as exc:
        raise PropfindBodyError(f"a DTD is prohibited in a PROPFIND body: {exc}") from None
    finally:
        release(parser)
    if reader.root != (DAV_NS, "propfind") or reader.children == 0:
        return ALLPROP
    return AskedProps(reader.mode, tuple(reader.names))
