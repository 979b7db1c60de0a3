"""Prometheus metrics of one shardproxy process, each set in its own registry.

Code paths count with one-line calls (``metrics.request(...)``, ``metrics.streamed(...)``);
the gauges that describe other processes (each shard's rclone cache, the RC deliveries
waiting for a retry) are read at scrape time from whatever last observed them, so a
scrape never waits for an rclone.

A registry per ``Metrics`` object, never prometheus-client's global one: two apps in one
process (tests, or a test beside the real server) never see each other's counts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Methods a WebDAV client sends; anything else is counted as "other", so a client making
# up methods cannot grow the label set without bound.
KNOWN_METHODS = frozenset(
    {
        "GET",
        "HEAD",
        "PROPFIND",
        "PROPPATCH",
        "OPTIONS",
        "PUT",
        "DELETE",
        "MKCOL",
        "COPY",
        "MOVE",
        "LOCK",
        "UNLOCK",
        "POST",
    }
)
# The shard label of requests outside every shard view (/.ids/, /content, ...).
NO_SHARD = "none"
RC_OUTCOMES = {200: "ok", 401: "unauthorized", 403: "refused", 404: "refused"}
UPSTREAM_ERROR_KINDS = (
    "unreachable",
    "timeout",
    "broke_off",
    "bad_range",
    "bad_listing",
    "bad_redirect",
)


def shard_label(shard: int | None) -> str:
    """``"0"``, ``"1"``, ... for a shard view; ``"none"`` for everything else."""
    return NO_SHARD if shard is None else str(shard)


def status_class(status: int) -> str:
    """``"2xx"`` for 200..299 and so on."""
    return f"{status // 100}xx"


@dataclass(frozen=True)
class CacheStats:
    """What one shard's rclone said about its VFS cache at the last poll."""

    up: bool
    bytes_used: int = 0
    files: int = 0
    out_of_space: bool = False
    max_size: int | None = None  # --vfs-cache-max-size; None when unlimited or unknown
    disk_size: int | None = None  # the cache disk, when this machine can see its path
    disk_free: int | None = None
    error: str = ""  # why the rclone did not answer


@dataclass(frozen=True)
class PendingSummary:
    """The RC deliveries waiting for a retry: how many, the oldest one's age, per rclone."""

    count: int
    oldest_age: float
    by_rclone: Mapping[str, int] = field(default_factory=dict)  # "0", "1", "fallback0"


# A process's counters as a worker reports them to the first process: one entry per
# series, (metric name, label values, value). Plain lists, so they cross a pipe as JSON.
CounterTotals = list[tuple[str, list[str], float]]


