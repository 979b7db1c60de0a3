"""Which shard owns a UUID or a path into NzbDav's ``.ids`` tree (``shardproxy shard-of``).

Pure: strings in, an answer out. A path is read wherever its ``.ids`` (or ``.ids-s<N>``)
segment sits, so ``/mnt/nzbdav/.ids/9/6/1/b/0/`` and a symlink's target both work; the
owner comes from the first hex level below it, never from the last segment.
"""

from __future__ import annotations

from dataclasses import dataclass

from shardproxy.core.shards import (
    IDS_NAME,
    ShardMap,
    ViewPath,
    ViewPathError,
    is_ids_root_name,
    is_uuid,
    view_name,
)

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
    return "/" in item or item.startswith(IDS_NAME)


def locate(item: str, shard_map: ShardMap) -> Answer:
    """The owner of a bare UUID or of a path (absolute or relative, any depth)."""
    if not looks_like_path(item):
        if not is_uuid(item):
            raise LocateError(f"{item!r} is not a UUID and not a path: {_HINT}")
        place = ViewPath.of_uuid(item, shard_map)
        return Owned(shard_map.shard_of(place.uuid), str(place))
    names = [name for name in item.split("/") if name and name != "."]
    # The last .ids segment counts: a library may itself live under a folder named .ids.
    roots = [i for i, name in enumerate(names) if is_ids_root_name(name)]
    if not roots:
        return NotSharded()
    root = roots[-1]
    try:
        place = ViewPath.parse(names[root], names[root + 1 :], shard_map, slash=item.endswith("/"))
    except ViewPathError as exc:
        raise LocateError(f"{item!r}: {exc}") from None
    owner = place.owner(shard_map)
    if owner is None:
        return EveryShard()
    if not place.levels:  # a view's root folder: shown without a trailing slash
        return Owned(owner, str(place.in_view(owner)).rstrip("/"))
    return Owned(owner, str(place.in_view(owner)))


def describe(item: str, answer: Answer, shard_map: ShardMap) -> str:
    """One output line of ``shard-of``: the item, a tab, the answer."""
    if isinstance(answer, Owned):
        return f"{item}\tshard {answer.shard}\t{answer.view_path}"
    if isinstance(answer, EveryShard):
        last = view_name(shard_map.count - 1)
        return f"{item}\tevery shard\t{IDS_NAME} is split over {view_name(0)} to {last}"
    return f"{item}\tnot sharded\toutside .ids: served through the rest mount, not a shard cache"
