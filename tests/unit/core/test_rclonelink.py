"""Rewritten .rclonelink targets: the text, the size rule, and ranges on the new body."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shardproxy.config.layers import load_settings
from shardproxy.config.settings import ConfigError
from shardproxy.core.rclonelink import (
    GROWTH,
    RcloneLinkError,
    check_shard_count,
    is_rclonelink,
    listed_size,
    rewrite_target,
    serve_range,
)
from shardproxy.core.shards import ShardMap

MAP = ShardMap.even(4)
UUID = "961b00d8-0f1e-4c52-9b0e-d0a7a3a2b1c4"
BODY = f"/mnt/nzbdav/.ids/9/6/1/b/0/{UUID}".encode()


def test_the_target_moves_into_the_owning_shards_view() -> None:
    assert rewrite_target(BODY, MAP) == f"/mnt/nzbdav/.ids-s2/9/6/1/b/0/{UUID}".encode()


@given(st.uuids().map(str), st.integers(1, 10), st.sampled_from(["/mnt/nzbdav", "/m", "/a/.ids"]))
def test_every_rewrite_adds_exactly_the_listed_growth(uuid: str, count: int, mount: str) -> None:
    shard_map = ShardMap.even(count)
    body = f"{mount}/.ids/{'/'.join(uuid[:5])}/{uuid}".encode()
    rewritten = rewrite_target(body, shard_map)
    assert rewritten is not None
    assert len(rewritten) == listed_size(len(body)) == len(body) + GROWTH
    assert rewritten.startswith(f"{mount}/.ids-s{shard_map.shard_of(uuid)}/".encode())


@pytest.mark.parametrize(
    "body",
    [
        b"/mnt/nzbdav/content/movies/x.mkv",
        f"/mnt/nzbdav/.ids/9/6/1/b/1/{UUID}".encode(),  # folders do not match the UUID
        b"/mnt/nzbdav/.ids/9/6/1/b/0",
        "/mnt/nzbdav/.ids/9/6/1/b/0/\u00e9".encode(),
    ],
)
def test_a_text_that_is_not_an_ids_target_is_not_rewritten(body: bytes) -> None:
    assert rewrite_target(body, MAP) is None


def test_more_than_ten_shards_is_refused_saying_why() -> None:
    check_shard_count(ShardMap.even(10))
    with pytest.raises(RcloneLinkError, match="at most 10 shards, not 11"):
        check_shard_count(ShardMap.even(11))


def test_only_links_under_completed_symlinks_count() -> None:
    assert is_rclonelink("/completed-symlinks/movies/Film/film.mkv.rclonelink")
    assert not is_rclonelink("/content/movies/Film/film.mkv.rclonelink")
    assert not is_rclonelink("/completed-symlinks/movies/Film/film.mkv")


@pytest.mark.parametrize(
    ("range_value", "status", "body", "content_range"),
    [
        (None, 200, b"0123456789", None),
        ("bytes=2-4", 206, b"234", "bytes 2-4/10"),
        ("bytes=0-", 206, b"0123456789", "bytes 0-9/10"),
        ("bytes=8-20", 206, b"89", "bytes 8-9/10"),
        ("bytes=-3", 206, b"789", "bytes 7-9/10"),
        ("bytes=10-", 416, b"", "bytes */10"),
        ("bytes=1-2,4-5", 200, b"0123456789", None),
    ],
)
def test_ranges_apply_to_the_rewritten_body(
    range_value: str | None, status: int, body: bytes, content_range: str | None
) -> None:
    reply = serve_range(b"0123456789", "GET", range_value, None)
    assert (reply.status, reply.body, reply.content_range) == (status, body, content_range)


def test_the_setting_reads_true_and_false_from_every_layer(tmp_path: Path) -> None:
    config = tmp_path / "shardproxy.toml"
    config.write_text("rewrite_rclonelinks = true\n")
    assert load_settings(
        {}, config_file=str(config), environ={}, need_backend=False
    ).rewrite_rclonelinks
    env = {"SHARDPROXY_REWRITE_RCLONELINKS": "off"}
    assert not load_settings(
        {}, config_file=str(config), environ=env, need_backend=False
    ).rewrite_rclonelinks
    assert load_settings(
        {"rewrite_rclonelinks": True}, environ=env, need_backend=False
    ).rewrite_rclonelinks


def test_the_setting_with_eleven_shards_is_a_start_up_error() -> None:
    with pytest.raises(ConfigError, match=r"SHARDPROXY_REWRITE_RCLONELINKS: .*at most 10 shards"):
        load_settings(
            {"shards": 11}, environ={"SHARDPROXY_REWRITE_RCLONELINKS": "1"}, need_backend=False
        )
