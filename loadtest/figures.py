"""The benchmark's figures: each measures every proxy it concerns and returns a table."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from loadtest import clients, peers, procstat
from loadtest.report import Column, Table

MiB = 1 << 20
GiB = 1 << 30

NGINX = "nginx"
HAPROXY = "HAProxy"
HAPROXY_SPLICE = "HAProxy splice"
SHARDPROXY = "shardproxy"
SHARDPROXY_COPY = "shardproxy copy-only"
SHARDPROXY_2W = "shardproxy --workers 2"
PASS_THROUGH = f"{SHARDPROXY} pass-through"
FILTERED = f"{SHARDPROXY} filtered"
BARE_RELAY = "aiohttp relay, no logic"
APP_POOL = "aiohttp app + own pool, no logic"
SERVER_POOL = "aiohttp low-level server + own pool, no logic"
BASELINE = "shardproxy before"
# The designs compared for small requests, cheapest stack last.
DESIGNS = (BARE_RELAY, APP_POOL, SERVER_POOL)

STREAMING = (NGINX, HAPROXY, HAPROXY_SPLICE, SHARDPROXY, SHARDPROXY_COPY)
SMALL = (NGINX, HAPROXY, SHARDPROXY, SHARDPROXY_2W)
SLOW_READERS = (HAPROXY, HAPROXY_SPLICE, SHARDPROXY, SHARDPROXY_COPY)


@dataclass(frozen=True)
class Plan:
    """How long and how often each figure is measured."""

    big_rounds: int
    rounds: int
    ranged_seconds: float
    wrk_seconds: float
    slow_seconds: float
    slow_readers: int
    big_size: int

    @classmethod
    def full(cls) -> Plan:
        return cls(5, 3, 6.0, 6.0, 30.0, 200, GiB)

    @classmethod
    def quick(cls) -> Plan:
        return cls(2, 1, 3.0, 3.0, 8.0, 200, GiB)


@dataclass
class Proxy:
    """A proxy under test and how it names the origin's paths."""

    label: str
    server: peers.Server
    view: Callable[[str], str]


@dataclass
class Bench:
    """Everything a figure needs: the plan, the servers and the file they serve."""

    plan: Plan
    origin: peers.Server
    proxies: dict[str, Proxy]
    source: Path
    work: Path
    load_cpus: str | None
    log: Callable[[str], None] = field(default=print)

    def some(self, labels: tuple[str, ...]) -> list[Proxy]:
        return [self.proxies[label] for label in labels]

    @property
    def big_path(self) -> str:
        return f"{peers.FILE_FOLDER}/{peers.BIG_UUID}"


@dataclass
class Usage:
    """CPU seconds spent while a block ran: by the proxy, the origin, the whole machine."""

    proxy: float = 0.0
    origin: float = 0.0
    machine: float = 0.0


@contextmanager
def metered(bench: Bench, proxy: Proxy) -> Iterator[Usage]:
    usage = Usage()
    before = (
        procstat.cpu_seconds(proxy.server.pid),
        procstat.cpu_seconds(bench.origin.pid),
        procstat.machine_busy_seconds(),
    )
    yield usage
    usage.proxy = procstat.cpu_seconds(proxy.server.pid) - before[0]
    usage.origin = procstat.cpu_seconds(bench.origin.pid) - before[1]
    usage.machine = procstat.machine_busy_seconds() - before[2]


def rotated(items: list[Proxy], by: int) -> list[Proxy]:
    """The proxies in a different order each round, so none always goes first."""
    by %= len(items)
    return items[by:] + items[:by]


STREAM_COLUMNS = [
    Column("MiB/s", "rate", 0),
    Column("proxy CPU s/GiB", "cpu", 3),
    Column("origin CPU s/GiB", "origin", 3),
    Column("machine CPU s/GiB", "machine", 3),
]


def record_stream(table: Table, label: str, usage: Usage, moved: int, seconds: float) -> None:
    gib = moved / GiB
    table.record(label, "rate", moved / seconds / MiB)
    table.record(label, "cpu", usage.proxy / gib)
    table.record(label, "origin", usage.origin / gib)
    table.record(label, "machine", usage.machine / gib)


