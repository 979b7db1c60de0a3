"""The pure RC planning: reading calls, placing paths, planning calls, merging replies."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shardproxy.core.shards import HEX_DIGITS, ShardMap
from shardproxy.rc.calls import (
    ALLOWED_COMMANDS,
    FORGET,
    MAX_PATHS_PER_CALL,
    REFRESH,
    PathCall,
    PathParam,
    RcError,
    error_body,
    fanout_params,
    parse_params,
    read_path_call,
    refusal,
)
from shardproxy.rc.fanout import merge_fanout, plan_fanout
from shardproxy.rc.replies import Failure, RcloneAnswer, Reply, delivered_by, merge_path_reply
from shardproxy.rc.route import place, plan_calls, plan_path_call, unmap
from shardproxy.rc.targets import Delivery, Target, Topology
from tests.helpers.rcreplies import answer_all, rclone_reply

FOUR = ShardMap.even(4)
S = [Target("shard", n) for n in range(4)]
FB = Target("fallback", 0)
FULL = Topology(FOUR, frozenset(range(4)), 1)
# Without a fallback rclone, for what a fallback's copy of each forget would only crowd.
SHARDS_ONLY = Topology(FOUR, frozenset(range(4)), 0)


def forget(*paths: str, kind: str = "dir") -> PathCall:
    keys = [kind if i == 0 else f"{kind}{i + 1}" for i in range(len(paths))]
    return read_path_call(FORGET, dict(zip(keys, paths, strict=True)))


# --- reading calls ---------------------------------------------------------------------


def test_json_body_is_read() -> None:
    assert parse_params([], "application/json", b'{"dir": ".ids/9"}') == {"dir": ".ids/9"}


def test_json_with_charset_is_read_too() -> None:
    params = parse_params([], "application/json; charset=utf-8", b'{"dir": "x"}')
    assert params == {"dir": "x"}


def test_form_body_is_read() -> None:
    body = b"dir=.ids%2F9%2F6&dir2=%2Fcontent%2Ftv%2FShow+Name"
    params = parse_params([], "application/x-www-form-urlencoded", body)
    assert params == {"dir": ".ids/9/6", "dir2": "/content/tv/Show Name"}


def test_query_string_is_read() -> None:
    assert parse_params([("dir", "a"), ("dir", "b")], None, b"") == {"dir": "b"}


def test_json_wins_over_query() -> None:
    params = parse_params([("dir", "q"), ("fs", "x:")], "application/json", b'{"dir": "j"}')
    assert params == {"dir": "j", "fs": "x:"}


def test_query_wins_over_form_like_go() -> None:
    params = parse_params([("dir", "q")], "application/x-www-form-urlencoded", b"dir=f&dir2=g")
    assert params == {"dir": "q", "dir2": "g"}


def test_empty_json_body_means_no_parameters() -> None:
    assert parse_params([], "application/json", b"") == {}


@pytest.mark.parametrize("body", [b"{", b"[1]", b'"dir"', b"{'dir': 1}"])
def test_malformed_json_is_400(body: bytes) -> None:
    with pytest.raises(RcError) as caught:
        parse_params([], "application/json", body)
    assert caught.value.status == 400
    assert "input JSON" in caught.value.message


def test_body_of_unknown_type_is_refused_not_ignored() -> None:
    with pytest.raises(RcError) as caught:
        parse_params([], "text/plain", b'{"dir": "x"}')
    assert caught.value.status == 400


def test_recursive_true_becomes_a_string() -> None:
    call = read_path_call(REFRESH, {"dir": ".ids/9", "recursive": True, "fs": "nzbdav:"})
    assert call == PathCall(REFRESH, (PathParam("dir", "dir", ".ids/9"),), True, "nzbdav:")


@pytest.mark.parametrize("value", ["yes", 2, None, ["true"]])
def test_recursive_must_be_a_go_bool(value: object) -> None:
    with pytest.raises(RcError) as caught:
        read_path_call(REFRESH, {"dir": "x", "recursive": value})
    assert caught.value.status == 400


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"dir": ["a"]}, 400),
        ({"dir": None}, 400),
        ({"path": "a"}, 400),
        ({"_async": True, "dir": "a"}, 403),
        ({"_async": "true"}, 403),
        ({"_config": "{}"}, 400),
        ({"_group": "g"}, 400),
    ],
)
def test_bad_forget_parameters_are_refused(params: dict[str, Any], status: int) -> None:
    with pytest.raises(RcError) as caught:
        read_path_call(FORGET, params)
    assert caught.value.status == status


def test_file_keys_are_not_refresh_keys() -> None:
    with pytest.raises(RcError):
        read_path_call(REFRESH, {"file": "a"})


def test_async_false_is_harmless() -> None:
    assert read_path_call(FORGET, {"_async": "false", "dir": "a"}).paths == (
        PathParam("dir", "dir", "a"),
    )


def test_numbers_are_sent_as_strings() -> None:
    assert read_path_call(FORGET, {"dir": 5}).paths == (PathParam("dir", "dir", "5"),)


@pytest.mark.parametrize("command", sorted(ALLOWED_COMMANDS))
def test_cache_calls_are_allowed(command: str) -> None:
    assert refusal(command) is None


@pytest.mark.parametrize(
    "command",
    [
        "operations/deletefile",
        "operations/purge",
        "sync/sync",
        "config/create",
        "core/command",
        "mount/mount",
        "job/status",
        "backend/command",
        "options/set",
        "core/quit",
    ],
)
def test_dangerous_calls_are_forbidden(command: str) -> None:
    refused = refusal(command)
    assert refused is not None and refused.status == 403


@pytest.mark.parametrize("command", ["vfs/queue", "core/pid", "", "vfs/forget/", "VFS/FORGET"])
def test_unknown_calls_are_not_found(command: str) -> None:
    refused = refusal(command)
    assert refused is not None and refused.status == 404


def test_error_body_is_rclones_shape() -> None:
    body = error_body("vfs/forget", {"dir": 1}, "boom", 400)
    assert body == {"error": "boom", "input": {"dir": 1}, "path": "vfs/forget", "status": 400}


def test_fanout_passes_only_known_parameters() -> None:
    assert fanout_params("vfs/stats", {"fs": "x:", "junk": 1}) == {}
    assert fanout_params("core/stats", {"group": "g", "junk": 1}) == {"group": "g"}
    assert fanout_params("rc/noop", {"a": [1]}) == {"a": [1]}


# --- placing paths -----------------------------------------------------------------------


@pytest.mark.parametrize("path", [".ids/9/6/1/b/0", "/.ids/9/6/1/b/0", "/.ids/9/6/1/b/0/"])
def test_ids_path_goes_to_owning_shard_mapped(path: str) -> None:
    assert place(path, FULL).targets == (S[2],)
    assert place(path, FULL).path == "9/6/1/b/0"


def test_ids_file_path_keeps_its_uuid() -> None:
    uuid = "961b00d8-0000-4000-8000-000000000000"
    placement = place(f".ids/9/6/1/b/0/{uuid}", FULL)
    assert placement.path == f"9/6/1/b/0/{uuid}"


def test_ids_root_goes_to_every_shard_as_root() -> None:
    assert place(".ids", FULL) == place("/.ids/", FULL)
    assert place(".ids", FULL).targets == tuple(S)
    assert place(".ids", FULL).path == ""


def test_root_goes_to_every_rclone() -> None:
    assert place("/", FULL).targets == (*S, FB)


def test_other_paths_go_to_fallback_unchanged() -> None:
    placement = place("/content/tv/Show", FULL)
    assert (placement.targets, placement.path) == ((FB,), "/content/tv/Show")


def test_other_paths_without_fallback_are_not_delivered() -> None:
    placement = place("/content/tv", Topology(FOUR, frozenset(range(4))))
    assert placement.targets == ()
    assert "--rc-fallback" in placement.missing


def test_shard_view_paths_go_to_their_shard() -> None:
    assert place(".ids-s2/9/6", FULL).targets == (S[2],)
    assert place(".ids-s2/9/6", FULL).path == "9/6"
    assert place(".ids-s3", FULL).targets == (S[3],)


@pytest.mark.parametrize(
    "path", [".ids/zz/1", ".ids/G", ".ids/9/../a", "./.ids", ".ids-s1/9", ".ids-s9", ".ids-s01"]
)
def test_paths_naming_no_rclone_are_not_delivered(path: str) -> None:
    placement = place(path, FULL)
    assert placement.targets == ()
    assert placement.missing


def test_ids_like_names_outside_ids_go_to_fallback() -> None:
    assert place(".idsx/9", FULL).targets == (FB,)


def test_unconfigured_shard_still_gets_nothing_and_is_named() -> None:
    topology = Topology(FOUR, frozenset({0, 1, 3}), 1)
    assert place(".ids/9/6", topology).targets == ()
    everywhere = place(".ids", topology)
    assert everywhere.targets == (S[0], S[1], S[3])
    assert "shard 2 has no RC URL" in everywhere.missing


# --- planning calls ------------------------------------------------------------------------


def test_nzbdav_forget_is_split_and_renumbered() -> None:
    call = read_path_call(
        FORGET,
        {
            "dir": ".ids/9/6/1/b/0",
            "dir2": "/content/tv/Show",
            "dir3": "/completed-symlinks/tv/Show",
            "dir4": "/nzbs",
        },
    )
    plan = plan_path_call(call, FULL)
    assert [(c.target, c.params) for c in plan.calls] == [
        (
            FB,
            {
                "dir": ".ids/9/6/1/b/0",
                "dir2": ".ids-s2/9/6/1/b/0",
                "dir3": "/content/tv/Show",
                "dir4": "/completed-symlinks/tv/Show",
                "dir5": "/nzbs",
            },
        ),
        (S[2], {"dir": "9/6/1/b/0"}),
    ]


def test_fs_is_replaced_per_target_or_dropped() -> None:
    topology = Topology(FOUR, frozenset(range(4)), 1, {S[2]: "shard2:"})
    call = read_path_call(REFRESH, {"fs": "nzbdav:", "dir": ".ids/9", "dir2": "/content"})
    params = {c.target: c.params for c in plan_path_call(call, topology).calls}
    assert params == {FB: {"dir": "/content"}, S[2]: {"fs": "shard2:", "dir": "9"}}


def test_recursive_goes_out_as_the_string_true() -> None:
    call = read_path_call(REFRESH, {"dir": ".ids/9/6/1/b/0", "recursive": True})
    params = plan_path_call(call, FULL).calls[0].params
    assert params == {"recursive": "true", "dir": "9/6/1/b/0"}


def test_refresh_of_a_shard_root_is_sent_without_dir() -> None:
    call = read_path_call(REFRESH, {"dir": ".ids", "dir2": ".ids/9/6"})
    calls = [(c.target, c.params) for c in plan_path_call(call, FULL).calls]
    assert (S[2], {"dir": "9/6"}) in calls
    assert [p for t, p in calls if t in S] == [{}, {}, {"dir": "9/6"}, {}, {}]


def test_forget_of_a_shard_root_is_dir_empty() -> None:
    plan = plan_path_call(forget(".ids"), SHARDS_ONLY)
    assert [c.params for c in plan.calls] == [{"dir": ""}] * 4


def test_no_paths_means_every_rclone() -> None:
    plan = plan_path_call(read_path_call(FORGET, {"fs": "x:"}), FULL)
    assert [(c.target, c.params) for c in plan.calls] == [(FB, {}), *((s, {}) for s in S)]


def test_files_and_dirs_are_numbered_apart() -> None:
    call = read_path_call(FORGET, {"file": ".ids/0/1", "dir": ".ids/0/2", "file9": ".ids/1/1"})
    assert plan_path_call(call, SHARDS_ONLY).calls[0].params == {
        "file": "0/1",
        "dir": "0/2",
        "file2": "1/1",
    }


def test_repeated_paths_are_sent_once() -> None:
    plan = plan_path_call(forget(".ids/9/6", "/.ids/9/6/", ".ids/9/6"), SHARDS_ONLY)
    assert [c.params for c in plan.calls] == [{"dir": "9/6"}]
    assert len(plan.calls[0].deliveries) == 3


def test_many_paths_are_split_into_bounded_calls() -> None:
    paths = [f".ids/0/{i:x}" for i in range(MAX_PATHS_PER_CALL + 3)]
    plan = plan_path_call(forget(*paths), SHARDS_ONLY)
    assert [len(c.params) for c in plan.calls] == [MAX_PATHS_PER_CALL, 3]
    assert plan.calls[1].params == {
        "dir": f"0/{MAX_PATHS_PER_CALL:x}",
        "dir2": f"0/{MAX_PATHS_PER_CALL + 1:x}",
        "dir3": f"0/{MAX_PATHS_PER_CALL + 2:x}",
    }


def test_plain_and_recursive_refresh_go_in_separate_calls() -> None:
    deliveries = [
        Delivery(S[0], REFRESH, "dir", "0/1", recursive=True),
        Delivery(S[0], REFRESH, "dir", "0/2", recursive=False),
    ]
    assert [c.params for c in plan_calls(deliveries, FULL)] == [
        {"dir": "0/2"},
        {"recursive": "true", "dir": "0/1"},
    ]


# --- replies --------------------------------------------------------------------------------


def test_forget_reply_lists_trimmed_caller_paths_in_order() -> None:
    plan = plan_path_call(forget("/content/tv/Show", ".ids/9/6/1/b/0", "/nzbs/"), FULL)
    reply = merge_path_reply(plan, answer_all(plan.calls), {})
    assert reply == {"forgotten": ["content/tv/Show", ".ids/9/6/1/b/0", "nzbs"]}


def test_forget_reply_leaves_out_what_a_down_shard_missed() -> None:
    plan = plan_path_call(forget(".ids/9/6/1/b/0", ".ids/0/1", ".ids"), FULL)
    confirmed = answer_all([c for c in plan.calls if c.target != S[2]])
    reply = merge_path_reply(plan, confirmed, {S[2]: "connection refused"})
    assert reply["forgotten"] == [".ids/0/1"]
    assert "connection refused" in reply["notForgotten"][".ids/9/6/1/b/0"]
    assert set(reply["notForgotten"]) == {".ids/9/6/1/b/0", ".ids"}


def test_forget_reply_trusts_the_echo_not_the_status() -> None:
    plan = plan_path_call(forget(".ids/0/1", ".ids/0/2"), SHARDS_ONLY)
    confirmed = delivered_by(plan.calls[0], Reply({"forgotten": ["0/2"]}))
    assert merge_path_reply(plan, confirmed, {})["forgotten"] == [".ids/0/2"]


def test_forget_reply_without_a_list_confirms_nothing() -> None:
    plan = plan_path_call(forget(".ids/0/1"), FULL)
    assert delivered_by(plan.calls[0], Reply({"forgotten": None})) == {}
    assert delivered_by(plan.calls[0], Reply({})) == {}


def test_refresh_reply_keeps_each_rclones_answer() -> None:
    call = read_path_call(REFRESH, {"dir": ".ids/9/6", "dir2": "/content/x", "dir3": ".ids/zz"})
    plan = plan_path_call(call, FULL)
    confirmed: dict[Any, str] = {}
    for target_call in plan.calls:
        answer = "OK" if target_call.target == S[2] else "file does not exist"
        keys = [v for k, v in target_call.params.items() if k.startswith("dir")]
        reply = Reply({"result": dict.fromkeys(keys, answer)})
        confirmed.update(delivered_by(target_call, reply))
    result = merge_path_reply(plan, confirmed, {})["result"]
    assert result[".ids/9/6"] == "OK"
    assert result["/content/x"] == "file does not exist"
    assert "not one lowercase hex character" in result[".ids/zz"]


def test_refresh_of_ids_is_ok_only_when_every_shard_says_ok() -> None:
    plan = plan_path_call(read_path_call(REFRESH, {"dir": ".ids"}), FULL)
    confirmed = {d.key: "OK" for d in plan.deliveries}
    assert merge_path_reply(plan, confirmed, {}) == {"result": {".ids": "OK"}}
    confirmed[plan.deliveries[1].key] = "boom"
    assert merge_path_reply(plan, confirmed, {}) == {"result": {".ids": "shard1: boom"}}


def test_forget_everything_that_missed_a_target_is_an_error() -> None:
    plan = plan_path_call(read_path_call(FORGET, {}), FULL)
    confirmed = answer_all([c for c in plan.calls if c.target != FB])
    with pytest.raises(RcError) as caught:
        merge_path_reply(plan, confirmed, {FB: "timeout"})
    assert caught.value.status == 502 and "fallback0: timeout" in caught.value.message
    assert merge_path_reply(plan, answer_all(plan.calls), {}) == {"forgotten": []}


def test_refresh_everything_reports_the_root() -> None:
    plan = plan_path_call(read_path_call(REFRESH, {}), FULL)
    assert merge_path_reply(plan, answer_all(plan.calls), {}) == {"result": {"": "OK"}}


def test_unmap_inverts_the_shard_mapping() -> None:
    assert unmap(S[2], "9/6/1") == ".ids/9/6/1"
    assert unmap(S[2], "") == ".ids"
    assert unmap(FB, "/content") == "/content"


# --- fan-out -------------------------------------------------------------------------------


def stats(fs: str, used: int, files: int, full: bool = False) -> Reply:
    return Reply(
        {
            "fs": fs,
            "inUse": 1,
            "metadataCache": {"dirs": 2, "files": 3},
            "diskCache": {
                "bytesUsed": used,
                "files": files,
                "erroredFiles": 0,
                "outOfSpace": full,
                "uploadsInProgress": 0,
                "uploadsQueued": 0,
                "path": f"/cache/{fs}",
            },
        }
    )


def test_fanout_sets_each_fs_for_stats() -> None:
    topology = Topology(FOUR, frozenset({0, 1}), 0, {S[1]: "s1:"})
    calls = plan_fanout("vfs/stats", {}, topology)
    assert [(c.target, c.params) for c in calls] == [(S[0], {}), (S[1], {"fs": "s1:"})]


def test_vfs_stats_totals_the_disk_caches() -> None:
    outcomes: dict[Target, RcloneAnswer] = {
        S[0]: stats("s0:", 100, 1),
        S[1]: stats("s1:", 50, 2, full=True),
        S[2]: Failure("down"),
    }
    reply = merge_fanout("vfs/stats", {"fs": "nzbdav:"}, outcomes, "9")
    assert reply["fs"] == "nzbdav:"
    assert reply["diskCache"]["bytesUsed"] == 150
    assert reply["diskCache"]["files"] == 3
    assert reply["diskCache"]["outOfSpace"] is True
    assert reply["metadataCache"] == {"dirs": 4, "files": 6}
    assert set(reply["targets"]) == {"shard0", "shard1"}
    assert reply["vfses"]["s1:"]["diskCache"]["bytesUsed"] == 50
    assert reply["errors"] == {"shard2": "down"}


def test_core_version_shows_the_oldest_rclone_and_each() -> None:
    outcomes: dict[Target, RcloneAnswer] = {
        S[0]: Reply({"version": "v1.75.2", "decomposed": [1, 75, 2]}),
        S[1]: Reply({"version": "v1.60.1-DEV", "decomposed": [1, 60, 1]}),
    }
    reply = merge_fanout("core/version", {}, outcomes, "0.1.0")
    assert reply["version"] == "v1.60.1-DEV"
    assert reply["shardproxy"] == "0.1.0"
    assert reply["targets"]["shard0"]["version"] == "v1.75.2"


def test_core_stats_adds_up() -> None:
    outcomes: dict[Target, RcloneAnswer] = {
        S[0]: Reply({"bytes": 1, "elapsedTime": 5.0, "fatalError": False, "transferring": [1]}),
        S[1]: Reply({"bytes": 2, "elapsedTime": 3.0, "fatalError": True, "transferring": [2]}),
    }
    reply = merge_fanout("core/stats", {}, outcomes, "0")
    assert (reply["bytes"], reply["elapsedTime"], reply["fatalError"]) == (3, 5.0, True)
    assert reply["transferring"] == [1, 2]


def test_vfs_list_joins_the_names() -> None:
    outcomes: dict[Target, RcloneAnswer] = {
        S[0]: Reply({"vfses": ["a:"]}),
        S[1]: Reply({"vfses": ["b:", "a:"]}),
    }
    assert merge_fanout("vfs/list", {}, outcomes, "0")["vfses"] == ["a:", "b:"]


def test_noop_echoes_its_input() -> None:
    reply = merge_fanout("rc/noop", {"x": 1}, {S[0]: Reply({"x": 1})}, "0")
    assert reply == {"x": 1}


def test_fanout_with_no_answer_is_502() -> None:
    with pytest.raises(RcError) as caught:
        merge_fanout("core/version", {}, {S[0]: Failure("refused")}, "0")
    assert caught.value.status == 502 and "shard0: refused" in caught.value.message
    with pytest.raises(RcError):
        merge_fanout("vfs/stats", {}, {}, "0")


# --- properties ----------------------------------------------------------------------------

hex_char = st.sampled_from(HEX_DIGITS)
uuidish = st.text(alphabet="0123456789abcdef-", min_size=1, max_size=12)
name = st.text(alphabet=st.characters(blacklist_characters="/\0"), min_size=1, max_size=8).filter(
    lambda s: s not in (".", "..")
)


@st.composite
def caller_paths(draw: st.DrawFn) -> str:
    """Paths as NzbDav and the forks send them, with slashes here and there."""
    lead = draw(st.sampled_from(["", "/"]))
    trail = draw(st.sampled_from(["", "/"]))
    shape = draw(st.sampled_from(["ids", "ids_root", "other", "root"]))
    if shape == "ids":
        levels = draw(st.lists(hex_char, min_size=1, max_size=5))
        tail = draw(st.lists(uuidish, max_size=1))
        return lead + "/".join([".ids", *levels, *tail]) + trail
    if shape == "ids_root":
        return lead + ".ids" + trail
    if shape == "root":
        return lead
    return lead + "/".join(draw(st.lists(name, min_size=1, max_size=4))) + trail


@st.composite
def topologies(draw: st.DrawFn) -> Topology:
    count = draw(st.integers(1, 16))
    shard_map = ShardMap.even(count)
    shards = draw(st.sets(st.integers(0, count - 1)))
    fallbacks = draw(st.integers(0, 2))
    fs_names = {Target("shard", n): f"s{n}:" for n in shards if draw(st.booleans())}
    return Topology(shard_map, frozenset(shards), fallbacks, fs_names)


def _names(path: str) -> list[str]:
    return [n for n in path.split("/") if n]


@settings(max_examples=300)
@given(topologies(), caller_paths())
def test_every_path_lands_on_exactly_its_owners(topology: Topology, path: str) -> None:
    placement = place(path, topology)
    names = _names(path)
    every_shard = [Target("shard", n) for n in range(topology.shard_map.count)]
    fallbacks = [Target("fallback", k) for k in range(topology.fallbacks)]
    if not names:
        owners = every_shard + fallbacks
    elif names == [".ids"]:
        owners = every_shard
    elif names[0] == ".ids":
        owners = [Target("shard", topology.shard_map.shard_of(names[1]))]
    else:
        owners = fallbacks
    configured = [t for t in owners if t in topology.targets]
    assert list(placement.targets) == configured
    assert bool(placement.missing) == (configured != owners or not owners)


@settings(max_examples=300)
@given(topologies(), caller_paths())
def test_mapping_round_trips(topology: Topology, path: str) -> None:
    placement = place(path, topology)
    for target in placement.targets:
        back = unmap(target, placement.path)
        if target.role == "shard":
            assert _names(back) == (_names(path) or [".ids"])
        else:
            assert _names(back) == _names(path)


@settings(max_examples=200)
@given(
    topologies(),
    st.lists(st.tuples(st.sampled_from(["dir", "file"]), caller_paths()), max_size=40),
    st.sampled_from([FORGET, REFRESH]),
)
def test_every_delivery_rides_in_exactly_one_call(
    topology: Topology, paths: list[tuple[str, str]], command: str
) -> None:
    if command == REFRESH:
        paths = [("dir", p) for _, p in paths]
    params = {f"{kind}{i}": path for i, (kind, path) in enumerate(paths)}
    plan = plan_path_call(read_path_call(command, params), topology)
    carried = [d for c in plan.calls for d in c.deliveries]
    assert sorted(map(repr, carried)) == sorted(map(repr, plan.deliveries))
    for call in plan.calls:
        assert all(isinstance(v, str) for v in call.params.values())
        for kind in ("dir", "file"):
            keys = [k for k in call.params if re.fullmatch(kind + r"[0-9]*", k)]
            assert keys == [kind if n == 1 else f"{kind}{n}" for n in range(1, len(keys) + 1)]
        fs = topology.fs_names.get(call.target)
        assert call.params.get("fs") == fs
        if command == REFRESH:
            assert "" not in [v for k, v in call.params.items() if k.startswith("dir")]


@settings(max_examples=300)
@given(
    topologies(),
    st.lists(caller_paths(), min_size=1, max_size=30),
    st.data(),
)
def test_forget_reply_never_lists_an_undelivered_path(
    topology: Topology, paths: list[str], data: st.DataObject
) -> None:
    plan = plan_path_call(forget(*paths), topology)
    confirmed: dict[Any, str] = {}
    failures: dict[Target, str] = {}
    for call in plan.calls:
        fate = data.draw(st.sampled_from(["ok", "down", "partial", "garbage"]))
        if fate == "down":
            failures[call.target] = "down"
            outcome: RcloneAnswer = Failure("down")
        elif fate == "garbage":
            outcome = Reply({"forgotten": "not a list"})
        else:
            echoed = [v.strip("/") for k, v in call.params.items() if k != "fs"]
            if fate == "partial":
                echoed = data.draw(st.lists(st.sampled_from(echoed or ["x"]), max_size=3))
            outcome = Reply({"forgotten": echoed})
        confirmed.update(delivered_by(call, outcome))
    reply = merge_path_reply(plan, confirmed, failures)
    really_done = [
        planned.param.path.strip("/")
        for planned in plan.paths
        if not planned.placement.missing
        and planned.deliveries
        and all(d.key in confirmed for d in planned.deliveries)
    ]
    assert reply["forgotten"] == really_done


@settings(max_examples=200)
@given(topologies(), st.lists(caller_paths(), min_size=1, max_size=20), st.data())
def test_refresh_reply_says_ok_only_for_delivered_paths(
    topology: Topology, paths: list[str], data: st.DataObject
) -> None:
    params = {f"dir{i}": path for i, path in enumerate(paths)}
    plan = plan_path_call(read_path_call(REFRESH, params), topology)
    confirmed: dict[Any, str] = {}
    failures: dict[Target, str] = {}
    for call in plan.calls:
        if data.draw(st.booleans()):
            failures[call.target] = "down"
            confirmed.update(delivered_by(call, Failure("down")))
        else:
            confirmed.update(delivered_by(call, rclone_reply(call)))
    result = merge_path_reply(plan, confirmed, failures)["result"]
    for planned in plan.paths:
        delivered = (
            not planned.placement.missing
            and planned.deliveries
            and all(d.key in confirmed for d in planned.deliveries)
        )
        if result[planned.param.path] == "OK":
            assert delivered


# --- forgets of .ids paths also reach the fallback (rest) -----------------------------------


def test_an_ids_forget_reaches_rest_under_both_spellings() -> None:
    plan = plan_path_call(forget(".ids/9/6/1/b/0"), FULL)
    assert [(c.target, c.params) for c in plan.calls] == [
        (FB, {"dir": ".ids/9/6/1/b/0", "dir2": ".ids-s2/9/6/1/b/0"}),
        (S[2], {"dir": "9/6/1/b/0"}),
    ]


def test_a_forget_of_ids_itself_reaches_rest_as_ids_and_every_view() -> None:
    plan = plan_path_call(forget(".ids"), FULL)
    rest = [c.params for c in plan.calls if c.target == FB]
    assert rest == [
        {"dir": ".ids", "dir2": ".ids-s0", "dir3": ".ids-s1", "dir4": ".ids-s2", "dir5": ".ids-s3"}
    ]


def test_an_ids_forget_counts_only_once_rest_confirmed_it_too() -> None:
    plan = plan_path_call(forget(".ids/9/6/1/b/0"), FULL)
    shard_call = next(c for c in plan.calls if c.target == S[2])
    only_shard = delivered_by(shard_call, Reply({"forgotten": ["9/6/1/b/0"]}))
    reply = merge_path_reply(plan, only_shard, {FB: "connection refused"})
    assert reply["forgotten"] == []
    assert "fallback0" in reply["notForgotten"][".ids/9/6/1/b/0"]
    rest_call = next(c for c in plan.calls if c.target == FB)
    both = only_shard | delivered_by(
        rest_call, Reply({"forgotten": [".ids/9/6/1/b/0", ".ids-s2/9/6/1/b/0"]})
    )
    assert merge_path_reply(plan, both, {})["forgotten"] == [".ids/9/6/1/b/0"]


def test_a_refresh_of_ids_paths_is_not_copied_to_rest() -> None:
    call = read_path_call(REFRESH, {"dir": ".ids/9/6/1/b/0"})
    assert [c.target for c in plan_path_call(call, FULL).calls] == [S[2]]


def test_without_a_fallback_an_ids_forget_goes_to_its_shard_alone() -> None:
    plan = plan_path_call(forget(".ids/9/6/1/b/0"), SHARDS_ONLY)
    assert [(c.target, c.params) for c in plan.calls] == [(S[2], {"dir": "9/6/1/b/0"})]


def test_a_path_of_path_max_bytes_or_more_is_refused_with_400() -> None:
    with pytest.raises(RcError) as refused:
        read_path_call(FORGET, {"dir": ".ids/0/" + "a" * 4089})
    assert refused.value.status == 400
    assert "4096 bytes long" in refused.value.message
    assert "PATH_MAX" in refused.value.message


def test_a_path_just_under_path_max_is_read() -> None:
    call = read_path_call(FORGET, {"file": "a" * 4095})
    assert call.paths[0].path == "a" * 4095
