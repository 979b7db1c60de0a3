"""How long WebDAV stalls while the RC endpoint takes one huge vfs/forget.

    .venv/bin/python -m loadtest.rc_stall

Starts the NzbDav stand-in and ``shardproxy serve`` with its RC endpoint and four shard
RC URLs nobody answers (rclones that are down), then probes a small WebDAV GET through
the proxy back to back: first alone (the baseline), then while one ``vfs/forget`` with
as many distinct ``.ids`` folders as fit in the 8 MiB request limit is answered. It
prints the probe latencies of both phases, their ratio, how long the forget took, and
how many lines the proxy logged for it. Bounded: the whole run takes well under a
minute on an idle machine.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import orjson

from loadtest.peers import REPO, Server
from shardproxy.tools.ports import free_port

BODY_LIMIT = 8 << 20
BASELINE_SECONDS = 3.0
HEX = "0123456789abcdef"


def huge_forget() -> bytes:
    """A JSON body of distinct five-level folders, as many as fit in 8 MiB."""
    params: dict[str, str] = {}
    size = 2
    n = 0
    while True:
        n += 1
        folder = ".ids/" + "/".join(HEX[(n >> (4 * level)) & 15] for level in range(5))
        key = "dir" if n == 1 else f"dir{n}"
        entry = len(key) + len(folder) + 6
        if size + entry > BODY_LIMIT or n > 16**5:
            return orjson.dumps(params)
        params[key] = folder
        size += entry


async def probe(session: aiohttp.ClientSession, url: str, stop: asyncio.Event) -> list[float]:
    """GET ``url`` back to back until ``stop``; the latency of each, in seconds."""
    latencies = []
    while not stop.is_set():
        started = time.perf_counter()
        async with session.get(url) as reply:
            await reply.read()
            if reply.status != 200:
                raise RuntimeError(f"probe {url}: status {reply.status}")
        latencies.append(time.perf_counter() - started)
    return latencies


def summary(latencies: list[float]) -> str:
    ms = sorted(x * 1000 for x in latencies)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    return (
        f"{len(ms)} probes, median {statistics.median(ms):.1f} ms, p99 {p99:.1f} ms, "
        f"max {ms[-1]:.1f} ms"
    )


async def measure(
    proxy_port: int, rc_port: int, body: bytes
) -> tuple[list[float], list[float], float]:
    url = f"http://127.0.0.1:{proxy_port}/README"
    async with aiohttp.ClientSession() as session:
        stop = asyncio.Event()
        task = asyncio.ensure_future(probe(session, url, stop))
        await asyncio.sleep(BASELINE_SECONDS)
        stop.set()
        baseline = await task
        stop = asyncio.Event()
        task = asyncio.ensure_future(probe(session, url, stop))
        started = time.perf_counter()
        async with session.post(
            f"http://127.0.0.1:{rc_port}/vfs/forget",
            data=body,
            headers={"Content-Type": "application/json"},
            timeout=aiohttp.ClientTimeout(total=600),
        ) as reply:
            await reply.read()
            if reply.status != 200:
                raise RuntimeError(f"vfs/forget: status {reply.status}")
        took = time.perf_counter() - started
        stop.set()
        during = await task
    return baseline, during, took


def main() -> int:
    """Run the measurement and print it."""
    work = Path(tempfile.mkdtemp(prefix="shardproxy-rc-stall-"))
    body = huge_forget()
    paths = body.count(b'":"')
    env = {"PYTHONPATH": str(REPO)}
    backend_port, proxy_port, rc_port = free_port(), free_port(), free_port()
    standin = Server(
        "standin",
        backend_port,
        [
            sys.executable,
            "-m",
            "nzbdav_standin",
            "--no-auth",
            "--listen",
            f"127.0.0.1:{backend_port}",
        ],
        None,
        "/README",
        env,
    )
    argv = [
        sys.executable,
        "-m",
        "shardproxy.cli",
        "serve",
        "--backend",
        f"http://127.0.0.1:{backend_port}",
    ]
    argv += ["--listen", f"127.0.0.1:{proxy_port}", "--rc-listen", f"127.0.0.1:{rc_port}"]
    argv += ["--rc-pending-file", str(work / "pending.sqlite3")]
    for shard in range(4):
        argv += ["--shard-rc", f"{shard}=http://127.0.0.1:{free_port()}"]
    proxy = Server("shardproxy", proxy_port, argv, None, "/README", env)
    try:
        standin.start(work)
        standin.wait_ready(work)
        proxy.start(work)
        proxy.wait_ready(work)
        log_before = len((work / "shardproxy.log").read_text().splitlines())
        baseline, during, took = asyncio.run(measure(proxy_port, rc_port, body))
        log_lines = len((work / "shardproxy.log").read_text().splitlines()) - log_before
    finally:
        proxy.stop()
        standin.stop()
    print(f"vfs/forget of {paths} paths ({len(body) / 2**20:.1f} MiB), every shard rclone down")
    print(f"  the call took {took:.1f} s; the proxy logged {log_lines} line(s) for it")
    print(f"  WebDAV probes alone:       {summary(baseline)}")
    print(f"  WebDAV probes during call: {summary(during)}")
    median_ratio = statistics.median(during) / statistics.median(baseline)
    print(
        f"  worst probe during / worst alone: {max(during) / max(baseline):.1f}x; "
        f"median during / median alone: {median_ratio:.1f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