def big_get(bench: Bench) -> Table:
    """One 1 GiB GET at a time, a new connection each."""
    plan = bench.plan
    size = bench.source.stat().st_size
    table = Table(
        f"{size // MiB} MiB GET, one stream",
        f"{plan.big_rounds} rounds, a new connection each. CPU per GiB delivered, from /proc: "
        "the proxy's (all its processes and threads), the origin's, and the whole machine's "
        "(every process, including the client's copy and kernel work).",
        STREAM_COLUMNS,
        ratio_of=SHARDPROXY,
        ratio_keys=("rate", "cpu"),
    )
    for round_no in range(plan.big_rounds):
        for proxy in rotated(bench.some(STREAMING), round_no):
            with metered(bench, proxy) as usage:
                seconds = clients.whole_get(
                    proxy.server.port, proxy.view(bench.big_path), bench.source
                )
            record_stream(table, proxy.label, usage, size, seconds)
    return table


def ranged(bench: Bench) -> Table:
    """16 keep-alive readers of 128 MiB chunks at random offsets, like rclone's VFS."""
    plan = bench.plan
    chunk, readers = 128 * MiB, 16
    table = Table(
        "Ranged reads like rclone's VFS",
        f"{readers} keep-alive connections at once, each reading {chunk // MiB} MiB chunks at "
        f"random offsets for {plan.ranged_seconds:g} s (reads under way then finish); "
        f"{plan.rounds} rounds. CPU columns as above.",
        [*STREAM_COLUMNS, Column("reads", "n", 0)],
        ratio_of=SHARDPROXY,
        ratio_keys=("rate", "cpu"),
    )
    for round_no in range(plan.rounds):
        for proxy in rotated(bench.some(STREAMING), round_no):
            with metered(bench, proxy) as usage:
                result = clients.ranged_reads(
                    proxy.server.port,
                    proxy.view(bench.big_path),
                    bench.source,
                    chunk=chunk,
                    readers=readers,
                    duration=plan.ranged_seconds,
                )
            if result.errors:
                raise clients.BadReply(f"{proxy.label}: {result.errors[:3]}")
            record_stream(table, proxy.label, usage, result.bytes, result.seconds)
            table.record(proxy.label, "n", result.requests)
    return table


@dataclass
class WrkTarget:
    """A row of a wrk table: which proxy, under which label, at which path."""

    label: str
    proxy: Proxy
    path: str


def wrk_table(
    bench: Bench, *, title: str, note: str, targets: list[WrkTarget], script: Path | None
) -> Table:
    """wrk against each target in turn, rounds interleaved."""
    plan = bench.plan
    table = Table(
        title,
        f"wrk, 1 thread, 32 connections, {plan.wrk_seconds:g} s each; {plan.rounds} rounds. "
        + note,
        [
            Column("requests/s", "rps", 0),
            Column("p50 ms", "p50", 2),
            Column("p99 ms", "p99", 2),
            Column("proxy CPU µs/request", "cpu", 0),
        ],
        ratio_of=targets[-1].label,
        ratio_keys=("rps", "cpu"),
    )
    for round_no in range(plan.rounds):
        shift = round_no % len(targets)
        for target in targets[shift:] + targets[:shift]:
            url = f"http://127.0.0.1:{target.proxy.server.port}{target.path}"
            with metered(bench, target.proxy) as usage:
                result = clients.wrk(
                    url,
                    duration=plan.wrk_seconds,
                    connections=32,
                    script=script,
                    cpus=bench.load_cpus,
                )
            if result.errors:
                raise clients.BadReply(f"{target.label}: {result.errors} failed requests")
            table.record(target.label, "rps", result.requests_per_s)
            table.record(target.label, "p50", result.p50_ms)
            table.record(target.label, "p99", result.p99_ms)
            table.record(target.label, "cpu", usage.proxy / result.requests * 1e6)
    return table


DESIGN_NOTE = (
    f"'{BASELINE}' is shardproxy at the commit before its own backend pool and low-level "
    f"server (`--baseline`). The relays with no logic are `loadtest/bare_relay.py`, one "
    f"request upstream per client request, body read whole, nothing checked: "
    f"'{BARE_RELAY}' is an aiohttp app with aiohttp's ClientSession, '{APP_POOL}' the app "
    f"with shardproxy's own pool, '{SERVER_POOL}' aiohttp's low-level server with that "
    "pool; each is that design's ceiling."
)


