"""The shard map and the mapping of request paths between shard views and NzbDav's tree.

A shard owns a set of first hex characters of a UUID. NzbDav stores every file at
``/.ids/<h1>/<h2>/<h3>/<h4>/<h5>/<uuid>`` where ``h1..h5`` are the UUID's first five
characters; shard N's view ``/.ids-s<N>/...`` is that tree restricted to the files whose
``h1`` it owns. Everything here is pure: no I/O, so it is tested by feeding it strings.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from urllib.parse import unquote_to_bytes

from shardproxy.core.apportion import apportion, contiguous_owners, keep_owners, parse_weights

HEX_DIGITS = "0123456789abcdef"
IDS_NAME = ".ids"
IDS_ROOT = "/" + IDS_NAME
ID_LEVELS = 5
# A shard owns first characters, so there can be no more shards than hex digits.
MAX_SHARDS = len(HEX_DIGITS)
# How many decimal digits a shard number may have (".ids-s15").
_SHARD_DIGITS = len(str(MAX_SHARDS - 1))
# What an NzbDav item id looks like, in either case (NzbDav writes lowercase). The one
# spelling of it: every other pattern that matches a UUID is built from this one.
UUID_PATTERN = "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_UUID_RE = re.compile(UUID_PATTERN)
_VIEW_NAME_RE = re.compile(re.escape(IDS_NAME) + r"-s([0-9]+)")


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
        if not 1 <= count <= MAX_SHARDS:
            raise ShardMapError(
                f"shard count {count} is out of range: use 1 to {MAX_SHARDS} shards"
            )
        size = len(HEX_DIGITS)
        return cls(tuple(value * count // size for value in range(size)))

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

    @cached_property
    def count(self) -> int:
        """How many shards there are."""
        return max(self.owner_of_char) + 1

    def shard_of(self, uuid_or_char: str) -> int:
        """The shard that owns a UUID (or its first hex character, either case).

        The one place ownership is decided: everything else that asks "whose is this?"
        calls it, or (the listing filter's owned set) derives from ``chars_of``, which does.
        """
        first = uuid_or_char[:1].lower()
        if not first or first not in HEX_DIGITS:
            raise ValueError(f"{uuid_or_char!r} does not start with a hex character")
        return self.owner_of_char[HEX_DIGITS.index(first)]

    def chars_of(self, shard: int) -> frozenset[str]:
        """The first hex characters shard ``shard`` owns."""
        return frozenset(c for c in HEX_DIGITS if self.shard_of(c) == shard)

    def prefixes_of(self, shard: int) -> str:
        """Shard ``shard``'s characters in the ``0-3`` spelling."""
        return format_prefixes(self.chars_of(shard))

    def view_root(self, shard: int) -> str:
        """The path of shard ``shard``'s view, ``/.ids-s<N>``."""
        return view_root(shard)


# --- paths in the .ids tree and its shard views ----------------------------------------


def view_name(shard: int) -> str:
    """The folder name of shard ``shard``'s view, ``.ids-s<N>``."""
    return f"{IDS_NAME}-s{shard}"


def view_root(shard: int) -> str:
    """The path of shard ``shard``'s view at the proxy's root, ``/.ids-s<N>``."""
    return "/" + view_name(shard)


def is_uuid(name: str) -> bool:
    """True for a UUID in NzbDav's spelling (either case)."""
    return _UUID_RE.fullmatch(name) is not None


def is_ids_root_name(name: str) -> bool:
    """True for ``.ids`` and for any ``.ids-s<digits>`` (which may name no shard)."""
    return name == IDS_NAME or _VIEW_NAME_RE.fullmatch(name) is not None


class ViewPathError(ValueError):
    """A path under ``.ids`` or a shard view that NzbDav cannot have; the message says why."""


# A shard-view path as rclone sends it: nothing encoded, lowercase hex levels, maybe a
# file. route() and ViewPath.from_plain read these without splitting; anything else is parsed.
_PLAIN_VIEW_PATH = re.compile(
    "/"
    + re.escape(IDS_NAME)
    + rf"-s(0|[1-9][0-9]{{0,{_SHARD_DIGITS - 1}}})((?:/[0-9a-f]){{0,{ID_LEVELS}}})"
    + rf"(?:/({UUID_PATTERN}))?(/?)"
)


def _match_plain(raw_path: str, shard_map: ShardMap) -> tuple[int, str, str, str] | None:
    """(shard, "/h1/.../h5" as written, uuid in lowercase or "", "/" or "") of a plain
    view path that is valid as it stands; None to leave it to the careful parser.

    On every request's path, so it works on the match's groups directly: the pattern
    has already checked the levels are lowercase hex and the file a UUID.
    """
    plain = _PLAIN_VIEW_PATH.fullmatch(raw_path)
    if plain is None:
        return None
    digits, levels, uuid, slash = plain.groups()
    shard = int(digits)
    if shard >= shard_map.count:
        return None
    if levels and shard_map.shard_of(levels[1]) != shard:
        return None
    if uuid is not None:
        uuid = uuid.lower()
        # levels is "/h1/h2/h3/h4/h5": the UUID must be stored under its own first five.
        if len(levels) != 2 * ID_LEVELS or uuid[:ID_LEVELS] != levels[1::2]:
            return None
    return shard, levels, uuid or "", slash


@dataclass(frozen=True)
class ViewPath:
    """A place in NzbDav's ``.ids`` tree, as the tree itself or one shard's view shows it.

    ``/.ids-s<shard>/<h1>/.../<h5>/<uuid>``: ``shard`` is None for ``/.ids`` itself;
    ``levels`` holds the hex characters h1.. (none to five); ``uuid`` the file name, only
    below five levels, in lowercase; ``slash`` a trailing slash. Every ViewPath is valid:
    the levels are hex, the file is a UUID stored under its own first five characters, and
    in a view the first level is one the shard owns.
    """

    shard: int | None
    levels: str = ""
    uuid: str = ""
    slash: bool = False

    @classmethod
    def parse(
        cls, root: str, names: Sequence[str], shard_map: ShardMap, *, slash: bool = False
    ) -> ViewPath:
        """``root`` (``.ids`` or ``.ids-s<N>``) and the decoded names below it."""
        shard = root_shard(root, shard_map)
        if len(names) > ID_LEVELS + 1:
            raise ViewPathError(f"path is deeper than .ids/{'/'.join('h' * ID_LEVELS)}/<uuid>")
        for depth, name in enumerate(names[:ID_LEVELS], start=1):
            if len(name) != 1 or name not in HEX_DIGITS:
                raise ViewPathError(f"level {depth} {name!r} is not one lowercase hex character")
        levels = "".join(names[:ID_LEVELS])
        if shard is not None and levels and shard_map.shard_of(levels[0]) != shard:
            raise ViewPathError(
                f"prefix {levels[0]!r} belongs to shard {shard_map.shard_of(levels[0])}, "
                f"not shard {shard} ({shard_map.prefixes_of(shard)}); its files are under "
                f"{view_name(shard_map.shard_of(levels[0]))}"
            )
        uuid = ""
        if len(names) == ID_LEVELS + 1:
            uuid = names[-1].lower()
            # NzbDav resolves any UUID under any five folders; checking the folders here
            # is what keeps a shard from reading another shard's files.
            if not is_uuid(uuid):
                raise ViewPathError(f"file name {names[-1]!r} is not a UUID")
            if uuid[:ID_LEVELS] != levels:
                raise ViewPathError(
                    f"file {uuid} is not stored under {'/'.join(levels)} "
                    f"(NzbDav stores it under {'/'.join(uuid[:ID_LEVELS])})"
                )
        return cls(shard, levels, uuid, slash)

    @classmethod
    def from_plain(cls, raw_path: str, shard_map: ShardMap) -> ViewPath | None:
        """A view path as rclone writes it (no escapes, nothing odd), or None to parse it."""
        plain = _match_plain(raw_path, shard_map)
        if plain is None:
            return None
        shard, levels, uuid, slash = plain
        return cls(shard, levels[1::2], uuid, bool(slash))

    @classmethod
    def of_uuid(cls, uuid: str, shard_map: ShardMap) -> ViewPath:
        """Where the owning shard's view shows the file ``uuid``."""
        if not is_uuid(uuid):
            raise ViewPathError(f"{uuid!r} is not a UUID")
        uuid = uuid.lower()
        return cls(shard_map.shard_of(uuid), uuid[:ID_LEVELS], uuid)

    @property
    def root(self) -> str:
        """``/.ids`` or ``/.ids-s<N>``."""
        return IDS_ROOT if self.shard is None else view_root(self.shard)

    @property
    def below_root(self) -> str:
        """The part under the root, ``h1/.../h5/uuid``, without slashes around it."""
        return "/".join([*self.levels, *([self.uuid] if self.uuid else [])])

    def __str__(self) -> str:
        return self._under(self.root)

    def _under(self, root: str) -> str:
        below = self.below_root
        return root + (f"/{below}" if below else "") + ("/" if self.slash else "")

    @property
    def backend_path(self) -> str:
        """The same place in NzbDav's own tree, ``/.ids/...``."""
        # Spelled directly: this is on every request's path, and replace() is slow.
        return self._under(IDS_ROOT)

    def in_view(self, shard: int) -> ViewPath:
        """The same place in shard ``shard``'s view."""
        return replace(self, shard=shard)

    def owner(self, shard_map: ShardMap) -> int | None:
        """The shard owning this place; None for the root of ``.ids`` (every shard has part)."""
        return shard_map.shard_of(self.levels) if self.levels else self.shard


def root_shard(name: str, shard_map: ShardMap) -> int | None:
    """None for ``.ids``, N for ``.ids-s<N>``; ViewPathError for a view no shard has."""
    if name == IDS_NAME:
        return None
    view = _VIEW_NAME_RE.fullmatch(name)
    if view is None:
        raise ViewPathError(f"{name!r} is neither {IDS_NAME} nor a shard view {view_name(0)}...")
    digits = view.group(1)
    # A longer number is no shard, and int() of thousands of digits raises.
    shard = int(digits) if len(digits) <= _SHARD_DIGITS else -1
    if str(shard) != digits or shard >= shard_map.count:
        raise ViewPathError(
            f"no shard view {name!r}: shards are {view_name(0)} to {view_name(shard_map.count - 1)}"
        )
    return shard


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


def route(raw_path: str, shard_map: ShardMap) -> Route:
    """Decide where a request for ``raw_path`` (as sent, percent-encoded) goes."""
    plain = _match_plain(raw_path, shard_map)
    if plain is not None:
        # The backend path spelled straight from the parts (what ViewPath.backend_path
        # gives): this runs on every request.
        shard, levels, uuid, slash = plain
        return ShardRoute(shard, f"{IDS_ROOT}{levels}{'/' if uuid else ''}{uuid}{slash}")
    return _route_carefully(raw_path, shard_map)


def _route_carefully(raw_path: str, shard_map: ShardMap) -> Route:
    """route() for any path: decoded, checked segment by segment."""
    segments = decode_segments(raw_path)
    if isinstance(segments, Refused):
        return segments
    # Doubled slashes are harmless empty segments: drop them, remember a trailing slash.
    trailing_slash = raw_path.endswith("/") and len(raw_path) > 1
    names = [s for s in segments if s]
    if not names or names[0] == IDS_NAME or not is_ids_root_name(names[0]):
        return PASS_THROUGH
    try:
        view = ViewPath.parse(names[0], names[1:], shard_map, slash=trailing_slash)
    except ViewPathError as exc:
        return Refused(404, str(exc))
    if view.shard is None:  # not reached: names[0] is a view, not .ids
        return PASS_THROUGH
    return ShardRoute(view.shard, view.backend_path)


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
