"""Sharing the 16 first hex characters among shards by weight (disk size).

A shard's share of the library is the share of first characters it owns, since UUIDs
are uniform. Shares are apportioned by the largest-remainder method with at least one
character per shard, and a grown map keeps as many characters with their old owner as
the new shares allow, so that as little cached data as possible has to move. Pure: no
I/O, tested by feeding it numbers.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from fractions import Fraction

SEATS = 16  # first hex characters
_UNITS = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15}
_WEIGHT_RE = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*([KMGTP]?)(?:I?B)?", re.IGNORECASE)


class WeightError(ValueError):
    """A weight list that cannot be apportioned; the message says what to write."""


def parse_weights(spec: str | Sequence[str | int | float]) -> tuple[Fraction, ...]:
    """``"4T,8T,12T"``, ``"1,2,3"`` or a list of such items -> exact positive weights.

    Units (K, M, G, T, P, optionally followed by B or iB) only scale: only the ratios
    between shards matter, so ``4T`` and ``4TiB`` weigh the same against ``8T``.
    """
    items: list[str | int | float] = list(spec.split(",") if isinstance(spec, str) else spec)
    if not items or items == [""]:
        raise WeightError("no weights given: write one per shard, e.g. '4T,8T,12T' or '1,2,3'")
    weights: list[Fraction] = []
    for position, item in enumerate(items):
        text = str(item).strip()
        match = _WEIGHT_RE.fullmatch(text)
        if isinstance(item, bool) or match is None:
            raise WeightError(
                f"weight {position} ({item!r}) is not a size: write a number with an "
                "optional unit K, M, G, T or P, e.g. '4T' or '1.5'"
            )
        weight = Fraction(match.group(1)) * _UNITS[match.group(2).upper()]
        if weight <= 0:
            raise WeightError(f"weight {position} ({item!r}) must be greater than 0")
        weights.append(weight)
    return tuple(weights)


def apportion(weights: Sequence[Fraction | int], seats: int = SEATS) -> tuple[int, ...]:
    """Each shard's number of characters, proportional to its weight.

    Largest remainder (ties to the lower shard number); a shard whose quota rounds to
    nothing still gets one character, taken from the shard most over its quota.
    """
    count = len(weights)
    if count == 0:
        raise WeightError("no weights given: write one per shard")
    if count > seats:
        raise WeightError(
            f"{count} shards but only {seats} first hex characters to share: "
            f"use at most {seats} shards (join small disks with mergerfs first)"
        )
    total = sum(Fraction(w) for w in weights)
    quotas = [Fraction(w) * seats / total for w in weights]
    shares = [int(q) for q in quotas]
    by_remainder = sorted(range(count), key=lambda s: (-(quotas[s] - shares[s]), s))
    for shard in by_remainder[: seats - sum(shares)]:
        shares[shard] += 1
    for shard in range(count):
        if shares[shard] == 0:
            donor = max(
                (s for s in range(count) if shares[s] > 1),
                key=lambda s: (shares[s] - quotas[s], -s),
            )
            shares[donor] -= 1
            shares[shard] = 1
    return tuple(shares)


def contiguous_owners(shares: Sequence[int]) -> tuple[int, ...]:
    """The owner of each character when shard 0 takes the first ``shares[0]``, and so on."""
    return tuple(shard for shard, share in enumerate(shares) for _ in range(share))


def keep_owners(old_owners: Sequence[int], shares: Sequence[int]) -> tuple[int, ...]:
    """New owners with ``shares`` per shard, moving the fewest characters from ``old_owners``.

    A shard keeps its old characters up to its new share (the lowest ones first); the
    characters it must give up go, in order, to the shards still short of their share.
    The number moved is the sum of what each shard has beyond its new share, the least
    any map with these shares can move.
    """
    if len(old_owners) != sum(shares):
        raise WeightError(f"shares {list(shares)} do not add up to {len(old_owners)} characters")
    owners: list[int | None] = [None] * len(old_owners)
    kept = [0] * len(shares)
    for char, old in enumerate(old_owners):
        if old < len(shares) and kept[old] < shares[old]:
            owners[char] = old
            kept[old] += 1
    short = [shard for shard in range(len(shares)) for _ in range(shares[shard] - kept[shard])]
    free = [char for char, owner in enumerate(owners) if owner is None]
    for char, shard in zip(free, short, strict=True):
        owners[char] = shard
    return tuple(owner for owner in owners if owner is not None)
