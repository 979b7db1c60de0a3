"""The status model: states, vfs/stats parsing, readiness, the page's document."""

from __future__ import annotations

from shardproxy.ops.status import (
    STATE_DOWN,
    STATE_FALLBACK,
    STATE_UNKNOWN,
    STATE_UP,
    BackendState,
    FallbackWindow,
    ShardInfo,
    cache_path,
    caches_after_readiness,
    parse_vfs_stats,
    readiness_problems,
    shard_state,
    status_document,
)
from shardproxy.telemetry.metrics import CacheStats, Metrics, PendingSummary

# What rclone 1.60.1 answers to vfs/stats (trimmed) with --vfs-cache-max-size 1G.
VFS_STATS = {
    "diskCache": {
        "bytesUsed": 3145728,
        "erroredFiles": 0,
        "files": 2,
        "outOfSpace": False,
        "path": "/cache/vfs/shard0/",
    },
    "fs": "shard0:",
    "opt": {"CacheMaxSize": 1073741824, "CacheMode": 3},
}


def test_vfs_stats_gives_bytes_files_and_max_size() -> None:
    stats = parse_vfs_stats(VFS_STATS)
    assert stats == CacheStats(
        up=True, bytes_used=3145728, files=2, out_of_space=False, max_size=1 << 30
    )
    assert cache_path(VFS_STATS) == "/cache/vfs/shard0/"


def test_vfs_stats_unlimited_size_and_out_of_space() -> None:
    body = {"diskCache": {"bytesUsed": 10, "outOfSpace": True}, "opt": {"CacheMaxSize": -1}}
    stats = parse_vfs_stats(body)
    assert stats.max_size is None
    assert stats.out_of_space is True


def test_vfs_stats_without_a_disk_cache_counts_zero() -> None:
    stats = parse_vfs_stats({"fs": "x:", "opt": "not a map"})
    assert (stats.up, stats.bytes_used, stats.files, stats.max_size) == (True, 0, 0, None)
    assert cache_path({"fs": "x:"}) is None


def test_states() -> None:
    assert shard_state(CacheStats(up=True), 0) == STATE_UP
    assert shard_state(CacheStats(up=False), 0) == STATE_DOWN
    assert shard_state(None, 0) == STATE_UNKNOWN
    # Files read through the rest mount: the shard's mount failed them, whatever RC says.
    assert shard_state(CacheStats(up=True), 3) == STATE_FALLBACK
    assert shard_state(CacheStats(up=False), 1) == STATE_FALLBACK


def test_fallback_window_counts_only_reads_within_the_window() -> None:
    window = FallbackWindow(window=300)
    window.observe(0, 5)
    window.observe(100, 8)
    assert window.recent() == 3
    window.observe(400, 8)
    window.observe(500, 8)
    assert window.recent() == 0
    window.observe(510, 9)
    assert window.recent() == 1


def test_readiness_names_what_fails() -> None:
    problems = readiness_problems(
        BackendState(False, "cannot connect: Connection refused"),
        {"shard 0 rclone (127.0.0.1:5570)": None, "shard 1 rclone (127.0.0.1:5571)": "HTTP 500"},
    )
    assert problems == [
        "NzbDav does not answer: cannot connect: Connection refused",
        "shard 1 rclone (127.0.0.1:5571) does not answer rc/noop: HTTP 500",
    ]
    assert readiness_problems(BackendState(True, "HTTP 200"), {"a": None}) == []


def test_document_has_one_row_per_shard_with_its_figures() -> None:
    metrics = Metrics()
    metrics.request(1, "GET", 206)
    metrics.request(1, "GET", 502)
    metrics.upstream_error(1, "timeout")
    metrics.streamed(1, 4096, spliced=False)
    metrics.request(None, "PROPFIND", 207)
    shards = [ShardInfo(0, "0-7", "127.0.0.1:5570"), ShardInfo(1, "8-f", "127.0.0.1:5571")]
    document = status_document(
        shards=shards,
        caches={0: CacheStats(up=True, bytes_used=10, max_size=100), 1: CacheStats(up=False)},
        fallback_recent={1: 0},
        backend_url="http://127.0.0.1:3000",
        backend=BackendState(True, "HTTP 200"),
        pending=PendingSummary(2, 30.0, {"1": 2}),
        failing_rclones={"shard1": "cannot connect"},
        metrics=metrics,
        version="9.9",
        refresh_seconds=5,
    )
    first, second = document["shards"]
    assert (first["view"], first["prefixes"], first["state"]) == ("/.ids-s0", "0-7", "up")
    assert first["cache"]["bytes_used"] == 10
    assert first["cache"]["max_size"] == 100
    assert second["state"] == "down"
    assert second["cache"] is None
    assert (second["requests"], second["bytes"], second["errors"]) == (2, 4096, 2)
    assert second["pending"] == 2
    assert document["passthrough"]["requests"] == 1
    assert document["nzbdav"] == {"url": "http://127.0.0.1:3000", "up": True, "detail": "HTTP 200"}
    assert document["rc"] == {
        "pending": 2,
        "oldest_age": 30.0,
        "failing": {"shard1": "cannot connect"},
    }


def test_document_without_rc_endpoint_or_rclone_urls() -> None:
    document = status_document(
        shards=[ShardInfo(0, "0-f", None)],
        caches={},
        fallback_recent={},
        backend_url="http://127.0.0.1:3000",
        backend=BackendState(None),
        pending=None,
        failing_rclones={},
        metrics=Metrics(),
        version="9.9",
        refresh_seconds=5,
    )
    assert document["rc"] is None
    row = document["shards"][0]
    assert row["state"] == "unknown"
    assert "shard_rc" in row["detail"]
    assert row["pending"] is None


# --- what /readyz finds, shown on the page ------------------------------------------------


def test_a_shard_readiness_finds_down_is_down_with_the_reason() -> None:
    caches = {0: CacheStats(up=True, bytes_used=5), 1: CacheStats(up=True)}
    after = caches_after_readiness(caches, {0: "no answer within 1 s", 1: None})
    assert after == {
        0: CacheStats(up=False, bytes_used=5, error="no answer within 1 s"),
        1: CacheStats(up=True),
    }


def test_a_shard_readiness_finds_up_again_is_up_without_stale_figures() -> None:
    caches = {0: CacheStats(up=False, error="cannot connect")}
    assert caches_after_readiness(caches, {0: None}) == {0: CacheStats(up=True)}


def test_a_shard_never_polled_gets_the_readiness_state() -> None:
    assert caches_after_readiness({}, {2: "cannot connect"}) == {
        2: CacheStats(up=False, error="cannot connect")
    }
