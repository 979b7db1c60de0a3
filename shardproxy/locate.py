"""Which shard owns a UUID or a path into NzbDav's ``.ids`` tree (``shardproxy shard-of``).

Pure: strings in, an answer out. A path is read wherever its ``.ids`` (or ``.ids-s<N>``)
segment sits, so ``/mnt/nzbdav/.ids/9/6/1/b/0/`` and a symlink's target both work; the
owner comes from the first hex level below it, never from the last segment.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from shardproxy.shards import HEX_DIGITS, ID_LEVELS, ShardMap

UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_IDS_NAME = ".ids"
_VIEW_NAME_RE = re.compile(r"\.ids-s([0-9]+)")
_HINT = "give a UUID, a path under .ids/ or .ids-s<N>/, or a symlink to one"


class LocateError(ValueError):
    """The item is neither a UUID nor a path that can be placed; the message says why."""


@dataclass(frozen=True)
class Owned:
    """Shard ``shard`` owns the item; ``view_path`` is where its view shows it."""

    shard: int
    view_path: str


@dataclass(frozen=True)
class EveryShard:
    """The ``.ids`` folder itself: each shard holds a part of it."""


@dataclass(frozen=True)
class NotSharded:
    """A path outside ``.ids``: no shard caches it, the ``rest`` mount serves it."""


Answer = Owned | EveryShard | NotSharded


def looks_like_path(item: str) -> bool:
    """True for anything spelled as a path rather than a bare UUID."""
    return "/" in item or item.startswith(_IDS_NAME)


def locate(item: str, shard_map: ShardMap) -> Answer:
    """The owner of a bare UUID or of a path (absolute or relative, any depth)."""
    if not looks_like_path(item):
        if not UUID_RE.fullmatch(item):
            raise LocateError(f"{item!r} is not a UUID and not a path: {_HINT}")
        uuid = item.lower()
        levels = "/".join(uuid[:ID_LEVELS])
        shard = shard_map.shard_of(uuid)
        return Owned(shard, f"{shard_map.view_root(shard)}/{levels}/{uuid}")
    names = [name for name in item.split("/") if name and name != "."]
    # The last .ids segment counts: a library may itself live under a folder named .ids.
    roots = [i for i, name in enumerate(names) if _is_ids_root(name)]
    if not roots:
        return NotSharded()
    root = roots[-1]
    return _locate_below(item, names[root], names[root + 1 :], shard_map)


def _is_ids_root(name: str) -> bool:
    return name == _IDS_NAME or _VIEW_NAME_RE.fullmatch(name) is not None


def _locate_below(item: str, root: str, levels: list[str], shard_map: ShardMap) -> Answer:
    view = _VIEW_NAME_RE.fullmatch(root)
    view_shard: int | None = None
    if view is not None:
        digits = view.group(1)
        view_shard = int(digits) if len(digits) <= 2 else -1
        if str(view_shard) != digits or view_shard >= shard_map.count:
            raise LocateError(
                f"{item!r}: there is no shard view {root!r}; with {shard_map.count} shard(s) "
                f"they are .ids-s0 to .ids-s{shard_map.count - 1} (check --shards/--shard)"
            )
    if len(levels) > ID_LEVELS + 1:
        extra = "/".join(levels[ID_LEVELS + 1 :])
        raise LocateError(
            f"{item!r}: {extra!r} is deeper than {root}/h/h/h/h/h/<uuid>, "
            "where NzbDav keeps its files"
        )
    for depth, name in enumerate(levels[:ID_LEVELS], start=1):
        if len(name) != 1 or name not in HEX_DIGITS:
            raise LocateError(
                f"{item!r}: level {depth} below {root} is {name!r}, but NzbDav's levels are "
                "one lowercase hex character each (0-9, a-f)"
            )
    if len(levels) == ID_LEVELS + 1:
        uuid = levels[-1]
        if not UUID_RE.fullmatch(uuid):
            raise LocateError(f"{item!r}: the file name {uuid!r} is not a UUID")
        if uuid[:ID_LEVELS].lower() != "".join(levels[:ID_LEVELS]):
            raise LocateError(
                f"{item!r}: the file {uuid} does not belong under "
                f"{'/'.join(levels[:ID_LEVELS])}; NzbDav stores it under "
                f"{'/'.join(uuid[:ID_LEVELS].lower())}"
            )
    if not levels:
        if view_shard is not None:
            return Owned(view_shard, shard_map.view_root(view_shard))
        return EveryShard()
    shard = shard_map.shard_of(levels[0])
    if view_shard is not None and view_shard != shard:
        raise LocateError(
            f"{item!r}: prefix {levels[0]!r} belongs to shard {shard}, so {root} never shows "
            f"it; its files are under .ids-s{shard}"
        )
    trailing = "/" if item.endswith("/") else ""
    return Owned(shard, f"{shard_map.view_root(shard)}/{'/'.join(levels)}{trailing}")


def describe(item: str, answer: Answer, shard_map: ShardMap) -> str:
    """One output line of ``shard-of``: the item, a tab, the answer."""
    if isinstance(answer, Owned):
        return f"{item}\tshard {answer.shard}\t{answer.view_path}"
    if isinstance(answer, EveryShard):
        return f"{item}\tevery shard\t.ids is split over .ids-s0 to .ids-s{shard_map.count - 1}"
    return f"{item}\tnot sharded\toutside .ids: served through the rest mount, not a shard cache"
