"""The shard map and the mapping of request paths between shard views and NzbDav's tree.

A shard owns a set of first hex characters of a UUID. NzbDav stores every file at
``/.ids/<h1>/<h2>/<h3>/<h4>/<h5>/<uuid>`` where ``h1..h5`` are the UUID's first five
characters; shard N's view ``/.ids-s<N>/...`` is that tree restricted to the files whose
``h1`` it owns. Everything here is pure: no I/O, so it is tested by feeding it strings.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

from shardproxy.apportion import apportion, contiguous_owners, keep_owners, parse_weights
from shardproxy.multistatus import PrefixRewrite

HEX_DIGITS = "0123456789abcdef"
IDS_ROOT = "/.ids"
VIEW_PREFIX = "/.ids-s"
ID_LEVELS = 5
_UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_VIEW_SEGMENT_RE = re.compile(r"\.ids-s([0-9]+)")


class ShardMapError(ValueError):
    """The shard map is not a partition of the 16 hex characters."""


def parse_prefixes(spec: str) -> frozenset[str]:
    """Parse ``0-3``, ``0,1,2,3``, ``8-b`` or a mix into a set of lowercase hex characters."""
    chars: set[str] = set()
    if not spec.strip():
        raise ShardMapError(f"empty prefix list {spec!r}: write e.g. '0-3' or '0,1,2,3'")
    for part in spec.split(","):
        item = part.strip().lower()
        low, dash, high = item.partition("-")
        if not dash:
            high = low
        if len(low) != 1 or len(high) != 1 or low not in HEX_DIGITS or high not in HEX_DIGITS:
            raise ShardMapError(
                f"bad prefix {part.strip()!r} in {spec!r}: use single hex characters "
                "0-9 a-f, alone or as a range like '8-b'"
            )
        if HEX_DIGITS.index(low) > HEX_DIGITS.index(high):
            raise ShardMapError(f"backwards range {item!r} in {spec!r}: write it low-high")
        chars.update(HEX_DIGITS[HEX_DIGITS.index(low) : HEX_DIGITS.index(high) + 1])
    return frozenset(chars)


def format_prefixes(chars: Iterable[str]) -> str:
    """The shortest spelling of a set of hex characters: ``{0,1,2,3,9}`` -> ``0-3,9``."""
    indexes = sorted(HEX_DIGITS.index(c) for c in set(chars))
    runs: list[str] = []
    start = prev = -2
    for index in [*indexes, -1]:
        if index == prev + 1:
            prev = index
            continue
        if start >= 0:
            low, high = HEX_DIGITS[start], HEX_DIGITS[prev]
            runs.append(low if start == prev else f"{low}-{high}")
        start = prev = index
    return ",".join(runs)


@dataclass(frozen=True)
class ShardMap:
    """Which shard owns each first hex character of a UUID."""

    owner_of_char: tuple[int, ...]

    @classmethod
    def even(cls, count: int) -> ShardMap:
        """Split the 16 characters evenly: character value v goes to shard ``v * count // 16``."""
        if not 1 <= count <= 16:
            raise ShardMapError(f"shard count {count} is out of range: use 1 to 16 shards")
        return cls(tuple(value * count // 16 for value in range(16)))

    @classmethod
    def weighted(cls, weights: str | Sequence[str | int | float]) -> ShardMap:
        """Give each shard a run of characters proportional to its weight (``"4T,8T,12T"``)."""
        try:
            return cls(contiguous_owners(apportion(parse_weights(weights))))
        except ValueError as exc:
            raise ShardMapError(str(exc)) from None

    def rebalanced(self, weights: str | Sequence[str | int | float]) -> ShardMap:
        """A map with the shares ``weights`` give that moves the fewest characters from this one.

        Use it when adding (or removing) a disk: only the characters that change owner
        need their cached files moved by ``reshard``.
        """
        try:
            return ShardMap(keep_owners(self.owner_of_char, apportion(parse_weights(weights))))
        except ValueError as exc:
            raise ShardMapError(str(exc)) from None

    def moved_chars(self, new: ShardMap) -> dict[str, tuple[int, int]]:
        """``{char: (old owner, new owner)}`` for every character that changes owner."""
        return {
            char: (old, owner)
            for char, old, owner in zip(
                HEX_DIGITS, self.owner_of_char, new.owner_of_char, strict=True
            )
            if old != owner
        }

    def share_of(self, shard: int) -> float:
        """The fraction of the library shard ``shard`` holds (UUIDs are uniform)."""
        return len(self.chars_of(shard)) / len(HEX_DIGITS)

    @classmethod
    def from_prefixes(cls, prefixes: Mapping[int, str]) -> ShardMap:
        """Build the map from ``{shard: "0-3", ...}``; gaps, overlaps and holes are errors."""
        if not prefixes:
            raise ShardMapError("no shards given: use --shards N or --shard N=PREFIXES")
        expected = list(range(len(prefixes)))
        if sorted(prefixes) != expected:
            missing = sorted(set(expected) - set(prefixes))
            raise ShardMapError(
                f"shards are numbered {sorted(prefixes)}, but must be 0..{len(prefixes) - 1} "
                f"without holes (missing {missing})"
            )
        owners: dict[str, list[int]] = {c: [] for c in HEX_DIGITS}
        for shard, spec in sorted(prefixes.items()):
            try:
                chars = parse_prefixes(spec)
            except ShardMapError as exc:
                raise ShardMapError(f"shard {shard}: {exc}") from None
            for char in chars:
                owners[char].append(shard)
        problems = []
        gaps = [c for c, shards in owners.items() if not shards]
        if gaps:
            problems.append(f"characters {format_prefixes(gaps)} belong to no shard (gap)")
        overlaps = {c: shards for c, shards in owners.items() if len(shards) > 1}
        for char, shards in overlaps.items():
            problems.append(
                f"character {char} belongs to shards {', '.join(map(str, shards))} (overlap)"
            )
        if problems:
            raise ShardMapError(
                "every hex character 0-f must belong to exactly one shard: " + "; ".join(problems)
            )
        return cls(tuple(owners[c][0] for c in HEX_DIGITS))

    @property
    def count(self) -> int:
        """How many shards there are."""
        return max(self.owner_of_char) + 1

    def shard_of(self, uuid_or_char: str) -> int:
        """The shard that owns a UUID (or its first hex character)."""
        first = uuid_or_char[:1].lower()
        if not first or first not in HEX_DIGITS:
            raise ValueError(f"{uuid_or_char!r} does not start with a hex character")
        return self.owner_of_char[HEX_DIGITS.index(first)]

    def chars_of(self, shard: int) -> frozenset[str]:
        """The first hex characters shard ``shard`` owns."""
        return frozenset(
            c for c, owner in zip(HEX_DIGITS, self.owner_of_char, strict=True) if owner == shard
        )

    def prefixes_of(self, shard: int) -> str:
        """Shard ``shard``'s characters in the ``0-3`` spelling."""
        return format_prefixes(self.chars_of(shard))

    def view_root(self, shard: int) -> str:
        """The path of shard ``shard``'s view, ``/.ids-s<N>``."""
        return f"{VIEW_PREFIX}{shard}"


# --- request routing ------------------------------------------------------------------


@dataclass(frozen=True)
class ShardRoute:
    """A request inside shard ``shard``'s view, to be sent upstream as ``backend_path``."""

    shard: int
    backend_path: str


@dataclass(frozen=True)
class PassThrough:
    """A request outside every shard view: forwarded upstream unchanged."""


@dataclass(frozen=True)
class Refused:
    """A request the proxy answers itself, without asking the backend."""

    status: int
    reason: str


Route = ShardRoute | PassThrough | Refused
PASS_THROUGH = PassThrough()


def decode_segments(raw_path: str) -> list[str] | Refused:
    """Split a raw (percent-encoded) path into decoded segments, refusing tricks.

    Dot segments and encoded slashes are refused rather than resolved: no WebDAV client
    sends them, and resolving them is how a path escapes its shard.
    """
    if not raw_path.startswith("/"):
        return Refused(400, f"path {raw_path!r} does not start with '/'")
    segments: list[str] = []
    for raw in raw_path.split("/")[1:]:
        try:
            segment = unquote_to_bytes(raw).decode("utf-8", "strict") if "%" in raw else raw
        except UnicodeDecodeError:
            return Refused(400, f"path segment {raw!r} is not valid percent-encoded UTF-8")
        if "%" in raw and re.search(r"%(?![0-9A-Fa-f]{2})", raw):
            return Refused(400, f"path segment {raw!r} has a '%' not followed by two hex digits")
        if "/" in segment or "\\" in segment or "\0" in segment:
            return Refused(400, f"path segment {raw!r} hides a slash or NUL in percent-encoding")
        if segment in (".", ".."):
            return Refused(400, f"path {raw_path!r} has a dot segment {raw!r}; send a plain path")
        segments.append(segment)
    return segments


# A shard-view path as rclone sends it: nothing encoded, lowercase hex levels, maybe a
# file. Such paths take a shortcut in route(); anything else goes the careful way.
_PLAIN_VIEW_PATH = re.compile(
    r"/\.ids-s(0|[1-9][0-9]?)((?:/[0-9a-f]){0,5})(/[0-9a-fA-F-]{36})?(/?)"
)


def route(raw_path: str, shard_map: ShardMap) -> Route:
    """Decide where a request for ``raw_path`` (as sent, percent-encoded) goes."""
    plain = _PLAIN_VIEW_PATH.fullmatch(raw_path)
    if plain is not None:
        shortcut = _plain_route(plain, shard_map)
        if shortcut is not None:
            return shortcut
    return _route_carefully(raw_path, shard_map)


def _plain_route(plain: re.Match[str], shard_map: ShardMap) -> ShardRoute | None:
    """What route() gives for a plain view path that is one of the shard's; None if not."""
    shard_digits, levels, file, slash = plain.groups()
    shard = int(shard_digits)
    if shard >= shard_map.count or (levels and shard_map.shard_of(levels[1]) != shard):
        return None
    if file is not None:
        uuid = file[1:].lower()
        if len(levels) != 2 * ID_LEVELS or uuid[:ID_LEVELS] != levels[1::2]:
            return None
        if not _UUID_RE.fullmatch(uuid):
            return None
        return ShardRoute(shard, f"{IDS_ROOT}{levels}/{uuid}{slash}")
    return ShardRoute(shard, f"{IDS_ROOT}{levels}{slash}")


def _route_carefully(raw_path: str, shard_map: ShardMap) -> Route:
    """route() for any path: decoded, checked segment by segment."""
    segments = decode_segments(raw_path)
    if isinstance(segments, Refused):
        return segments
    # Doubled slashes are harmless empty segments: drop them, remember a trailing slash.
    trailing_slash = raw_path.endswith("/") and len(raw_path) > 1
    names = [s for s in segments if s]
    if not names:
        return PASS_THROUGH
    view = _VIEW_SEGMENT_RE.fullmatch(names[0])
    if view is None:
        return PASS_THROUGH
    digits = view.group(1)
    # At most 16 shards: a longer number is no shard, and int() of thousands of digits raises.
    shard = int(digits) if len(digits) <= 2 else -1
    if str(shard) != digits or shard >= shard_map.count:
        return Refused(
            404, f"no shard view {names[0]!r}: shards are .ids-s0 to .ids-s{shard_map.count - 1}"
        )
    levels = names[1:]
    problem = _shard_levels_problem(levels, shard, shard_map)
    if problem:
        return Refused(404, problem)
    backend_path = "/".join([IDS_ROOT, *(name.lower() for name in levels)])
    if trailing_slash:
        backend_path += "/"
    return ShardRoute(shard, backend_path)


def _shard_levels_problem(levels: Sequence[str], shard: int, shard_map: ShardMap) -> str:
    """Why ``levels`` (below ``/.ids-s<shard>``) is not a path of that shard, or ''."""
    if len(levels) > ID_LEVELS + 1:
        return f"path is deeper than .ids/{'/'.join('h' * ID_LEVELS)}/<uuid>"
    for depth, name in enumerate(levels[:ID_LEVELS], start=1):
        if len(name) != 1 or name not in HEX_DIGITS:
            return f"level {depth} {name!r} is not one lowercase hex character"
    if levels and shard_map.shard_of(levels[0]) != shard:
        return (
            f"prefix {levels[0]!r} belongs to shard {shard_map.shard_of(levels[0])}, "
            f"not shard {shard} ({shard_map.prefixes_of(shard)})"
        )
    if len(levels) == ID_LEVELS + 1:
        uuid = levels[-1].lower()
        # NzbDav resolves any UUID under any five folders; checking the folders here is
        # what keeps a shard from reading another shard's files.
        if not _UUID_RE.fullmatch(uuid):
            return f"file name {levels[-1]!r} is not a UUID"
        if uuid[:ID_LEVELS] != "".join(levels[:ID_LEVELS]):
            return f"file {uuid} is not stored under {'/'.join(levels[:ID_LEVELS])}"
    return ""


# --- mapping backend paths back into views ----------------------------------------------


def view_path(backend_path: str, shard: int, shard_map: ShardMap) -> str | None:
    """The path in shard ``shard``'s view of a decoded backend path, or None if not its own."""
    if backend_path in (IDS_ROOT, IDS_ROOT + "/"):
        return shard_map.view_root(shard) + backend_path[len(IDS_ROOT) :]
    if not backend_path.startswith(IDS_ROOT + "/"):
        return None
    first = backend_path[len(IDS_ROOT) + 1 : len(IDS_ROOT) + 2]
    if first not in HEX_DIGITS or shard_map.shard_of(first) != shard:
        return None
    rest = backend_path[len(IDS_ROOT) + 2 :]
    if rest and not rest.startswith("/"):
        return None
    return shard_map.view_root(shard) + backend_path[len(IDS_ROOT) :]


def owning_view_path(backend_path: str, shard_map: ShardMap) -> str | None:
    """``/.ids/<h>/...`` -> the same path in the view of the shard that owns ``h``."""
    if not backend_path.startswith(IDS_ROOT + "/"):
        return None
    first = backend_path[len(IDS_ROOT) + 1 : len(IDS_ROOT) + 2]
    if not first or first not in HEX_DIGITS:  # '' is "in" every string: /.ids/ has no owner
        return None
    return view_path(backend_path, shard_map.shard_of(first), shard_map)


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
        self._view_root = shard_map.view_root(shard)
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
        views = tuple(self.shard_map.view_root(s) for s in range(self.shard_map.count))
        return (backend_path, *views)
