"""The status model: what the status page, ``/status.json`` and ``/readyz`` say, from values.

No I/O here: the admin listener polls the rclones and NzbDav and hands the results in;
this module decides what state each shard is in and what the page shows.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from shardproxy.telemetry.metrics import CacheStats, Metrics, PendingSummary

# A shard whose files were read through the pass-through tree this recently is shown as
# "serving through fallback": its mount failed those reads and mergerfs moved on.
FALLBACK_WINDOW_SECONDS = 300.0
STATE_UP = "up"
STATE_DOWN = "down"
STATE_FALLBACK = "fallback"
STATE_UNKNOWN = "unknown"


@dataclass(frozen=True)
class ShardInfo:
    """One shard as configured: its number, view, first characters and rclone."""

    number: int
    prefixes: str
    rclone: str | None  # where its RC listens (no credentials), None when not configured

    @property
    def view(self) -> str:
        """The shard's view root, ``/.ids-s<N>``."""
        return f"/.ids-s{self.number}"


@dataclass(frozen=True)
class BackendState:
    """Whether NzbDav answered the last probe, and what it said or why it did not."""

    up: bool | None  # None before the first probe
    detail: str = ""


def parse_vfs_stats(body: Mapping[str, Any]) -> CacheStats:
    """A shard's cache figures from rclone's ``vfs/stats`` reply (missing keys count as 0)."""
    disk = body.get("diskCache")
    disk = disk if isinstance(disk, Mapping) else {}
    opt = body.get("opt")
    opt = opt if isinstance(opt, Mapping) else {}
    max_size = opt.get("CacheMaxSize")
    return CacheStats(
        up=True,
        bytes_used=_count(disk.get("bytesUsed")),
        files=_count(disk.get("files")),
        out_of_space=disk.get("outOfSpace") is True,
        # rclone says -1 (or nothing) for "no limit".
        max_size=max_size if isinstance(max_size, int) and max_size > 0 else None,
    )


def cache_path(body: Mapping[str, Any]) -> str | None:
    """The cache directory a ``vfs/stats`` reply names, if any."""
    disk = body.get("diskCache")
    path = disk.get("path") if isinstance(disk, Mapping) else None
    return path if isinstance(path, str) and path else None


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


class FallbackWindow:
    """Remembers a shard's fallback-read counter over time to tell recent reads apart."""

    def __init__(self, window: float = FALLBACK_WINDOW_SECONDS) -> None:
        self.window = window
        self._samples: deque[tuple[float, float]] = deque()

    def observe(self, now: float, count: float) -> None:
        """Record the counter's value at ``now``."""
        self._samples.append((now, count))
        # Keep one sample at or before the window's start, as the baseline.
        while len(self._samples) > 1 and self._samples[1][0] <= now - self.window:
            self._samples.popleft()

    def recent(self) -> int:
        """Fallback reads counted within the window (as far as the samples reach)."""
        if not self._samples:
            return 0
        return int(self._samples[-1][1] - self._samples[0][1])


def shard_state(cache: CacheStats | None, recent_fallback_reads: int) -> str:
    """up, down, fallback (its files are read through the rest mount) or unknown."""
    if recent_fallback_reads > 0:
        return STATE_FALLBACK
    if cache is None:
        return STATE_UNKNOWN
    return STATE_UP if cache.up else STATE_DOWN


def _shard_detail(cache: CacheStats | None, recent_fallback_reads: int) -> str:
    parts = []
    if cache is None:
        parts.append("no RC URL configured for its rclone (shard_rc): state unknown")
    elif not cache.up:
        parts.append(f"rclone not answering: {cache.error}" if cache.error else "rclone down")
    if recent_fallback_reads:
        parts.append(
            f"{recent_fallback_reads} of its file reads came through /.ids/ in the last "
            f"{FALLBACK_WINDOW_SECONDS / 60:g} minutes (its mount failed them)"
        )
    return "; ".join(parts)


def _cache_view(cache: CacheStats | None) -> dict[str, Any] | None:
    if cache is None or not cache.up:
        return None
    return {
        "bytes_used": cache.bytes_used,
        "files": cache.files,
        "out_of_space": cache.out_of_space,
        "max_size": cache.max_size,
        "disk_size": cache.disk_size,
        "disk_free": cache.disk_free,
    }


def _traffic(metrics: Metrics, shard: str) -> dict[str, float]:
    return {
        "requests": metrics.total("shardproxy_requests_total", shard=shard),
        "bytes": metrics.total("shardproxy_bytes_streamed_total", shard=shard),
        "errors": (
            metrics.total("shardproxy_requests_total", shard=shard, status_class="5xx")
            + metrics.total("shardproxy_upstream_errors_total", shard=shard)
        ),
        "client_aborts": metrics.total("shardproxy_client_aborts_total", shard=shard),
    }


def status_document(
    *,
    shards: Sequence[ShardInfo],
    caches: Mapping[int, CacheStats],
    fallback_recent: Mapping[int, int],
    backend_url: str,
    backend: BackendState,
    pending: PendingSummary | None,
    failing_rclones: Mapping[str, str],
    metrics: Metrics,
    version: str,
    refresh_seconds: float,
) -> dict[str, Any]:
    """Everything the status page shows, as one JSON-able document."""
    rows = []
    for shard in shards:
        cache = caches.get(shard.number) if shard.rclone is not None else None
        recent = fallback_recent.get(shard.number, 0)
        label = str(shard.number)
        rows.append(
            {
                "shard": shard.number,
                "view": shard.view,
                "prefixes": shard.prefixes,
                "rclone": shard.rclone,
                "state": shard_state(cache, recent),
                "detail": _shard_detail(cache, recent),
                "cache": _cache_view(cache),
                "fallback_reads": metrics.total("shardproxy_fallback_reads_total", shard=label),
                "pending": pending.by_rclone.get(label, 0) if pending else None,
                **_traffic(metrics, label),
            }
        )
    return {
        "version": version,
        "refresh_seconds": refresh_seconds,
        "nzbdav": {"url": backend_url, "up": backend.up, "detail": backend.detail},
        "rc": None
        if pending is None
        else {
            "pending": pending.count,
            "oldest_age": pending.oldest_age,
            "failing": dict(failing_rclones),
        },
        "passthrough": _traffic(metrics, "none"),
        "shards": rows,
    }


def readiness_problems(backend: BackendState, rclones: Mapping[str, str | None]) -> list[str]:
    """What keeps the proxy from being ready: NzbDav down, rclones that did not answer.

    ``rclones`` maps a name ("shard 0 rclone at 127.0.0.1:5570") to None when it answered
    ``rc/noop``, or to the reason it did not.
    """
    problems = []
    if not backend.up:
        problems.append(f"NzbDav does not answer: {backend.detail or 'no probe yet'}")
    problems.extend(
        f"{name} does not answer rc/noop: {why}" for name, why in rclones.items() if why
    )
    return problems


def caches_after_readiness(
    caches: Mapping[int, CacheStats], answers: Mapping[int, str | None]
) -> dict[int, CacheStats]:
    """The shards' states as a readiness check found them, so the page agrees with it.

    ``answers`` maps a shard to None when its rclone answered, or to why it did not. A
    shard found down is shown down at once; one found up again is shown up, with the
    figures of the next poll (none until then). The others keep what the poll found.
    """
    updated = dict(caches)
    for shard, why in answers.items():
        cache = caches.get(shard)
        if why:
            updated[shard] = (
                replace(cache, up=False, error=why) if cache else CacheStats(up=False, error=why)
            )
        elif cache is None or not cache.up:
            updated[shard] = CacheStats(up=True)
    return updated