class Metrics:
    """Every counter of one process, in one registry.

    With several worker processes, the first one's registry is the one scraped: each
    worker reports its counter totals now and then (``counter_totals``), and the first
    process adds what is new in them to its own counters (``add_worker_totals``), so
    ``/metrics`` and the status page count every process.
    """

    def __init__(self) -> None:
        # What each worker reported last, and what of it the counters already hold.
        self._worker_reports: dict[int, CounterTotals] = {}
        self._worker_applied: dict[int, dict[tuple[str, tuple[str, ...]], float]] = {}
        self._ended_workers: set[int] = set()
        self._counters: dict[str, tuple[Counter, list[str]]] = {}
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        # The series counted on every request are counted in plain dicts first and
        # added to their counters whenever the registry is read (_FlushFirst): a labelled
        # prometheus-client counter validates and locks on each call, a noticeable
        # share of a small request's cost. Every key is bounded (shard count,
        # KNOWN_METHODS + "other", status classes), so these stay small.
        self._request_counts: dict[tuple[int | None, str, int], int] = {}
        self._streamed_counts: dict[tuple[int | None, bool], int] = {}
        self._listing_counts: dict[tuple[int | None, bool], int] = {}  # (shard, kept)
        # Registered first, so that every read of the registry (a scrape, value(),
        # total()) adds the counts waiting in the plain dicts above before it reads
        # the counters.
        registry.register(_FlushFirst(self._flush))

        def counter(name: str, documentation: str, labels: list[str]) -> Counter:
            made = Counter(name, documentation, labels, registry=registry)
            self._counters[name] = (made, labels)
            return made

        self.requests = counter(
            "shardproxy_requests",
            "Client requests answered, by shard view, method and status class",
            ["shard", "method", "status_class"],
        )
        self.bytes_streamed = counter(
            "shardproxy_bytes_streamed",
            "Body bytes sent to clients, spliced (zero-copy) or copied",
            ["shard", "path"],
        )
        self.upstream_errors = counter(
            "shardproxy_upstream_errors",
            "Failures of NzbDav: unreachable, timeout, broke_off, bad_range, bad_listing, "
            "bad_redirect",
            ["shard", "kind"],
        )
        self.client_aborts = counter(
            "shardproxy_client_aborts",
            "Clients that hung up before the reply was complete",
            ["shard"],
        )
        self.listing_entries = counter(
            "shardproxy_listing_entries",
            "PROPFIND entries of shard listings, kept or dropped (another shard's)",
            ["shard", "outcome"],
        )
        self.fallback_reads = counter(
            "shardproxy_fallback_reads",
            "Reads of a shard's files through /.ids/ instead of its view (its mount failed)",
            ["shard"],
        )
        self.rc_calls = counter(
            "shardproxy_rc_calls",
            "RC calls received from NzbDav, by command and outcome",
            ["command", "outcome"],
        )
        self.rc_forwarded = counter(
            "shardproxy_rc_forwarded",
            "RC calls sent to each rclone, by command and outcome",
            ["shard", "command", "outcome"],
        )
        self._cache = _CacheCollector()
        registry.register(self._cache)
        self._pending = _PendingCollector()
        registry.register(self._pending)

    # --- one-line hooks for the code paths ---------------------------------------------

    def request(self, shard: int | None, method: str, status: int) -> None:
        """Count one answered client request."""
        method = method if method in KNOWN_METHODS else "other"
        key = (shard, method, status // 100)
        counts = self._request_counts
        counts[key] = counts.get(key, 0) + 1

    def streamed(self, shard: int | None, count: int, *, spliced: bool) -> None:
        """Count body bytes sent to a client."""
        if count > 0:
            key = (shard, spliced)
            counts = self._streamed_counts
            counts[key] = counts.get(key, 0) + count

    def counter_totals(self) -> CounterTotals:
        """Every counter series of this process with its value (what a worker reports)."""
        self._flush()
        totals: CounterTotals = []
        for name, (made, labels) in self._counters.items():
            for metric in made.collect():
                for sample in metric.samples:
                    if sample.name == f"{name}_total":
                        totals.append(
                            (name, [sample.labels[label] for label in labels], sample.value)
                        )
        return totals

    def add_worker_totals(self, worker: int, totals: CounterTotals) -> None:
        """Take worker ``worker``'s latest totals; added to the counters at the next read."""
        self._worker_reports[worker] = totals

    def worker_ended(self, worker: int) -> None:
        """Worker ``worker`` is gone: once its last report is added, forget it."""
        self._ended_workers.add(worker)

    def _add_worker_reports(self) -> None:
        for worker, totals in self._worker_reports.items():
            applied = self._worker_applied.setdefault(worker, {})
            for name, labels, value in totals:
                key = (name, tuple(labels))
                new = value - applied.get(key, 0.0)
                if new > 0 and name in self._counters:
                    self._counters[name][0].labels(*labels).inc(new)
                    applied[key] = value
        self._worker_reports.clear()
        for worker in self._ended_workers:
            self._worker_applied.pop(worker, None)
        self._ended_workers.clear()

    def _flush(self) -> None:
        """Add what request(), streamed() and listing() counted to their counters."""
        self._add_worker_reports()
        for (shard, method, hundreds), count in self._request_counts.items():
            status = status_class(hundreds * 100)
            self.requests.labels(shard_label(shard), method, status).inc(count)
        self._request_counts.clear()
        for (shard, spliced), count in self._streamed_counts.items():
            path = "spliced" if spliced else "copied"
            self.bytes_streamed.labels(shard_label(shard), path).inc(count)
        self._streamed_counts.clear()
        for (shard, kept), count in self._listing_counts.items():
            outcome = "kept" if kept else "dropped"
            self.listing_entries.labels(shard_label(shard), outcome).inc(count)
        self._listing_counts.clear()

    def upstream_error(self, shard: int | None, kind: str) -> None:
        """Count one failure of NzbDav (``kind`` from UPSTREAM_ERROR_KINDS)."""
        self.upstream_errors.labels(shard_label(shard), kind).inc()

    def client_abort(self, shard: int | None) -> None:
        """Count one client that hung up mid-reply."""
        self.client_aborts.labels(shard_label(shard)).inc()

    def listing(self, shard: int | None, kept: int, dropped: int) -> None:
        """Count the entries one filtered listing kept and dropped."""
        counts = self._listing_counts
        if kept:
            counts[shard, True] = counts.get((shard, True), 0) + kept
        if dropped:
            counts[shard, False] = counts.get((shard, False), 0) + dropped

    def fallback_read(self, shard: int) -> None:
        """Count one read of shard ``shard``'s file through the pass-through tree."""
        self.fallback_reads.labels(str(shard)).inc()

    def rc_call(self, command_label: str, status: int) -> None:
        """Count one RC call received by the HTTP status it was answered with.

        ``command_label`` is ``rc.calls.command_label(command)``: what a caller typed
        outside the allow-list must not become a label of its own.
        """
        self.rc_calls.labels(command_label, RC_OUTCOMES.get(status, "error")).inc()

    def rc_forward(self, rclone_label: str, command: str, ok: bool) -> None:
        """Count one RC call sent to an rclone (``Target.label``)."""
        self.rc_forwarded.labels(rclone_label, command, "ok" if ok else "failed").inc()

    # --- gauges read at scrape time ------------------------------------------------------

    def watch_caches(self, read: Callable[[], Mapping[int, CacheStats]]) -> None:
        """Export each shard's cache as ``read()`` returns it at scrape time."""
        self._cache.read = read

    def watch_pending(self, read: Callable[[], PendingSummary]) -> None:
        """Export the waiting RC deliveries as ``read()`` returns them at scrape time."""
        self._pending.read = read

    def exposition(self) -> bytes:
        """The registry in Prometheus text format."""
        return generate_latest(self.registry)

    def value(self, name: str, **labels: str) -> float:
        """One sample's current value (0 when never counted): for the status page and tests."""
        found = self.registry.get_sample_value(name, labels)
        return 0.0 if found is None else found

    def total(self, name: str, **labels: str) -> float:
        """The sum of every sample of ``name`` whose labels include ``labels``."""
        return sum(
            sample.value
            for metric in self.registry.collect()
            for sample in metric.samples
            if sample.name == name and labels.items() <= sample.labels.items()
        )


def cache_families(caches: Mapping[int, CacheStats]) -> list[Metric]:
    """The cache gauges for a set of polled shards."""
    up = GaugeMetricFamily(
        "shardproxy_rclone_up", "1 when the shard's rclone answered its last poll", labels=["shard"]
    )
    used = GaugeMetricFamily(
        "shardproxy_cache_bytes_used", "vfs/stats diskCache.bytesUsed", labels=["shard"]
    )
    files = GaugeMetricFamily(
        "shardproxy_cache_files", "vfs/stats diskCache.files", labels=["shard"]
    )
    full = GaugeMetricFamily(
        "shardproxy_cache_out_of_space", "diskCache.outOfSpace (1: full)", labels=["shard"]
    )
    max_size = GaugeMetricFamily(
        "shardproxy_cache_max_bytes", "the rclone's --vfs-cache-max-size", labels=["shard"]
    )
    disk = GaugeMetricFamily(
        "shardproxy_cache_disk_bytes", "size of the disk holding the cache", labels=["shard"]
    )
    disk_free = GaugeMetricFamily(
        "shardproxy_cache_disk_free_bytes", "free space on the cache disk", labels=["shard"]
    )
    for shard, stats in sorted(caches.items()):
        label = [str(shard)]
        up.add_metric(label, 1.0 if stats.up else 0.0)
        if not stats.up:
            continue  # no figures is honest; stale ones would look current
        used.add_metric(label, stats.bytes_used)
        files.add_metric(label, stats.files)
        full.add_metric(label, 1.0 if stats.out_of_space else 0.0)
        if stats.max_size is not None:
            max_size.add_metric(label, stats.max_size)
        if stats.disk_size is not None:
            disk.add_metric(label, stats.disk_size)
        if stats.disk_free is not None:
            disk_free.add_metric(label, stats.disk_free)
    return [up, used, files, full, max_size, disk, disk_free]


class _FlushFirst(Collector):
    """Runs ``flush`` whenever the registry is collected, before the counters are."""

    def __init__(self, flush: Callable[[], None]) -> None:
        self.flush = flush

    def collect(self) -> Iterable[Metric]:
        self.flush()
        return []


class _CacheCollector(Collector):
    def __init__(self) -> None:
        self.read: Callable[[], Mapping[int, CacheStats]] = dict

    def collect(self) -> Iterable[Metric]:
        return cache_families(self.read())


class _PendingCollector(Collector):
    def __init__(self) -> None:
        self.read: Callable[[], PendingSummary] = lambda: PendingSummary(0, 0.0)

    def collect(self) -> Iterable[Metric]:
        summary = self.read()
        count = GaugeMetricFamily(
            "shardproxy_rc_pending_deliveries",
            "RC paths an rclone has not confirmed yet, waiting for a retry, per rclone",
            labels=["shard"],
        )
        for rclone, waiting in sorted(summary.by_rclone.items()):
            count.add_metric([rclone], waiting)
        age = GaugeMetricFamily(
            "shardproxy_rc_pending_oldest_age_seconds",
            "seconds since the oldest waiting RC delivery first failed",
            value=summary.oldest_age,
        )
        return [count, age]
