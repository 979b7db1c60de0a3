"""NzbDav's WebDAV store: how the library looks as collections and items.

This reproduces NzbDav's ``DatabaseStore`` family: the root with its four
folders and README, ``/content`` with empty folders for configured
categories, ``/completed-symlinks`` mirroring ``/content`` with
``.rclonelink`` files, the virtual ``/.ids`` levels, the ``/nzbs`` queue, the
in-memory empty files a zero-byte PUT creates anywhere, and what each kind of
folder does on DELETE and PUT. Properties are those of NzbDav's two property
managers, in their order.
"""

from __future__ import annotations

import enum
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from nzbdav_standin.catalog import (
    CONTENT_ROOT,
    ID_PREFIX_LENGTH,
    IDS_ROOT,
    MIN_DATE,
    NZBS_ROOT,
    SYMLINKS_ROOT,
    Library,
    StandinFile,
)
from nzbdav_standin.content import parse_guid
from nzbdav_standin.davxml import DAV_NS, WIN32_NS, PropName, PropValue

_HEX_ALPHABET = "0123456789abcdef"
_INT64_MAX = str(2**63 - 1)
_SYMLINK_HIDE_SECONDS = 30.0
_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

# A few of ASP.NET Core's FileExtensionContentTypeProvider mappings (plus
# NzbDav's .flac override); anything else is application/octet-stream.
_CONTENT_TYPES = {
    ".avi": "video/x-msvideo",
    ".flac": "audio/flac",
    ".jpg": "image/jpeg",
    ".json": "application/json",
    ".m4a": "audio/mp4",
    ".mkv": "video/x-matroska",
    ".mov": "video/quicktime",
    ".mp3": "audio/mpeg",
    ".mp4": "video/mp4",
    ".png": "image/png",
    ".ts": "video/vnd.dlna.mpeg-tts",
    ".txt": "text/plain",
    ".webm": "video/webm",
    ".wmv": "video/x-ms-wmv",
    ".xml": "text/xml",
}


def http_date(moment: datetime) -> str:
    """Format a date as .NET's ``ToString("R")``, year 1 included."""
    utc = moment.astimezone(UTC)
    return (
        f"{_WEEKDAYS[utc.weekday()]}, {utc.day:02d} {_MONTHS[utc.month - 1]} {utc.year:04d} "
        f"{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d} GMT"
    )


def content_type(name: str) -> str:
    """Return the content type NzbDav reports for a file name."""
    dot = name.rfind(".")
    if dot == -1:
        return "application/octet-stream"
    return _CONTENT_TYPES.get(name[dot:].lower(), "application/octet-stream")


class InvalidGuidError(ValueError):
    """A name below the fifth ``/.ids`` level is not a GUID: ``Guid.Parse`` throws, hence 500."""


class Kind(enum.Enum):
    """The kinds of collection NzbDav has."""

    ROOT = "root"
    CONTENT = "content"
    SYMLINKS = "symlinks"
    IDS = "ids"
    NZBS = "nzbs"
    NZBS_CATEGORY = "nzbs-category"
    EMPTY = "empty"


@dataclass(frozen=True)
class Collection:
    """A WebDAV collection.

    ``target`` is what it stands for: the ``/content`` folder it shows (or
    mirrors, for ``/completed-symlinks``), the id prefix of an ``/.ids``
    level, or the ``/nzbs/<category>`` path. ``key`` is NzbDav's
    ``UniqueKey``, which scopes the in-memory empty files.
    """

    kind: Kind
    name: str
    target: str
    last_modified: datetime
    key: str


@dataclass(frozen=True)
class Item:
    """A WebDAV file: its name in this place and the bytes behind it."""

    name: str
    file: StandinFile

    @property
    def last_modified(self) -> datetime:
        """NzbDav's ``CreatedAt`` of the item."""
        return self.file.last_modified


Entry = Collection | Item


def _collection_props(collection: Collection) -> list[tuple[PropName, PropValue]]:
    return [
        ((DAV_NS, "displayname"), collection.name),
        ((DAV_NS, "resourcetype"), ((DAV_NS, "collection"),)),
        ((DAV_NS, "getlastmodified"), http_date(collection.last_modified)),
        ((WIN32_NS, "Win32FileAttributes"), "00000010"),
        ((DAV_NS, "quota-available-bytes"), _INT64_MAX),
        ((DAV_NS, "quota-used-bytes"), "0"),
        ((DAV_NS, "getcontentlength"), "0"),
        ((DAV_NS, "iscollection"), "1"),
    ]


