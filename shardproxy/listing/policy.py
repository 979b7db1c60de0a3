"""What a listing shows: which entries each view keeps, and under which paths."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from shardproxy.core.shards import HEX_DIGITS, IDS_ROOT, ShardMap, view_path, view_root

_IDS_FOLDER = IDS_ROOT + "/"
_FIRST = len(_IDS_FOLDER)  # where the first hex level starts
_VIEW_TAIL = len(IDS_ROOT)  # what a view path keeps of a backend path


class ResponsePolicy(Protocol):
    """Decides what becomes of each ``<response>`` of a listing."""

    def client_paths(self, backend_path: str) -> Sequence[str]:
        """Decoded backend href path of one <response> -> the decoded client paths to show it as.

        () drops the response; (p,) rewrites its href to p; (p, q, ...) emits the response
        once per path (clones: each clone's <displayname> text is replaced by the last
        segment of its path).
        """
        ...


class ShardListingPolicy:
    """A shard view's listing: the shard's entries, shown under its view."""

    __slots__ = ("_owned", "_view_root", "shard", "shard_map")

    def __init__(self, shard_map: ShardMap, shard: int) -> None:
        self.shard_map = shard_map
        self.shard = shard
        self._owned = shard_map.chars_of(shard)
        self._view_root = view_root(shard)

    def client_paths(self, backend_path: str) -> Sequence[str]:
        """The entry's path in the shard view, or nothing if the shard does not own it.

        What ``shards.view_path`` says, answered without it for the common case (it runs
        once per entry of every listing).
        """
        if backend_path.startswith(_IDS_FOLDER):
            first = backend_path[_FIRST : _FIRST + 1]
            if first in self._owned:
                if len(backend_path) == _FIRST + 1 or backend_path[_FIRST + 1] == "/":
                    return (self._view_root + backend_path[_VIEW_TAIL:],)
                return ()
            if first and first in HEX_DIGITS:
                return ()
        mapped = view_path(backend_path, self.shard, self.shard_map)
        return () if mapped is None else (mapped,)

    def folder_view(self, folder_path: str) -> str | None:
        """The view folder showing ``folder_path`` (ending in "/") and everything in it.

        Below ``/.ids/<c>`` for a ``c`` the shard owns, ``client_paths`` moves the folder
        (with or without its "/") and every entry directly in it by the same prefix; the
        listing's bulk rewrite (``listing.folder``) relies on that. None elsewhere.
        """
        if (
            folder_path.startswith(_IDS_FOLDER)
            and folder_path[_FIRST : _FIRST + 1] in self._owned
            and folder_path[_FIRST + 1 : _FIRST + 2] == "/"
        ):
            return self._view_root + folder_path[_VIEW_TAIL:]
        return None


@dataclass(frozen=True)
class RootListingPolicy:
    """The root's listing: everything as is, plus a ``.ids-s<N>`` per shard."""

    shard_map: ShardMap

    def client_paths(self, backend_path: str) -> Sequence[str]:
        """``/.ids`` is shown once more as each shard's view folder."""
        if backend_path.rstrip("/") != IDS_ROOT:
            return (backend_path,)
        views = tuple(view_root(s) for s in range(self.shard_map.count))
        return (backend_path, *views)


@dataclass(frozen=True)
class ViewFoldersPolicy:
    """A listing of ``/.ids`` itself shown only as each shard's view folder.

    For a backend whose root listing hides dot-entries (nginx's dav-ext): its Depth-0
    answer for ``/.ids`` becomes the ``.ids-s<N>`` entries the root listing lacks.
    """

    shard_map: ShardMap

    def client_paths(self, backend_path: str) -> Sequence[str]:
        """``/.ids`` -> every view root; anything else is dropped."""
        if backend_path.rstrip("/") != IDS_ROOT:
            return ()
        return tuple(view_root(s) for s in range(self.shard_map.count))
