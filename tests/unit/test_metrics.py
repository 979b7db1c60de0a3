"""The metrics module: one registry per Metrics object, bounded labels, scrape-time gauges."""

from __future__ import annotations

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from shardproxy.rc.calls import command_label
from shardproxy.rc.targets import Target
from shardproxy.telemetry.metrics import CacheStats, Metrics, PendingSummary


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the exposition text, parsed back by prometheus-client's parser."""
    text = metrics.exposition().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_two_metrics_objects_do_not_share_counts() -> None:
    first, second = Metrics(), Metrics()
    first.request(0, "GET", 206)
    assert (
        first.value("shardproxy_requests_total", shard="0", method="GET", status_class="2xx") == 1
    )
    assert second.total("shardproxy_requests_total") == 0


def test_requests_are_counted_by_shard_method_and_status_class() -> None:
    metrics = Metrics()
    metrics.request(2, "PROPFIND", 207)
    metrics.request(2, "PROPFIND", 207)
    metrics.request(None, "GET", 502)
    found = samples(metrics)
    key = (("method", "PROPFIND"), ("shard", "2"), ("status_class", "2xx"))
    assert found[("shardproxy_requests_total", key)] == 2
    none = (("method", "GET"), ("shard", "none"), ("status_class", "5xx"))
    assert found[("shardproxy_requests_total", none)] == 1


def test_made_up_methods_share_one_label() -> None:
    metrics = Metrics()
    for method in ("BREW", "WHEN", "GET"):
        metrics.request(0, method, 405)
    methods = {
        dict(labels)["method"]
        for name, labels in samples(metrics)
        if name == "shardproxy_requests_total"
    }
    assert methods == {"GET", "other"}


def test_bytes_are_counted_spliced_and_copied_apart() -> None:
    metrics = Metrics()
    metrics.streamed(1, 1 << 20, spliced=True)
    metrics.streamed(1, 100, spliced=False)
    metrics.streamed(1, 0, spliced=False)
    assert metrics.value("shardproxy_bytes_streamed_total", shard="1", path="spliced") == 1 << 20
    assert metrics.value("shardproxy_bytes_streamed_total", shard="1", path="copied") == 100


def test_listing_entries_kept_and_dropped() -> None:
    metrics = Metrics()
    metrics.listing(3, kept=4, dropped=12)
    metrics.listing(3, kept=17, dropped=0)  # a second listing counts on the same children
    metrics.listing(None, kept=1, dropped=0)
    assert metrics.value("shardproxy_listing_entries_total", shard="3", outcome="kept") == 21
    assert metrics.value("shardproxy_listing_entries_total", shard="3", outcome="dropped") == 12
    assert metrics.value("shardproxy_listing_entries_total", shard="none", outcome="kept") == 1


def test_rc_calls_outside_the_allow_list_share_one_label() -> None:
    metrics = Metrics()
    metrics.rc_call(command_label("vfs/forget"), 200)
    metrics.rc_call(command_label("operations/purge"), 403)
    metrics.rc_call(command_label("x" * 300), 404)
    metrics.rc_call(command_label("vfs/refresh"), 401)
    assert metrics.value("shardproxy_rc_calls_total", command="vfs/forget", outcome="ok") == 1
    assert metrics.value("shardproxy_rc_calls_total", command="other", outcome="refused") == 2
    assert (
        metrics.value("shardproxy_rc_calls_total", command="vfs/refresh", outcome="unauthorized")
        == 1
    )


def test_rc_forwarded_names_shard_and_fallback_rclones() -> None:
    metrics = Metrics()
    metrics.rc_forward(Target("shard", 2).label, "vfs/forget", True)
    metrics.rc_forward(Target("fallback", 0).label, "vfs/forget", False)
    assert (
        metrics.value(
            "shardproxy_rc_forwarded_total", shard="2", command="vfs/forget", outcome="ok"
        )
        == 1
    )
    assert (
        metrics.value(
            "shardproxy_rc_forwarded_total",
            shard="fallback0",
            command="vfs/forget",
            outcome="failed",
        )
        == 1
    )


