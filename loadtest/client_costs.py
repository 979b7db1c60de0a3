"""Figures of what one client costs: a sequential walk, and unfinished request heads.

``walk``: rclone looks paths up one PROPFIND at a time on one connection, so a Plex
scan feels the latency of each request, not the throughput of many.

``heads``: hundreds of connections that never finish their request head must cost the
proxy kilobytes each and be dropped, not held.
"""

from __future__ import annotations

import errno
import select
import socket
import time
from collections.abc import Callable

from loadtest import clients, peers, procstat
from loadtest.figures import (
    BASELINE,
    HAPROXY,
    NGINX,
    PASS_THROUGH,
    SERVER_POOL,
    SHARDPROXY,
    Bench,
    MiB,
)
from loadtest.report import Column, Table

WALK_REQUESTS = 1000
HEAD_CONNECTIONS = 500
HEAD_BLOCK = 1 << 20
# What shardproxy is started with in the benchmark (its defaults).
HEADER_TIMEOUT = 20.0


def walk(bench: Bench) -> Table:
    """One connection, Depth-1 PROPFINDs one after another, alternating two folders."""
    folders = [peers.LISTED_FOLDER + "/", peers.FILE_FOLDER + "/"]
    table = Table(
        f"Sequential walk: {WALK_REQUESTS} Depth-1 PROPFINDs on one connection",
        f"One client, one keep-alive connection, each PROPFIND sent when the last reply is "
        f"read, alternating `{folders[0]}` and `{folders[1]}` (shard views for shardproxy "
        f"and '{BASELINE}'; '{PASS_THROUGH}' asks the same proxy for the plain folders, "
        f"unfiltered, as '{SERVER_POOL}' does: the floor of shardproxy's stack); "
        f"{bench.plan.rounds} rounds. This is how rclone walks a folder tree.",
        [Column("seconds", "seconds", 2), Column("µs/request", "us", 0)],
        ratio_of=SHARDPROXY,
        ratio_keys=("seconds",),
    )
    shardproxy = bench.proxies[SHARDPROXY]
    walkers = [
        (NGINX, bench.proxies[NGINX], folders),
        (HAPROXY, bench.proxies[HAPROXY], folders),
        (SERVER_POOL, bench.proxies[SERVER_POOL], folders),
        (BASELINE, bench.proxies[BASELINE], [peers.shard_path(f) for f in folders]),
        (PASS_THROUGH, shardproxy, folders),
        (SHARDPROXY, shardproxy, [peers.shard_path(f) for f in folders]),
    ]
    for round_no in range(bench.plan.rounds):
        turn = round_no % len(walkers)
        for label, proxy, paths in walkers[turn:] + walkers[:turn]:
            connection = clients.Connection(proxy.server.port)
            try:
                started = time.perf_counter()
                for n in range(WALK_REQUESTS):
                    reply = connection.request("PROPFIND", paths[n % 2], {"Depth": "1"})
                    if reply.status != 207:
                        raise clients.BadReply(f"{label}: PROPFIND gave {reply.status}")
                seconds = time.perf_counter() - started
            finally:
                connection.close()
            table.record(label, "seconds", seconds)
            table.record(label, "us", seconds / WALK_REQUESTS * 1e6)
    return table


def heads(bench: Bench) -> Table:
    """Connections that send a huge head, or a slow one, and never finish it."""
    proxy = bench.proxies[SHARDPROXY]
    table = Table(
        f"{HEAD_CONNECTIONS} connections that never finish their request head",
        f"shardproxy only (the others are not at issue). 'huge': each connection tries to "
        f"send a {HEAD_BLOCK // MiB} MiB header block; 'slow': each sends 8 KiB of head and "
        f"then nothing; then 'huge' once more. RSS of the proxy before, at its peak while "
        f"they are open, and 2 s after the last was dropped; 'dropped' is how many the "
        f"proxy closed itself, 'last drop s' when the last went (header_timeout is "
        f"{HEADER_TIMEOUT:g} s).",
        [
            Column("RSS before MiB", "before", 1),
            Column("peak MiB", "peak", 1),
            Column("growth MiB", "growth", 1),
            Column("after MiB", "after", 1),
            Column("dropped", "dropped", 0),
            Column("last drop s", "last", 1),
        ],
    )
    pid = proxy.server.pid

    def rss() -> int:
        return procstat.rss_bytes(pid)

    # Huge heads twice: the second shows whether memory comes back or piles up.
    rounds = (("huge", HEAD_BLOCK), ("slow", 8 << 10), ("huge again", HEAD_BLOCK))
    for kind, send_limit in rounds:
        before = rss()
        dropped, last, peak = hold_heads(proxy.server.port, send_limit, rss)
        time.sleep(2)
        label = f"{SHARDPROXY}, {kind} heads"
        table.record(label, "before", before / MiB)
        table.record(label, "peak", peak / MiB)
        table.record(label, "growth", (peak - before) / MiB)
        table.record(label, "after", rss() / MiB)
        table.record(label, "dropped", dropped)
        table.record(label, "last", last)
    return table


def hold_heads(port: int, send_limit: int, rss: Callable[[], int]) -> tuple[int, float, int]:
    """Open the connections, send up to ``send_limit`` bytes of head on each, and wait
    until the proxy drops them all (or the header timeout has long passed).

    Returns how many the proxy dropped, when the last went (s), and the peak RSS.
    """
    line = b"X-Filler: " + b"a" * 1000 + b"\r\n"
    start = b"GET /.ids-s0/0/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    socks: dict[int, socket.socket] = {}
    sent: dict[int, int] = {}
    for _ in range(HEAD_CONNECTIONS):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.setblocking(False)
        socks[sock.fileno()] = sock
        sent[sock.fileno()] = 0
    started = time.perf_counter()
    deadline = started + HEADER_TIMEOUT + 15
    dropped, last, peak = 0, 0.0, int(rss())
    next_sample = started
    try:
        while socks and time.perf_counter() < deadline:
            writable = [fd for fd, n in sent.items() if n < send_limit]
            readable, ready, _ = select.select(list(socks), writable, [], 0.1)
            for fd in ready:
                piece = start if sent[fd] == 0 else line
                try:
                    sent[fd] += socks[fd].send(piece)
                except BlockingIOError:
                    continue
                except OSError as exc:
                    if exc.errno not in (errno.EPIPE, errno.ECONNRESET):
                        raise
                    readable.append(fd)
            for fd in set(readable):
                if fd not in socks:
                    continue
                try:
                    if socks[fd].recv(65536):
                        continue  # the proxy's 408 or 431; its close follows
                except BlockingIOError:
                    continue
                except OSError:
                    pass
                socks.pop(fd).close()
                sent.pop(fd)
                dropped += 1
                last = time.perf_counter() - started
            if time.perf_counter() >= next_sample:
                peak = max(peak, int(rss()))
                next_sample += 0.2
    finally:
        for sock in socks.values():
            sock.close()
    return dropped, last, peak
