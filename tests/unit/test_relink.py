"""relink's decision for one link target, fed as text."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shardproxy.core.shards import ShardMap
from shardproxy.tools.relink.plan import (
    JournalEntry,
    JournalHeader,
    LinkPlan,
    Outcome,
    decode_journal,
    encode_entry,
    encode_finished,
    encode_header,
    normalize_mount,
    plan_link,
    resume_problem,
)

MOUNT = "/mnt/nzbdav"
MAP = ShardMap.even(4)
UUID = "961b00d8-0f1e-4c52-9b0e-d0a7a3a2b1c4"
IDS = f"{MOUNT}/.ids/9/6/1/b/0/{UUID}"
S2 = f"{MOUNT}/.ids-s2/9/6/1/b/0/{UUID}"

uuids = st.uuids().map(str)


def test_an_ids_link_moves_to_its_shard_view() -> None:
    assert plan_link(IDS, MOUNT, MAP, undo=False) == LinkPlan(Outcome.CHANGE, new_target=S2)


def test_undo_moves_it_back() -> None:
    assert plan_link(S2, MOUNT, MAP, undo=True) == LinkPlan(Outcome.CHANGE, new_target=IDS)


def test_a_link_already_in_its_view_is_right() -> None:
    assert plan_link(S2, MOUNT, MAP, undo=False).outcome is Outcome.RIGHT
    assert plan_link(IDS, MOUNT, MAP, undo=True).outcome is Outcome.RIGHT


def test_a_link_in_the_wrong_view_after_a_map_change_moves_to_the_right_one() -> None:
    stale = f"{MOUNT}/.ids-s1/9/6/1/b/0/{UUID}"
    assert plan_link(stale, MOUNT, MAP, undo=False) == LinkPlan(Outcome.CHANGE, new_target=S2)


@pytest.mark.parametrize(
    "target",
    [
        f"/mnt/other/.ids/9/6/1/b/0/{UUID}",
        f"{MOUNT}/content/movies/x.mkv",
        f"{MOUNT}/.idsx/9/6/1/b/0/{UUID}",
        f"../.ids/9/6/1/b/0/{UUID}",
        f"{MOUNT}x/.ids/9/6/1/b/0/{UUID}",
    ],
)
def test_links_elsewhere_are_skipped(target: str) -> None:
    assert plan_link(target, MOUNT, MAP, undo=False).outcome is Outcome.SKIP


@pytest.mark.parametrize(
    "target",
    [
        f"{MOUNT}/.ids/9/6/1/b/1/{UUID}",  # levels do not match the UUID
        f"{MOUNT}/.ids/9/6/1/b/{UUID}",
        f"{MOUNT}/.ids/9/6/1/b/0/not-a-uuid",
        f"{MOUNT}/.ids/9/6/1/b/0/{UUID}/",
        f"{MOUNT}/.ids",  # the tree itself, not a file in it
        f"{MOUNT}/.ids-s2/9/6/1",
        f"{MOUNT}/.ids-s7/9/6/1/b/0/{UUID}",  # no shard 7 in a 4-shard map
        f"{MOUNT}/.ids-s02/9/6/1/b/0/{UUID}",
    ],
)
def test_targets_in_the_id_tree_that_nzbdav_never_makes_are_broken(target: str) -> None:
    assert plan_link(target, MOUNT, MAP, undo=False).outcome is Outcome.BROKEN


@given(uuids, st.integers(1, 16))
def test_relink_then_undo_gives_the_original_target(uuid: str, count: int) -> None:
    shard_map = ShardMap.even(count)
    original = f"{MOUNT}/.ids/{'/'.join(uuid[:5])}/{uuid}"
    forward = plan_link(original, MOUNT, shard_map, undo=False)
    assert forward.new_target.startswith(f"{MOUNT}/.ids-s{shard_map.shard_of(uuid)}/")
    # NzbDav's cleanup keeps an item only if its link target starts with {mount}/.ids.
    assert forward.new_target.startswith(f"{MOUNT}/.ids")
    assert plan_link(forward.new_target, MOUNT, shard_map, undo=False).outcome is Outcome.RIGHT
    assert plan_link(forward.new_target, MOUNT, shard_map, undo=True).new_target == original


def test_mount_dir_must_be_absolute() -> None:
    assert normalize_mount("/mnt/nzbdav/") == MOUNT
    with pytest.raises(ValueError, match="absolute"):
        normalize_mount("mnt/nzbdav")


def test_journal_round_trip_ignores_a_torn_last_line() -> None:
    header = JournalHeader(MOUNT, False, MAP.owner_of_char)
    entry = JournalEntry("tv/a.mkv", IDS, S2)
    text = encode_header(header) + encode_entry(entry) + '{"link": "tv/b'
    state = decode_journal(text, "j")
    assert (state.header, state.pending, state.finished) == (header, [entry], False)
    assert decode_journal(text[: text.rindex("\n") + 1] + encode_finished({}), "j").finished


def test_an_unfinished_run_resumes_or_undoes_but_never_mixes_maps() -> None:
    header = JournalHeader(MOUNT, False, MAP.owner_of_char)
    previous = decode_journal(encode_header(header), "j")
    assert resume_problem(previous, header) == ""
    assert resume_problem(previous, JournalHeader(MOUNT, True, MAP.owner_of_char)) == ""
    other_map = JournalHeader(MOUNT, False, ShardMap.even(2).owner_of_char)
    assert "interrupted run" in resume_problem(previous, other_map)