def _item_props(item: Item) -> list[tuple[PropName, PropValue]]:
    return [
        ((DAV_NS, "displayname"), item.name),
        ((DAV_NS, "getcontentlength"), str(item.file.size)),
        ((DAV_NS, "getcontenttype"), content_type(item.name)),
        ((DAV_NS, "getlastmodified"), http_date(item.last_modified)),
        ((WIN32_NS, "Win32FileAttributes"), "00000080"),
        # Not a standard resourcetype: NzbDav marks files with <D:item/>.
        ((DAV_NS, "resourcetype"), ((DAV_NS, "item"),)),
        ((DAV_NS, "iscollection"), "0"),
    ]


def properties(entry: Entry) -> list[tuple[PropName, PropValue]]:
    """Return an entry's live properties, in NzbDav's order."""
    if isinstance(entry, Collection):
        return _collection_props(entry)
    return _item_props(entry)


def split_path(path: str) -> tuple[str, str]:
    """Split a decoded path into parent and name like NWebDav's ``SplitUri`` (one ``/`` cut)."""
    trimmed = path[:-1] if path.endswith("/") else path
    parent, _, name = trimmed.rpartition("/")
    return parent, name


class Store:
    """The library seen through NzbDav's WebDAV store, with its in-memory state."""

    def __init__(
        self,
        library: Library,
        *,
        mount_dir: str = "/mnt/nzbdav",
        enforce_readonly: bool = True,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """Wrap ``library``; ``mount_dir`` is where rclone mounts NzbDav (for symlink targets)."""
        self.catalog = library
        self.mount_dir = mount_dir.rstrip("/")
        self.enforce_readonly = enforce_readonly
        self._now = now
        self._monotonic = monotonic
        # Zero-byte PUTs, kept per collection key like NzbDav's static
        # BaseStoreEmptyFileManager; they live as long as the store.
        self._empty_files: dict[str, dict[str, StandinFile]] = {}
        # Symlinks "deleted" by a client, hidden for a sliding 30 seconds.
        self._hidden: dict[str, float] = {}
        self.root = Collection(Kind.ROOT, "/", "", MIN_DATE, "dir:/")

    # -- resolving ---------------------------------------------------------

    def resolve(self, path: str) -> Entry | None:
        """Return the entry at a decoded request path, or ``None``.

        Raises ``InvalidGuidError`` for a non-GUID name below the fifth
        ``/.ids`` level.
        """
        trimmed = path.strip("/")
        if not trimmed:
            return self.root
        current: Entry = self.root
        segments = trimmed.split("/")
        for index, segment in enumerate(segments):
            if not isinstance(current, Collection):
                return None
            found = self.child(current, segment)
            if found is None:
                return None
            current = found
            if index == len(segments) - 1:
                return current
        return current

    def child(self, collection: Collection, name: str) -> Entry | None:
        """Look ``name`` up in ``collection`` (NzbDav's ``GetItemAsync``)."""
        found = self._own_child(collection, name)
        if found is not None:
            return found
        empty = self._empty_files.get(collection.key, {}).get(name)
        return None if empty is None else Item(name, empty)

    def children(self, collection: Collection) -> Iterator[Entry]:
        """List ``collection``: its own entries, then its in-memory empty files."""
        yield from self._own_children(collection)
        for name, empty in list(self._empty_files.get(collection.key, {}).items()):
            yield Item(name, empty)

    def _own_child(self, collection: Collection, name: str) -> Entry | None:
        match collection.kind:
            case Kind.ROOT:
                return self._root_child(name)
            case Kind.CONTENT:
                return self._content_child(collection, name)
            case Kind.SYMLINKS:
                return self._symlink_child(collection, name)
            case Kind.IDS:
                return self._ids_child(collection, name)
            case Kind.NZBS:
                if name in self._nzb_categories():
                    return self._nzbs_category(name)
                return None
            case Kind.NZBS_CATEGORY:
                standin = self.catalog.file(f"{collection.target}/{name}")
                return None if standin is None else Item(name, standin)
            case Kind.EMPTY:
                return None

    def _own_children(self, collection: Collection) -> Iterator[Entry]:
        match collection.kind:
            case Kind.ROOT:
                for name in ("nzbs", "content", "completed-symlinks", ".ids", "README"):
                    entry = self._root_child(name)
                    if entry is not None:
                        yield entry
            case Kind.CONTENT:
                at_top = collection.target == CONTENT_ROOT
                yield from self._folder_children(collection, self._content_entry, at_top)
            case Kind.SYMLINKS:
                at_top = self._is_symlink_root(collection)
                for entry in self._folder_children(collection, self._symlink_entry, at_top):
                    if not self._is_hidden(collection, entry.name):
                        yield entry
            case Kind.IDS:
                yield from self._ids_children(collection)
            case Kind.NZBS:
                for category in self._nzb_categories():
                    yield self._nzbs_category(category)
            case Kind.NZBS_CATEGORY:
                folder = self.catalog.folder(collection.target)
                for name in list(folder.children) if folder is not None else []:
                    standin = self.catalog.file(f"{collection.target}/{name}")
                    if standin is not None:
                        yield Item(name, standin)
            case Kind.EMPTY:
                return

    def _root_child(self, name: str) -> Entry | None:
        match name:
            case "README":
                return Item("README", self.catalog.readme)
            case "nzbs":
                return Collection(Kind.NZBS, "nzbs", NZBS_ROOT, MIN_DATE, "dir:/nzbs")
            case "content":
                return Collection(Kind.CONTENT, "content", CONTENT_ROOT, MIN_DATE, "dir:/content")
            case "completed-symlinks":
                # The root mirrors /content but is a folder of its own.
                return Collection(
                    Kind.SYMLINKS,
                    "completed-symlinks",
                    CONTENT_ROOT,
                    MIN_DATE,
                    "dir:" + SYMLINKS_ROOT,
                )
            case ".ids":
                return Collection(Kind.IDS, ".ids", "", MIN_DATE, "ids:")
        return None

    def _empty_category(self, name: str) -> Collection:
        # NzbDav makes these on the fly with DateTime.Now as their date.
        return Collection(Kind.EMPTY, name, "", self._now(), f"empty_folder_{name}")

    def _content_entry(self, path: str) -> Entry | None:
        name = path.rsplit("/", 1)[-1]
        folder = self.catalog.folder(path)
        if folder is not None:
            return Collection(Kind.CONTENT, name, path, folder.last_modified, "dir:" + path)
        standin = self.catalog.file(path)
        return None if standin is None else Item(name, standin)

    def _content_child(self, collection: Collection, name: str) -> Entry | None:
        found = self._content_entry(f"{collection.target}/{name}")
        if found is None and collection.target == CONTENT_ROOT and name in self.catalog.categories:
            return self._empty_category(name)
        return found

    def _folder_children(
        self,
        collection: Collection,
        entry_at: Callable[[str], Entry | None],
        with_categories: bool,
    ) -> Iterator[Entry]:
        """List a /content folder (shown as is or mirrored), plus missing categories at the top."""
        folder = self.catalog.folder(collection.target)
        names = list(folder.children) if folder is not None else []
        for name in names:
            entry = entry_at(f"{collection.target}/{name}")
            if entry is not None:
                yield entry
        if with_categories:
            for category in self.catalog.categories:
                if category not in names:
                    yield self._empty_category(category)

    def _is_symlink_root(self, collection: Collection) -> bool:
        return collection.key == "dir:" + SYMLINKS_ROOT

    def _symlink_entry(self, path: str) -> Entry | None:
        folder = self.catalog.folder(path)
        if folder is not None:
            # Keyed like the /content folder it mirrors, as in NzbDav, so the
            # two share their in-memory empty files.
            return Collection(Kind.SYMLINKS, folder.name, path, folder.last_modified, "dir:" + path)
        standin = self.catalog.file(path)
        if standin is None or standin.uuid is None:
            return None
        return Item(standin.name + ".rclonelink", self.symlink_file(path, standin))

    def symlink_file(self, content_path: str, standin: StandinFile) -> StandinFile:
        """The ``.rclonelink`` file for a content file: its text is the ``/.ids`` target."""
        target = f"{self.mount_dir}/{IDS_ROOT.lstrip('/')}/"
        target += "/".join((standin.uuid or "")[:ID_PREFIX_LENGTH]) + f"/{standin.uuid}"
        data = target.encode()
        link_path = SYMLINKS_ROOT + content_path.removeprefix(CONTENT_ROOT) + ".rclonelink"
        return StandinFile(link_path, len(data), standin.last_modified, data=data)

    def _symlink_child(self, collection: Collection, name: str) -> Entry | None:
        if self._is_hidden(collection, name):
            return None
        # NzbDav strips the suffix before looking up, so "x.mkv" finds
        # "x.mkv.rclonelink" as well.
        stripped = re.sub(r"\.rclonelink$", "", name)
        found = self._symlink_entry(f"{collection.target}/{stripped}")
        if found is None and self._is_symlink_root(collection) and name in self.catalog.categories:
            return self._empty_category(name)
        return found

    def _hidden_key(self, collection: Collection, name: str) -> str:
        return f"{collection.key}/{name}"

    def _is_hidden(self, collection: Collection, name: str) -> bool:
        key = self._hidden_key(collection, name)
        expiry = self._hidden.get(key)
        if expiry is None:
            return False
        now = self._monotonic()
        if now >= expiry:
            del self._hidden[key]
            return False
        # Sliding expiration: every look keeps the entry hidden longer.
        self._hidden[key] = now + _SYMLINK_HIDE_SECONDS
        return True

    def _ids_level(self, prefix: str) -> Collection:
        return Collection(Kind.IDS, prefix[-1], prefix, MIN_DATE, "ids:" + prefix)

    def _ids_child(self, collection: Collection, name: str) -> Entry | None:
        if len(collection.target) < ID_PREFIX_LENGTH:
            if len(name) != 1 or name not in _HEX_ALPHABET:
                return None
            return self._ids_level(collection.target + name)
        # The five levels above are never checked against the id: any
        # five-level path finds any file.
        parsed = parse_guid(name)
        if parsed is None:
            raise InvalidGuidError(f"Unrecognized Guid format: {name!r}")
        standin = self.catalog.ids.get(parsed)
        return None if standin is None else Item(parsed, standin)

    def _ids_children(self, collection: Collection) -> Iterator[Entry]:
        if len(collection.target) < ID_PREFIX_LENGTH:
            for char in _HEX_ALPHABET:
                yield self._ids_level(collection.target + char)
            return
        for standin in self.catalog.with_id_prefix(collection.target):
            yield Item(standin.uuid or "", standin)

    def _nzb_categories(self) -> list[str]:
        categories = dict.fromkeys(self.catalog.queue_categories())
        categories.update(dict.fromkeys(self.catalog.categories))
        return [c for c in categories if c]

    def _nzbs_category(self, category: str) -> Collection:
        return Collection(
            Kind.NZBS_CATEGORY,
            category,
            f"{NZBS_ROOT}/{category}",
            self._now(),
            f"nzbs_category_{category}",
        )

    # -- changing ----------------------------------------------------------

    def delete(self, path: str) -> int:
        """DELETE as NzbDav answers it: recursive, and each folder kind has its own rules."""
        parent_path, name = split_path(path)
        if not name:
            # NWebDav cannot split the root URL and throws.
            return 500
        parent = self.resolve(parent_path)
        if not isinstance(parent, Collection) or self.child(parent, name) is None:
            return 404
        return self._delete_recursive(parent, name)

    def _delete_recursive(self, parent: Collection, name: str) -> int:
        entry = self.child(parent, name)
        if isinstance(entry, Collection):
            # NWebDav empties a folder before deleting it and ignores how
            # that went: a refused delete of a folder may still empty it.
            for child in list(self.children(entry)):
                self._delete_recursive(entry, child.name)
        return self._delete_one(parent, name)

    def _delete_one(self, parent: Collection, name: str) -> int:
        if self._empty_files.get(parent.key, {}).pop(name, None) is not None:
            return 200
        match parent.kind:
            case Kind.CONTENT:
                if self.enforce_readonly:
                    return 403
                target = f"{parent.target}/{name}"
                if self.catalog.folder(target) is None and self.catalog.file(target) is None:
                    return 404
                self.catalog.remove(target)
                return 200
            case Kind.SYMLINKS:
                if self._is_symlink_root(parent):
                    return 403
                # Nothing is deleted: the name is only hidden, so an import
                # by copy-and-delete believes the delete worked.
                self._hidden[self._hidden_key(parent, name)] = (
                    self._monotonic() + _SYMLINK_HIDE_SECONDS
                )
                return 204
            case Kind.NZBS_CATEGORY:
                target = f"{parent.target}/{name}"
                if self.catalog.file(target) is None:
                    return 404
                self.catalog.remove(target)
                return 204
            case _:
                return 403

    def put(self, path: str, body: bytes) -> int:
        """PUT as NzbDav answers it: an NZB into ``/nzbs/<category>``, empty files anywhere."""
        parent_path, name = split_path(path)
        parent = self.resolve(parent_path) if name else None
        if not isinstance(parent, Collection):
            return 409
        existing = self.child(parent, name)
        if existing is None and not body:
            # A client (Windows) creating a file first PUTs it empty; NzbDav
            # keeps such files in memory in any folder.
            empty = StandinFile(f"{parent_path}/{name}", 0, self._now(), data=b"")
            self._empty_files.setdefault(parent.key, {})[name] = empty
            return 201
        self._empty_files.get(parent.key, {}).pop(name, None)
        if parent.kind is not Kind.NZBS_CATEGORY:
            return 403
        target = f"{parent.target}/{name}"
        if self.catalog.file(target) is not None:
            self.catalog.remove(target)
        self.catalog.add_bytes(target, body, last_modified=self._now())
        return 201

    def mkcol(self, path: str) -> int:
        """MKCOL: 409 without a parent folder, otherwise 403 (every NzbDav folder is read-only)."""
        parent_path, name = split_path(path)
        parent = self.resolve(parent_path) if name else None
        return 403 if isinstance(parent, Collection) else 409
