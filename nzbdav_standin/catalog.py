"""The library a stand-in NzbDav serves: its files, folders and ids.

This is the data NzbDav keeps in its database (``DavItems``): Usenet files
under ``/content/<category>/<job>/``, each with a UUID that also names it
under ``/.ids/``, and queued ``.nzb`` files under ``/nzbs/<category>/``. How
those are presented over WebDAV (virtual ``/.ids`` levels, the
``/completed-symlinks`` mirror, empty category folders) is the store's
business, not this module's.
"""

from __future__ import annotations

import uuid as uuid_module
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType

from nzbdav_standin.content import content_key, iter_generated, parse_guid, seed_for

MIN_DATE = datetime(1, 1, 1, tzinfo=UTC)
""".NET ``DateTime.MinValue``: the date NzbDav gives its built-in folders."""

DEFAULT_LAST_MODIFIED = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
"""Date given to files added without one, so tests see stable listings."""

CONTENT_ROOT = "/content"
NZBS_ROOT = "/nzbs"
IDS_ROOT = "/.ids"
SYMLINKS_ROOT = "/completed-symlinks"
ID_PREFIX_LENGTH = 5
"""Number of one-character ``/.ids`` levels above a file."""

DEFAULT_CATEGORIES = ("uncategorized", "audio", "software", "tv", "movies")
"""NzbDav's default ``api.categories`` with its manual-upload category first."""

DEFAULT_README = b"""# NzbDav stand-in

`/content` holds the files that finished processing, by category and job.
`/completed-symlinks` mirrors it with `*.rclonelink` files pointing into `/.ids`.
`/.ids` holds every file again, named by its id, under five one-character levels.
`/nzbs` holds the queue: drop an `.nzb` file into a category folder to add it.
"""


def uuid_path(file_uuid: str | uuid_module.UUID) -> str:
    """Return the canonical ``/.ids`` path of an id: ``/.ids/9/6/1/b/0/961b00d8-...``."""
    text = str(file_uuid).lower()
    levels = "/".join(text[:ID_PREFIX_LENGTH])
    return f"{IDS_ROOT}/{levels}/{text}"