def small_gets(bench: Bench) -> Table:
    path = f"{peers.FILE_FOLDER}/{peers.SMALL_UUID}"
    # shardproxy last: the ratios are to it.
    labels = (NGINX, HAPROXY, *DESIGNS, BASELINE, SHARDPROXY_2W, SHARDPROXY)
    return wrk_table(
        bench,
        title=f"Small GETs ({peers.SMALL_SIZE / 1000:g} KB file)",
        note=DESIGN_NOTE,
        targets=[WrkTarget(x, bench.proxies[x], bench.proxies[x].view(path)) for x in labels],
        script=None,
    )


def propfinds(bench: Bench) -> Table:
    folder = peers.LISTED_FOLDER + "/"
    shardproxy = bench.proxies[SHARDPROXY]
    return wrk_table(
        bench,
        title="Depth-1 PROPFIND of a folder with 16 sub-folders (NzbDav-style body)",
        note=f"'{FILTERED}' is `{peers.shard_path(folder)}` (shard filter and href "
        f"rewriting); '{PASS_THROUGH}' is `{folder}`, the same listing through the same "
        f"proxy, unfiltered; '{BASELINE}' filters `{peers.shard_path(folder)}` too; nginx, "
        f"HAProxy and the relays with no logic pass `{folder}` through. " + DESIGN_NOTE,
        targets=[
            WrkTarget(NGINX, bench.proxies[NGINX], folder),
            WrkTarget(HAPROXY, bench.proxies[HAPROXY], folder),
            *[WrkTarget(x, bench.proxies[x], folder) for x in DESIGNS],
            WrkTarget(BASELINE, bench.proxies[BASELINE], peers.shard_path(folder)),
            WrkTarget(PASS_THROUGH, shardproxy, folder),
            WrkTarget(FILTERED, shardproxy, peers.shard_path(folder)),
        ],
        script=clients.propfind_script(bench.work),
    )


def slow_readers(bench: Bench) -> Table:
    """Resident memory while many clients read the big file slowly."""
    plan = bench.plan
    rate = 256 * 1024
    table = Table(
        f"Memory with {plan.slow_readers} slow readers of the {plan.big_size // MiB} MiB file",
        f"{plan.slow_readers} connections each reading {rate // 1024} KiB/s for "
        f"{plan.slow_seconds:g} s; RSS of all the proxy's processes, sampled every 0.5 s. "
        "'settled' is the sample at a quarter of the time, 'growth' is end minus settled. "
        "'MemAvailable drop' is how much the machine's MemAvailable dropped by the end (socket "
        "buffers and pipes are kernel memory, not RSS; other processes on the machine "
        "move it too).",
        [
            Column("idle MiB", "idle", 1),
            Column("settled MiB", "settled", 1),
            Column("peak MiB", "peak", 1),
            Column("end MiB", "end", 1),
            Column("growth MiB", "growth", 1),
            Column("MemAvailable drop MiB", "kernel", 0),
        ],
    )
    for proxy in bench.some(SLOW_READERS):
        pid = proxy.server.pid
        idle = procstat.rss_bytes(pid)
        available = procstat.memory_available()
        result = clients.slow_readers(
            proxy.server.port,
            proxy.view(bench.big_path),
            count=plan.slow_readers,
            rate=rate,
            duration=plan.slow_seconds,
            sample=functools.partial(procstat.rss_bytes, pid),
            at_end=procstat.memory_available,
        )
        if result.errors:
            raise clients.BadReply(f"{proxy.label}: {result.errors[:3]}")
        values = [rss for _, rss in result.samples]
        settled = next(rss for t, rss in result.samples if t >= plan.slow_seconds / 4)
        table.record(proxy.label, "idle", idle / MiB)
        table.record(proxy.label, "settled", settled / MiB)
        table.record(proxy.label, "peak", max(values) / MiB)
        table.record(proxy.label, "end", values[-1] / MiB)
        table.record(proxy.label, "growth", (values[-1] - settled) / MiB)
        table.record(proxy.label, "kernel", (available - result.at_end) / MiB)
        # Let the proxy see the hang-ups before the next one starts.
        time.sleep(1)
    return table


FIGURES: dict[str, Callable[[Bench], Table]] = {
    "big": big_get,
    "ranged": ranged,
    "small": small_gets,
    "propfind": propfinds,
    "memory": slow_readers,
}
