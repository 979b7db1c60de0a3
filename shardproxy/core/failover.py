"""Reads of a shard's files that bypass its cache: noticed, counted, reported once a minute.

In the "links unchanged" layout mergerfs searches the shard mounts first and the ``rest``
mount (the proxy's whole root) last. When a shard's rclone is down, its files are still
found through ``rest``, which asks for ``/.ids/<h>/...`` instead of ``/.ids-s<N>/...``:
playback goes on, but every byte now comes from Usenet uncached. Such a read is the only
sign of it the proxy gets, so it is counted per shard (for metrics) and logged, at most
once per shard per interval, with how many reads there were since the last line.

In the "shard links" layout the library's links point into the shard views, so ``rest``
reads the very paths the shard would (``/.ids-s<N>/...``); there only the header the
generated ``rest`` remote sends, ``X-Shardproxy-Mount: rest``, tells such a read apart.
Any client could send that header, and raise the counter and its warning with it, so
it is believed only from the addresses ``mount_header_from`` names (loopback unless set).

Pure: the clock is injected and nothing here does I/O.
"""

from __future__ import annotations

import ipaddress
import re
import time
from collections.abc import Callable, Collection, Mapping

from shardproxy.core.shards import ID_LEVELS, IDS_ROOT, UUID_PATTERN, ShardMap, view_root

# A file in NzbDav's tree as rclone asks for it: five lowercase hex levels, then the UUID.
# Folders, listings and anything percent-encoded are not reads of a file.
_IDS_FILE_RE = re.compile(
    re.escape(IDS_ROOT) + "/([0-9a-f])" + "/[0-9a-f]" * (ID_LEVELS - 1) + "/" + UUID_PATTERN
)
READ_METHODS = frozenset({"GET", "HEAD"})
REPORT_INTERVAL = 60.0
# rclone.conf's `headers = X-Shardproxy-Mount,rest` on the fail-over remote sends this.
MOUNT_HEADER = "X-Shardproxy-Mount"
FALLBACK_MOUNT = "rest"


def is_fallback_mount(mount_header: str | None) -> bool:
    """True when a request says it comes from the fail-over (``rest``) mount."""
    return mount_header is not None and mount_header.strip().lower() == FALLBACK_MOUNT


# Where the rest mount's rclone runs unless mount_header_from says otherwise.
LOOPBACK_NETWORKS: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = (
    ipaddress.ip_network("127.0.0.0/8"),
    ipaddress.ip_network("::1/128"),
)


def trusts_mount_header(
    remote: str | None,
    networks: Collection[ipaddress.IPv4Network | ipaddress.IPv6Network],
) -> bool:
    """True when a client at ``remote`` may say which mount it is (``mount_header_from``)."""
    if not remote:
        return False
    try:
        address = ipaddress.ip_address(remote.partition("%")[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # a dual-stack listener sees IPv4 clients this way
    return any(address in network for network in networks)


def fallback_read_shard(method: str, backend_path: str, shard_map: ShardMap) -> int | None:
    """The shard whose file a GET/HEAD of ``/.ids/...`` (as sent to NzbDav) reads, or None.

    The caller decides whether the read bypassed the shard: always for a request that
    named ``/.ids/`` itself, only with the ``rest`` mount's header for a shard view's.
    """
    if method not in READ_METHODS:
        return None
    found = _IDS_FILE_RE.fullmatch(backend_path)
    if found is None:
        return None
    return shard_map.shard_of(found.group(1))


class FallbackReads:
    """Per-shard count of reads that bypassed the shard's cache, and when to say so."""

    def __init__(
        self,
        shard_count: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        interval: float = REPORT_INTERVAL,
    ) -> None:
        self.clock = clock
        self.interval = interval
        self._counts = dict.fromkeys(range(shard_count), 0)
        self._unreported = dict.fromkeys(range(shard_count), 0)
        self._last_report: dict[int, float] = {}

    @property
    def counts(self) -> Mapping[int, int]:
        """Reads per shard since start (every shard listed, 0 when none): a counter."""
        return self._counts

    def record(self, shard: int) -> str | None:
        """Count one read of ``shard``'s files; the log line when one is due, else None.

        The first read of a shard is reported at once; later ones at most once per
        ``interval``, with the number of reads since the previous line.
        """
        self._counts[shard] = self._counts.get(shard, 0) + 1
        self._unreported[shard] = self._unreported.get(shard, 0) + 1
        now = self.clock()
        last = self._last_report.get(shard)
        if last is not None and now - last < self.interval:
            return None
        reads = self._unreported[shard]
        self._unreported[shard] = 0
        self._last_report[shard] = now
        since = "" if last is None else f" in the last {now - last:.0f} s"
        return (
            f"shard {shard}'s files are being read without its cache: {reads} read(s) "
            f"through the rest mount{since}, served uncached ({self._counts[shard]} in all); "
            f"is shard {shard}'s rclone ({view_root(shard)}) running?"
        )
