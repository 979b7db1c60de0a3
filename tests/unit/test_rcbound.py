"""A recursive ``vfs/refresh`` never walks NzbDav's virtual ``.ids`` tree: values in, out."""

from __future__ import annotations

import pytest

from shardproxy.core.shards import ShardMap
from shardproxy.rc.bounds import CLAMP_NOTE, walks_virtual_tree
from shardproxy.rc.calls import REFRESH, read_path_call
from shardproxy.rc.replies import merge_path_reply
from shardproxy.rc.route import plan_path_call
from shardproxy.rc.targets import Delivery, Target, Topology
from tests.helpers.rcreplies import answer_all

S2 = Target("shard", 2)
FB = Target("fallback", 0)
FULL = Topology(ShardMap.even(4), frozenset(range(4)), 1)


@pytest.mark.parametrize("path", ["", "9", "9/6", "9/6/1/b"])
def test_a_recursive_refresh_above_the_fifth_level_of_a_shard_walks_the_tree(path: str) -> None:
    assert walks_virtual_tree(Delivery(S2, REFRESH, "dir", path, recursive=True))


@pytest.mark.parametrize("path", ["9/6/1/b/0", "9/6/1/b/0/"])
def test_a_recursive_refresh_of_a_fifth_level_folder_is_bounded(path: str) -> None:
    assert not walks_virtual_tree(Delivery(S2, REFRESH, "dir", path, recursive=True))


def test_a_recursive_refresh_of_the_fallback_root_walks_the_tree() -> None:
    # The fallback mounts the proxy's root, which holds .ids and every shard view.
    assert walks_virtual_tree(Delivery(FB, REFRESH, "dir", "/", recursive=True))
    assert walks_virtual_tree(Delivery(FB, REFRESH, "all", "", recursive=True))


def test_a_recursive_refresh_of_a_library_folder_stays_recursive() -> None:
    assert not walks_virtual_tree(Delivery(FB, REFRESH, "dir", "/content/tv", recursive=True))


def test_a_plain_refresh_is_never_clamped() -> None:
    assert not walks_virtual_tree(Delivery(S2, REFRESH, "dir", "", recursive=False))


def refresh(**params: str) -> dict[str, object]:
    """Plan a refresh over 4 shards and a fallback, answer every call as rclone does."""
    plan = plan_path_call(read_path_call(REFRESH, params), FULL)
    reply = merge_path_reply(plan, answer_all(plan.calls), {})
    return {"params": [call.params for call in plan.calls], "reply": reply}


def test_a_recursive_refresh_of_ids_reaches_every_shard_without_recursion() -> None:
    planned = refresh(dir=".ids", recursive="true")
    assert planned["params"] == [{}, {}, {}, {}]  # each shard's root, flat
    assert planned["reply"] == {"result": {".ids": f"OK ({CLAMP_NOTE})"}}


def test_a_recursive_refresh_of_a_shard_view_is_clamped() -> None:
    planned = refresh(dir=".ids-s2/9/6", recursive="true")
    assert planned["params"] == [{"dir": "9/6"}]
    assert planned["reply"] == {"result": {".ids-s2/9/6": f"OK ({CLAMP_NOTE})"}}


def test_a_recursive_refresh_of_everything_is_clamped_everywhere() -> None:
    planned = refresh(recursive="true")
    assert planned["params"] == [{}, {}, {}, {}, {}]
    assert planned["reply"] == {"result": {"": f"OK ({CLAMP_NOTE})"}}


def test_a_recursive_refresh_of_a_fifth_level_folder_goes_out_recursive() -> None:
    planned = refresh(dir=".ids/9/6/1/b/0", recursive="true")
    assert planned["params"] == [{"recursive": "true", "dir": "9/6/1/b/0"}]
    assert planned["reply"] == {"result": {".ids/9/6/1/b/0": "OK"}}


def test_only_the_clamped_path_of_a_call_carries_the_note() -> None:
    planned = refresh(dir=".ids/9", dir2="/content/tv", recursive="true")
    assert planned["params"] == [{"recursive": "true", "dir": "/content/tv"}, {"dir": "9"}]
    assert planned["reply"] == {"result": {".ids/9": f"OK ({CLAMP_NOTE})", "/content/tv": "OK"}}