def test_cache_gauges_are_read_at_scrape_time() -> None:
    metrics = Metrics()
    caches: dict[int, CacheStats] = {}
    metrics.watch_caches(lambda: caches)
    assert ("shardproxy_rclone_up", (("shard", "0"),)) not in samples(metrics)
    caches[0] = CacheStats(up=True, bytes_used=5000, files=3, max_size=1 << 30, disk_size=10**12)
    caches[1] = CacheStats(up=False, error="cannot connect")
    found = samples(metrics)
    assert found[("shardproxy_rclone_up", (("shard", "0"),))] == 1
    assert found[("shardproxy_rclone_up", (("shard", "1"),))] == 0
    assert found[("shardproxy_cache_bytes_used", (("shard", "0"),))] == 5000
    assert found[("shardproxy_cache_files", (("shard", "0"),))] == 3
    assert found[("shardproxy_cache_max_bytes", (("shard", "0"),))] == 1 << 30
    assert found[("shardproxy_cache_out_of_space", (("shard", "0"),))] == 0
    assert found[("shardproxy_cache_disk_bytes", (("shard", "0"),))] == 10**12
    # A dead rclone has no figures rather than stale ones.
    assert ("shardproxy_cache_bytes_used", (("shard", "1"),)) not in found


def test_pending_deliveries_per_rclone_and_oldest_age() -> None:
    metrics = Metrics()
    metrics.watch_pending(lambda: PendingSummary(7, 42.5, {"1": 5, "fallback0": 2}))
    found = samples(metrics)
    assert found[("shardproxy_rc_pending_deliveries", (("shard", "1"),))] == 5
    assert found[("shardproxy_rc_pending_deliveries", (("shard", "fallback0"),))] == 2
    assert found[("shardproxy_rc_pending_oldest_age_seconds", ())] == 42.5


def test_repeated_requests_count_into_the_right_series() -> None:
    # The labelled series are looked up once and reused: every later count must still
    # land in its own series, and only there.
    metrics = Metrics()
    for _ in range(3):
        metrics.request(0, "GET", 200)
        metrics.request(0, "GET", 206)
        metrics.request(0, "GET", 404)
        metrics.request(1, "GET", 200)
        metrics.request(None, "GET", 200)
        metrics.request(0, "HEAD", 200)
        metrics.request(0, "BREW", 200)
        metrics.streamed(0, 10, spliced=False)
        metrics.streamed(0, 1000, spliced=True)
        metrics.streamed(None, 7, spliced=False)
    text = metrics.exposition().decode()
    for line in (
        'shardproxy_requests_total{method="GET",shard="0",status_class="2xx"} 6.0',
        'shardproxy_requests_total{method="GET",shard="0",status_class="4xx"} 3.0',
        'shardproxy_requests_total{method="GET",shard="1",status_class="2xx"} 3.0',
        'shardproxy_requests_total{method="GET",shard="none",status_class="2xx"} 3.0',
        'shardproxy_requests_total{method="HEAD",shard="0",status_class="2xx"} 3.0',
        'shardproxy_requests_total{method="other",shard="0",status_class="2xx"} 3.0',
        'shardproxy_bytes_streamed_total{path="copied",shard="0"} 30.0',
        'shardproxy_bytes_streamed_total{path="spliced",shard="0"} 3000.0',
        'shardproxy_bytes_streamed_total{path="copied",shard="none"} 21.0',
    ):
        assert line in text.splitlines(), line
    assert metrics.total("shardproxy_requests_total") == 21


def test_counts_between_reads_are_added_once() -> None:
    # Per-request counts wait in plain dicts until the registry is read: every read
    # must see all of them, and no read may add them twice.
    metrics = Metrics()
    metrics.request(0, "GET", 200)
    metrics.streamed(0, 10, spliced=False)
    assert (
        metrics.value("shardproxy_requests_total", shard="0", method="GET", status_class="2xx") == 1
    )
    metrics.request(0, "GET", 200)
    metrics.streamed(0, 5, spliced=False)
    text = generate_latest(metrics.registry).decode()  # the registry read directly
    assert 'shardproxy_requests_total{method="GET",shard="0",status_class="2xx"} 2.0' in text
    assert 'shardproxy_bytes_streamed_total{path="copied",shard="0"} 15.0' in text
    assert metrics.total("shardproxy_requests_total") == 2
    assert metrics.total("shardproxy_bytes_streamed_total") == 15