def _aware(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError(f"last_modified must be timezone-aware, got {moment!r}")
    # HTTP dates have whole seconds; dropping the rest keeps PROPFIND and
    # Last-Modified consistent with what the library reports.
    return moment.astimezone(UTC).replace(microsecond=0)


@dataclass(frozen=True)
class StandinFile:
    """One file of the library, with deterministic content.

    ``path`` is where the file lives: ``/content/...`` for a Usenet file (its
    ``uuid`` also serves it under ``/.ids``), ``/.ids/...`` for an id with no
    ``/content`` entry, ``/nzbs/<category>/<name>`` for a queued NZB, or
    ``/README``. Content is generated from the id (or path) unless ``data``
    fixes it.

    Failure modes, as NzbDav shows them on GET: ``missing_articles`` makes
    every read fail with 404; ``missing_after`` lets bytes before that offset
    through and fails the first read past it (404 if nothing was sent yet,
    otherwise the connection is cut mid-body); ``broken`` fails reads with 500.
    """

    path: str
    size: int
    last_modified: datetime
    uuid: str | None = None
    data: bytes | None = field(default=None, repr=False)
    missing_articles: bool = False
    missing_after: int | None = None
    broken: bool = False

    def __post_init__(self) -> None:
        if self.size < 0:
            raise ValueError(f"size of {self.path} must not be negative, got {self.size}")
        if self.data is not None and len(self.data) != self.size:
            raise ValueError(f"size of {self.path} is {self.size} but data has {len(self.data)}")
        if self.last_modified.tzinfo is None:
            raise ValueError(f"last_modified of {self.path} must be timezone-aware")

    @property
    def name(self) -> str:
        """The last segment of ``path``."""
        return self.path.rsplit("/", 1)[-1]

    @property
    def ids_path(self) -> str | None:
        """The canonical ``/.ids`` path of this file, if it has an id."""
        return None if self.uuid is None else uuid_path(self.uuid)

    @property
    def seed(self) -> bytes:
        """The seed the generated content derives from."""
        return seed_for(content_key(self.path, self.uuid))

    def chunks(self, start: int, end_inclusive: int) -> Iterator[bytes]:
        """Yield bytes ``start..end_inclusive`` (end clamped to the file) in blocks of 64 KiB."""
        end = min(end_inclusive, self.size - 1)
        if start < 0 or start > end:
            return
        if self.data is not None:
            for offset in range(start, end + 1, 64 * 1024):
                yield self.data[offset : min(offset + 64 * 1024, end + 1)]
            return
        yield from iter_generated(self.seed, start, end)

    def read(self, start: int, end_inclusive: int) -> bytes:
        """Return bytes ``start..end_inclusive``; the end is clamped to the file."""
        return b"".join(self.chunks(start, end_inclusive))


@dataclass
class Folder:
    """A real folder of the library (under ``/content`` or ``/nzbs``)."""

    path: str
    last_modified: datetime
    children: dict[str, None] = field(default_factory=dict)
    """Child names in creation order (a dict for cheap removal)."""

    @property
    def name(self) -> str:
        """The last segment of ``path``."""
        return self.path.rsplit("/", 1)[-1]


class Library:
    """All files of a stand-in NzbDav, addressable by path and by id."""

    def __init__(
        self,
        *,
        categories: tuple[str, ...] = DEFAULT_CATEGORIES,
        readme: bytes = DEFAULT_README,
        started: datetime | None = None,
    ) -> None:
        """Create an empty library; ``categories`` are NzbDav's configured ones."""
        self.categories = categories
        started_at = _aware(started or datetime.now(UTC))
        # NzbDav serves an embedded README whose date is the process start.
        self.readme = StandinFile("/README", len(readme), started_at, data=readme)
        self._folders: dict[str, Folder] = {
            CONTENT_ROOT: Folder(CONTENT_ROOT, MIN_DATE),
            NZBS_ROOT: Folder(NZBS_ROOT, MIN_DATE),
        }
        self._files: dict[str, StandinFile] = {}
        self._ids: dict[str, StandinFile] = {}
        self._by_prefix: dict[str, dict[str, None]] = {}

    @classmethod
    def sample(
        cls,
        n_ids: int = 64,
        *,
        seed: int = 0,
        big_file_mib: int = 0,
        categories: tuple[str, ...] = DEFAULT_CATEGORIES,
    ) -> Library:
        """Build a realistic library of ``n_ids`` Usenet files (see ``nzbdav_standin.sample``)."""
        # Imported here because the sample builder is written against this class.
        from nzbdav_standin.sample import build_sample

        library = cls(categories=categories)
        build_sample(library, n_ids=n_ids, seed=seed, big_file_mib=big_file_mib)
        return library

    # -- adding ------------------------------------------------------------

    def add(
        self,
        path: str,
        size: int,
        *,
        last_modified: datetime | None = None,
        uuid: str | uuid_module.UUID | None = None,
        missing_articles: bool = False,
        missing_after: int | None = None,
        broken: bool = False,
    ) -> StandinFile:
        """Add a file with generated content and return it.

        ``path`` is ``/content/<category>/.../<name>`` (the file gets ``uuid``,
        or one derived from the path, and appears under ``/.ids`` and
        ``/completed-symlinks`` too), ``/.ids/<5 levels>/<uuid>`` (an id with
        no ``/content`` entry), or ``/nzbs/<category>/<name>`` (a queued NZB).
        """
        return self._add(
            path,
            size,
            None,
            last_modified=last_modified,
            uuid=uuid,
            missing_articles=missing_articles,
            missing_after=missing_after,
            broken=broken,
        )

    def add_bytes(
        self,
        path: str,
        data: bytes,
        *,
        last_modified: datetime | None = None,
        uuid: str | uuid_module.UUID | None = None,
    ) -> StandinFile:
        """Add a file whose content is exactly ``data``; paths as for ``add``."""
        return self._add(path, len(data), data, last_modified=last_modified, uuid=uuid)

    def _add(
        self,
        path: str,
        size: int,
        data: bytes | None,
        *,
        last_modified: datetime | None,
        uuid: str | uuid_module.UUID | None,
        missing_articles: bool = False,
        missing_after: int | None = None,
        broken: bool = False,
    ) -> StandinFile:
        moment = _aware(last_modified or DEFAULT_LAST_MODIFIED)
        segments = path.split("/")
        if path.startswith(IDS_ROOT + "/"):
            file_uuid = self._ids_path_uuid(path, segments)
            if uuid is not None and str(uuid).lower() != file_uuid:
                raise ValueError(f"uuid {uuid} does not match the id in {path}")
            path = uuid_path(file_uuid)
        elif path.startswith(CONTENT_ROOT + "/"):
            if len(segments) < 4 or "" in segments[1:]:
                raise ValueError(
                    f"{path}: a content file lives in /content/<category>/<job>/..., "
                    "with no empty segment"
                )
            file_uuid = self._content_uuid(path, uuid)
        elif path.startswith(NZBS_ROOT + "/"):
            if len(segments) != 4 or "" in segments[1:]:
                raise ValueError(f"{path}: a queued NZB lives at /nzbs/<category>/<name>")
            if uuid is not None:
                raise ValueError(f"{path}: queued NZBs have no /.ids entry, so no uuid")
            file_uuid = None
        else:
            raise ValueError(
                f"{path}: files live under /content/, /.ids/ or /nzbs/ (the README is built in)"
            )
        if file_uuid is not None and file_uuid in self._ids:
            raise ValueError(
                f"{path}: id {file_uuid} already belongs to {self._ids[file_uuid].path}"
            )
        if path in self._files or path in self._folders:
            raise ValueError(f"{path} already exists")
        standin = StandinFile(
            path,
            size,
            moment,
            uuid=file_uuid,
            data=data,
            missing_articles=missing_articles,
            missing_after=missing_after,
            broken=broken,
        )
        if not path.startswith(IDS_ROOT + "/"):
            parent = self._ensure_folder(path.rsplit("/", 1)[0], moment)
            parent.children[standin.name] = None
            self._files[path] = standin
        if file_uuid is not None:
            self._ids[file_uuid] = standin
            self._by_prefix.setdefault(file_uuid[:ID_PREFIX_LENGTH], {})[file_uuid] = None
        return standin

    @staticmethod
    def _ids_path_uuid(path: str, segments: list[str]) -> str:
        if len(segments) != 3 + ID_PREFIX_LENGTH:
            raise ValueError(f"{path}: an id path is /.ids/<5 one-character levels>/<uuid>")
        parsed = parse_guid(segments[-1])
        if parsed is None:
            raise ValueError(f"{path}: {segments[-1]!r} is not a UUID")
        return parsed

    @staticmethod
    def _content_uuid(path: str, given: str | uuid_module.UUID | None) -> str:
        if given is None:
            # Derived from the path so a test that adds the same file twice
            # (in two libraries) sees the same id and the same bytes.
            return str(uuid_module.uuid5(uuid_module.NAMESPACE_URL, "nzbdav-standin:" + path))
        parsed = parse_guid(str(given))
        if parsed is None:
            raise ValueError(f"{path}: {given!r} is not a UUID")
        return parsed

    def _ensure_folder(self, path: str, moment: datetime) -> Folder:
        existing = self._folders.get(path)
        if existing is not None:
            return existing
        if path in self._files:
            raise ValueError(f"{path} is a file, it cannot hold other files")
        parent_path, name = path.rsplit("/", 1)
        parent = self._ensure_folder(parent_path, moment)
        folder = Folder(path, moment)
        self._folders[path] = folder
        parent.children[name] = None
        return folder

    # -- removing ----------------------------------------------------------

    def remove(self, path: str) -> None:
        """Remove a file, or a folder with everything in it (``KeyError`` if absent)."""
        if path in (CONTENT_ROOT, NZBS_ROOT):
            raise ValueError(f"{path} is a built-in folder and cannot be removed")
        if path.startswith(IDS_ROOT + "/"):
            parsed = parse_guid(path.rsplit("/", 1)[-1])
            standin = self._ids.get(parsed or "")
            if standin is None:
                raise KeyError(path)
            if standin.path != uuid_path(standin.uuid or ""):
                self.remove(standin.path)
            else:
                self._forget_id(standin)
            return
        folder = self._folders.get(path)
        if folder is not None:
            for name in list(folder.children):
                self.remove(f"{path}/{name}")
            del self._folders[path]
        else:
            standin = self._files.pop(path)
            self._forget_id(standin)
        parent_path, name = path.rsplit("/", 1)
        del self._folders[parent_path].children[name]

    def _forget_id(self, standin: StandinFile) -> None:
        if standin.uuid is None:
            return
        del self._ids[standin.uuid]
        same_prefix = self._by_prefix[standin.uuid[:ID_PREFIX_LENGTH]]
        del same_prefix[standin.uuid]

    # -- looking up --------------------------------------------------------

    def file(self, path: str) -> StandinFile | None:
        """The file at ``path`` under ``/content`` or ``/nzbs`` (or its ``/.ids`` path)."""
        if path.startswith(IDS_ROOT + "/"):
            parsed = parse_guid(path.rsplit("/", 1)[-1])
            return None if parsed is None else self._ids.get(parsed)
        if path == self.readme.path:
            return self.readme
        return self._files.get(path)

    def folder(self, path: str) -> Folder | None:
        """The real folder at ``path`` (``/content``, ``/nzbs`` or below)."""
        return self._folders.get(path)

    def by_uuid(self, file_uuid: str) -> StandinFile | None:
        """The file with this id, whatever its form (dashed, braces, any case)."""
        parsed = parse_guid(file_uuid)
        return None if parsed is None else self._ids.get(parsed)

    def with_id_prefix(self, prefix: str) -> list[StandinFile]:
        """Files whose id starts with the five characters ``prefix``, in insertion order."""
        return [self._ids[u] for u in self._by_prefix.get(prefix, {})]

    @property
    def ids(self) -> Mapping[str, StandinFile]:
        """Every file with an id, by its lowercase dashed id."""
        return MappingProxyType(self._ids)

    def files(self) -> list[StandinFile]:
        """Every file: ``/content``, ``/nzbs`` and id-only files (not the README)."""
        listed = list(self._files.values())
        listed.extend(f for f in self._ids.values() if f.path.startswith(IDS_ROOT + "/"))
        return listed

    def queue_categories(self) -> list[str]:
        """Categories that have a folder under ``/nzbs``."""
        return list(self._folders[NZBS_ROOT].children)
