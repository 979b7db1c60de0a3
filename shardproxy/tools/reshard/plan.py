"""Which cached files ``shardproxy reshard`` moves when the shard map changes, and where.

Each shard's rclone keeps its VFS cache at ``<cache-dir>/vfs/<remote>/<h1>/.../<h5>/<uuid>``
(the remote's root is the shard view, so paths inside start at the first hex level) and
rclone's metadata for it at ``<cache-dir>/vfsMeta/<remote>/<same path>``. After a map
change every cached file belongs in the cache of the shard that now owns its first
character; rclone deletes a data file whose metadata is missing, so the two move
together. Pure: the plan is made from a list of cached files, no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from shardproxy.core.shards import HEX_DIGITS, ShardMap, is_uuid

JOURNAL_VERSION = 1


@dataclass(frozen=True)
class CacheDir:
    """One shard's rclone cache: its ``--cache-dir`` and the remote name inside it."""

    path: str
    remote: str

    def data(self, relative: str) -> str:
        """Where rclone keeps the cached bytes of ``relative``."""
        return f"{self.path}/vfs/{self.remote}/{relative}"

    def meta(self, relative: str) -> str:
        """Where rclone keeps its metadata JSON for ``relative``."""
        return f"{self.path}/vfsMeta/{self.remote}/{relative}"


@dataclass(frozen=True)
class CachedFile:
    """A file found in shard ``shard``'s cache: its path below the remote, sizes."""

    shard: int
    relative: str  # h1/h2/h3/h4/h5/uuid
    size: int  # the file's length
    cached: int  # bytes on disk (the cache files are sparse)


@dataclass(frozen=True)
class Move:
    """One cached file to move from ``source``'s cache to ``target``'s."""

    relative: str
    source: int
    target: int
    size: int
    cached: int


@dataclass
class ReshardPlan:
    """Every move, the characters that change owner, and files left where they are."""

    moved_chars: dict[str, tuple[int, int]]
    moves: list[Move] = field(default_factory=list)
    staying: int = 0
    foreign: list[str] = field(default_factory=list)  # not h1/../h5/uuid: left alone

    def affected_shards(self) -> set[int]:
        """Shards whose cache loses or gains files: their rclone must be stopped."""
        return {m.source for m in self.moves} | {m.target for m in self.moves}

    def describe(self, old: ShardMap, new: ShardMap) -> str:
        """The plan for a person: characters, then files and bytes per pair of shards."""
        lines = [
            f"shard map: {_spell(old)} -> {_spell(new)}",
            f"characters changing owner: {len(self.moved_chars)} of 16 "
            f"({len(self.moved_chars) / 16:.1%} of the library)",
        ]
        lines.extend(
            f"  {char}: shard {source} -> shard {target}"
            for char, (source, target) in sorted(self.moved_chars.items())
        )
        pairs: dict[tuple[int, int], list[Move]] = {}
        for move in self.moves:
            pairs.setdefault((move.source, move.target), []).append(move)
        for (source, target), moves in sorted(pairs.items()):
            cached, size = sum(m.cached for m in moves), sum(m.size for m in moves)
            lines.append(
                f"  shard {source} -> shard {target}: {len(moves)} files, "
                f"{_size(cached)} cached of {_size(size)}"
            )
        lines.append(
            f"cached files to move: {len(self.moves)} "
            f"({_size(sum(m.cached for m in self.moves))}); staying: {self.staying}"
        )
        if self.foreign:
            lines.append(f"not rclone cache files of NzbDav's ids, left alone: {len(self.foreign)}")
        return "\n".join(lines)


def _spell(shard_map: ShardMap) -> str:
    return " ".join(f"{s}={shard_map.prefixes_of(s)}" for s in range(shard_map.count))


def _size(count: int) -> str:
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def is_cache_path(relative: str) -> bool:
    """True for ``h1/h2/h3/h4/h5/uuid`` with the levels matching the UUID."""
    parts = relative.split("/")
    return (
        len(parts) == 6
        and all(len(p) == 1 and p in HEX_DIGITS for p in parts[:5])
        and is_uuid(parts[5])
        and "".join(parts[:5]) == parts[5][:5].lower()
    )


def plan_reshard(old: ShardMap, new: ShardMap, cached: Iterable[CachedFile]) -> ReshardPlan:
    """Move every cached file to the cache of the shard that owns it under ``new``.

    Files already in their owner's cache stay, so running the plan twice moves nothing.
    """
    plan = ReshardPlan(moved_chars=old.moved_chars(new))
    for item in cached:
        if not is_cache_path(item.relative):
            plan.foreign.append(f"shard {item.shard}: {item.relative}")
            continue
        owner = new.shard_of(item.relative)
        if owner == item.shard:
            plan.staying += 1
        else:
            plan.moves.append(Move(item.relative, item.shard, owner, item.size, item.cached))
    return plan


def check_cache_dirs(caches: Sequence[CacheDir], old: ShardMap, new: ShardMap) -> str:
    """Why ``caches`` cannot serve both maps (one per shard, all different), or ''."""
    needed = max(old.count, new.count)
    if len(caches) != needed:
        return (
            f"{len(caches)} cache dirs given for {needed} shards: give one --cache-dirs entry "
            "per shard, in shard order (shard 0 first)"
        )
    seen = [c.path for c in caches]
    if len(set(seen)) != len(seen):
        return "the same cache dir is given for two shards: each rclone needs its own"
    return ""


# --- the journal ------------------------------------------------------------------------


def encode_start(old: ShardMap, new: ShardMap, caches: Sequence[CacheDir]) -> str:
    """The journal's first line: which maps and caches the run is for."""
    return json.dumps({"start": journal_key(old, new, caches), "version": JOURNAL_VERSION}) + "\n"


def journal_key(old: ShardMap, new: ShardMap, caches: Sequence[CacheDir]) -> list[object]:
    """What a resumed run must agree on."""
    return [list(old.owner_of_char), list(new.owner_of_char), [[c.path, c.remote] for c in caches]]


def encode_move(move: Move, *, done: bool) -> str:
    """A line saying a move is starting (``done`` False) or finished."""
    state = "done" if done else "moving"
    return json.dumps({state: [move.relative, move.source, move.target]}) + "\n"


@dataclass
class ReshardJournal:
    """What a journal says: the run's key and the moves begun but not finished."""

    key: list[object] | None = None
    unfinished: list[Move] = field(default_factory=list)


def decode_reshard_journal(text: str, where: str) -> ReshardJournal:
    """Read a journal; a torn last line (a kill mid-write) is ignored."""
    journal = ReshardJournal()
    pending: dict[str, Move] = {}
    lines = text.split("\n")
    for number, line in enumerate(lines, start=1):
        if not line:
            continue
        try:
            record = json.loads(line)
        except ValueError:
            if number == len(lines):
                break
            raise ValueError(f"{where}: line {number} is not JSON; delete the file") from None
        if "start" in record:
            if record.get("version") != JOURNAL_VERSION:
                raise ValueError(f"{where}: written by another version; delete the file")
            journal.key = record["start"]
        elif "moving" in record:
            relative, source, target = record["moving"]
            pending[relative] = Move(relative, source, target, 0, 0)
        elif "done" in record:
            pending.pop(record["done"][0], None)
    journal.unfinished = list(pending.values())
    return journal
