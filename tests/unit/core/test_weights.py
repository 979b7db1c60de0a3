"""Shard weights: shares by largest remainder, and grown maps that move the least."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shardproxy.core.apportion import apportion, keep_owners, parse_weights
from shardproxy.core.shards import ShardMap, ShardMapError

weight_lists = st.lists(st.integers(min_value=1, max_value=10**6), min_size=1, max_size=16)


def test_sizes_with_units_weigh_by_ratio() -> None:
    assert parse_weights("4T, 8TB,12TiB") == (
        Fraction(4 * 10**12),
        Fraction(8 * 10**12),
        Fraction(12 * 10**12),
    )
    assert parse_weights("1.5,3") == (Fraction(3, 2), Fraction(3))
    assert parse_weights(["2", 4]) == (Fraction(2), Fraction(4))


@pytest.mark.parametrize("spec", ["", "4T,,8T", "4X", "-1", "0", "1,0"])
def test_bad_weights_are_named(spec: str) -> None:
    with pytest.raises(ShardMapError, match=r"weight|no weights"):
        ShardMap.weighted(spec)


def test_four_eight_twelve_terabytes() -> None:
    shard_map = ShardMap.weighted("4T,8T,12T")
    # Quotas 2.67, 5.33, 8: floors 2+5+8 = 15, the last character to the largest remainder.
    assert [shard_map.prefixes_of(s) for s in range(3)] == ["0-2", "3-7", "8-f"]


def test_more_than_sixteen_shards_is_an_error_that_says_so() -> None:
    with pytest.raises(ShardMapError, match="17 shards but only 16 first hex characters"):
        ShardMap.weighted(["1"] * 17)


def test_a_tiny_disk_still_gets_one_character() -> None:
    shares = apportion([1000, 1, 1])
    assert shares == (14, 1, 1)


@given(weight_lists)
def test_shares_add_up_and_everyone_gets_one(weights: list[int]) -> None:
    shares = apportion(weights)
    assert sum(shares) == 16
    assert min(shares) >= 1


@given(weight_lists)
def test_shares_are_the_quota_rounded_when_every_quota_is_at_least_one(weights: list[int]) -> None:
    quotas = [Fraction(w * 16, sum(weights)) for w in weights]
    shares = apportion(weights)
    if min(quotas) >= 1:
        for share, quota in zip(shares, quotas, strict=True):
            assert quota - 1 < share < quota + 1


@given(weight_lists)
def test_a_heavier_shard_never_gets_fewer_characters(weights: list[int]) -> None:
    shares = apportion(weights)
    for i, wi in enumerate(weights):
        for j, wj in enumerate(weights):
            if wi > wj:
                assert shares[i] >= shares[j]


@given(weight_lists)
def test_weighted_map_is_contiguous_in_shard_order(weights: list[int]) -> None:
    shard_map = ShardMap.weighted(weights)
    assert list(shard_map.owner_of_char) == sorted(shard_map.owner_of_char)
    assert shard_map.count == len(weights)


@given(st.integers(1, 15), weight_lists)
def test_rebalance_moves_the_least_possible(old_count: int, weights: list[int]) -> None:
    old = ShardMap.even(old_count)
    new = old.rebalanced(weights)
    shares = apportion(weights)
    assert [len(new.chars_of(s)) for s in range(len(weights))] == list(shares)
    # A shard can keep at most its new share of its old characters; anything more moves.
    least = sum(
        max(0, len(old.chars_of(s)) - (shares[s] if s < len(shares) else 0))
        for s in range(old.count)
    )
    assert len(old.moved_chars(new)) == least


def test_adding_a_fifth_disk_moves_only_what_the_new_disk_takes() -> None:
    old = ShardMap.even(4)
    new = old.rebalanced("1,1,1,1,1")
    moved = old.moved_chars(new)
    assert {new_owner for _, new_owner in moved.values()} == {4}
    assert len(moved) == 3  # 16/5 = 3.2: the new disk takes 3 characters, one from three shards


def test_keep_owners_refuses_shares_that_do_not_cover_the_map() -> None:
    with pytest.raises(ValueError, match="do not add up"):
        keep_owners([0] * 16, [4, 4])
