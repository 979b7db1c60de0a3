"""relink's decision for one link target, fed as text."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shardproxy.core.shards import ShardMap
from shardproxy.tools.relink.plan import (
    NAME_MAX,
    NOT_RELINKS,
    TMP_SUFFIX,
    JournalEntry,
    JournalHeader,
    LinkHistory,
    LinkPlan,
    Outcome,
    decode_journal,
    encode_entry,
    encode_finished,
    encode_header,
    normalize_mount,
    plan_link,
    plan_undo,
    resume_problem,
    temporary_name,
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


# --- temporary names --------------------------------------------------------------------

names = st.text(
    st.characters(blacklist_characters="/\0", blacklist_categories=("Cs",)), min_size=1
).filter(lambda name: len(name.encode()) <= NAME_MAX)


@given(names, st.text("0123456789abcdef", min_size=8, max_size=8))
def test_a_temporary_name_fits_name_max_whatever_the_links_name(name: str, token: str) -> None:
    tmp = temporary_name(name, token)
    assert len(tmp.encode("utf-8", "surrogateescape")) <= NAME_MAX
    assert tmp.startswith(".") and tmp.endswith(f".{token}{TMP_SUFFIX}")
    assert "/" not in tmp


def test_a_short_name_is_kept_whole_in_its_temporary_name() -> None:
    assert temporary_name("Film.mkv", "0a1b2c3d") == ".Film.mkv.0a1b2c3d.shardproxy-relink"


def test_a_255_byte_name_is_cut_in_its_temporary_name() -> None:
    tmp = temporary_name("é" * 127 + "x", "0a1b2c3d")
    assert NAME_MAX - 1 <= len(tmp.encode()) <= NAME_MAX  # no half character at the cut
    assert tmp.startswith(".éé")


# --- the journal over several runs ------------------------------------------------------

FORWARD = JournalHeader(MOUNT, False, MAP.owner_of_char)
BACK = JournalHeader(MOUNT, True, MAP.owner_of_char)
S1 = f"{MOUNT}/.ids-s1/9/6/1/b/0/{UUID}"


def journal(*lines: JournalHeader | JournalEntry | str) -> str:
    text = ""
    for line in lines:
        if isinstance(line, JournalHeader):
            text += encode_header(line)
        elif isinstance(line, JournalEntry):
            text += encode_entry(line)
        else:
            text += line
    return text


def test_the_origin_of_a_link_survives_a_later_run_with_another_map() -> None:
    text = journal(
        FORWARD, JournalEntry("a", IDS, S1), encode_finished({}), FORWARD, JournalEntry("a", S1, S2)
    )
    assert decode_journal(text, "j").links["a"] == LinkHistory(origin=IDS, current=S2, before=S1)


def test_a_change_a_kill_kept_from_happening_keeps_the_origin() -> None:
    # Run 2 recorded s1 -> s2 and was killed before the rename; run 3 records it again.
    text = journal(
        FORWARD, JournalEntry("a", IDS, S1), encode_finished({}),
        FORWARD, JournalEntry("a", S1, S2), FORWARD, JournalEntry("a", S1, S2),
    )  # fmt: skip
    assert decode_journal(text, "j").links["a"].origin == IDS


def test_a_link_someone_changed_between_runs_starts_a_new_history() -> None:
    other = f"{MOUNT}/.ids/0/0/0/0/0/00000000-0000-4000-8000-000000000000"
    text = journal(FORWARD, JournalEntry("a", IDS, S2), FORWARD, JournalEntry("a", other, S1))
    assert decode_journal(text, "j").links["a"] == LinkHistory(other, S1, other)


def test_an_undo_entry_of_a_link_relink_never_changed_makes_no_history() -> None:
    assert decode_journal(journal(BACK, JournalEntry("a", S2, IDS)), "j").links == {}


def test_pending_entries_are_those_since_the_last_finished_run() -> None:
    first, second, third = (JournalEntry(n, IDS, S2) for n in "abc")
    text = journal(FORWARD, first, encode_finished({}), FORWARD, second, FORWARD, third)
    state = decode_journal(text, "j")
    assert (state.pending, state.finished) == ([second, third], False)


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ('{"link": "../../etc/passwd", "old": "a", "new": "b"}', "not a path inside"),
        ('{"link": "/etc/passwd", "old": "a", "new": "b"}', "not a path inside"),
        ('{"link": "tv/./a", "old": "a", "new": "b"}', "not a path inside"),
        ('{"link": 5, "old": "a", "new": "b"}', "not a link entry"),
        ('{"link": "a", "old": "", "new": "b"}', "empty"),
        ('{"link": "a", "old": "x", "new": "b", "tmp": "../x.shardproxy-relink"}', "temporary"),
        ('{"link": "a", "old": "x", "new": "b", "tmp": ".bashrc"}', "temporary"),
        ("[1, 2]", "not a record"),
        ("{not json", "not JSON"),
    ],
)
def test_a_bad_journal_line_is_reported_and_skipped(line: str, problem: str) -> None:
    good = JournalEntry("tv/b.mkv", IDS, S2)
    state = decode_journal(journal(FORWARD, line + "\n", good), "j")
    assert state.pending == [good]
    assert len(state.problems) == 1
    assert state.problems[0].startswith("line 2: ") and problem in state.problems[0]


def test_a_header_that_cannot_be_read_stops_the_run() -> None:
    with pytest.raises(ValueError, match="line 1: a run's header cannot be read"):
        decode_journal('{"header": {"version": 1}}\n', "j")


# --- undo -------------------------------------------------------------------------------


def test_undo_restores_the_recorded_origin_even_in_a_shard_view() -> None:
    history = LinkHistory(origin=S1, current=S2, before=S1)
    assert plan_undo(S2, history, MOUNT, MAP, every=False) == LinkPlan(
        Outcome.CHANGE, new_target=S1
    )


def test_undo_restores_a_link_whose_last_change_did_not_happen() -> None:
    history = LinkHistory(origin=IDS, current=S2, before=S1)
    assert plan_undo(S1, history, MOUNT, MAP, every=False).new_target == IDS


def test_undo_leaves_a_link_someone_changed_since() -> None:
    history = LinkHistory(origin=IDS, current=S2, before=IDS)
    other = f"{MOUNT}/.ids-s3/9/6/1/b/0/{UUID}"
    assert plan_undo(other, history, MOUNT, MAP, every=False).outcome is Outcome.SKIP


def test_undo_leaves_a_shard_view_link_relink_did_not_make_unless_all() -> None:
    assert plan_undo(S2, None, MOUNT, MAP, every=False) == LinkPlan(
        Outcome.SKIP, reason=NOT_RELINKS
    )
    assert plan_undo(S2, None, MOUNT, MAP, every=True).new_target == IDS
    history = LinkHistory(origin=S1, current=S2, before=S1)
    assert plan_undo(S1, history, MOUNT, MAP, every=False).reason == NOT_RELINKS
