"""What a listing shows: which entries each view keeps, and under which paths."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from shardproxy.multistatus import PrefixRewrite
from shardproxy.shards import IDS_ROOT, ShardMap, view_root


class ShardListingPolicy:
    """PROPFIND policy for a shard view: keep the shard's entries, shown under its view.

    Called once per listed entry, so it answers from precomputed values; it agrees with
    ``view_path`` for every path.
    """

    __slots__ = ("_owned", "_view_root", "prefix_rewrite", "shard", "shard_map")

    def __init__(self, shard_map: ShardMap, shard: int) -> None:
        self.shard_map = shard_map
        self.shard = shard
        self._owned = shard_map.chars_of(shard)
        self._view_root = view_root(shard)
        # Below a first level the shard owns, every path maps by swapping "/.ids/" for the
        # view's root: a listing of such a folder is rewritten in one pass. Segments are
        # limited to what NzbDav writes there (hex levels, UUIDs), which need no escaping.
        owned = "".join(sorted(self._owned))
        self.prefix_rewrite = (
            PrefixRewrite(
                rb"/\.ids/[" + re.escape(owned).encode() + rb"](?:/[0-9A-Za-z_-]++)*+/?",
                f"{IDS_ROOT}/".encode(),
                f"{self._view_root}/".encode(),
            )
            if owned
            else None
        )

    def client_paths(self, backend_path: str) -> Sequence[str]:
        """The entry's path in the shard view, or nothing if the shard does not own it."""
        if backend_path.startswith("/.ids/"):
            first = backend_path[6:7]
            if first in self._owned and (len(backend_path) == 7 or backend_path[7] == "/"):
                return (self._view_root + backend_path[5:],)
            return (self._view_root + "/",) if len(backend_path) == 6 else ()
        return (self._view_root,) if backend_path == IDS_ROOT else ()


@dataclass(frozen=True)
class RootListingPolicy:
    """PROPFIND policy for the root: everything as is, plus a ``.ids-s<N>`` per shard."""

    shard_map: ShardMap

    def client_paths(self, backend_path: str) -> Sequence[str]:
        """``/.ids`` is shown once more as each shard's view folder."""
        if backend_path.rstrip("/") != IDS_ROOT:
            return (backend_path,)
        views = tuple(view_root(s) for s in range(self.shard_map.count))
        return (backend_path, *views)
