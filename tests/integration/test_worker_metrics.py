"""With several workers, /metrics and the status page count every process's requests."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import aiohttp
from aiohttp.test_utils import TestServer

from nzbdav_standin import Library, make_standin_app
from shardproxy.tools.ports import free_port
from tests.helpers.cli import SHARDPROXY
from tests.helpers.processes import listening_pids, running

REQUESTS = 120


def requests_counted(exposition: str, shard: str, method: str) -> float:
    """The sum of shardproxy_requests_total over status classes for one shard and method."""
    pattern = re.compile(r"^shardproxy_requests_total\{([^}]*)\} ([0-9.e+]+)$", re.MULTILINE)
    total = 0.0
    for labels, value in pattern.findall(exposition):
        if f'shard="{shard}"' in labels and f'method="{method}"' in labels:
            total += float(value)
    return total


async def test_metrics_add_up_the_requests_of_every_worker(tmp_path: Path) -> None:
    library = Library.sample(n_ids=8, seed=3)
    backend = TestServer(make_standin_app(library, user=None, password=None))
    await backend.start_server()
    port, admin_port = free_port(), free_port()
    argv = [
        *SHARDPROXY,
        "serve",
        "--backend",
        str(backend.make_url("/").origin()),
        "--listen",
        f"127.0.0.1:{port}",
        "--admin-listen",
        f"127.0.0.1:{admin_port}",
        "--workers",
        "3",
    ]
    try:
        async with running(argv, port=port, log=tmp_path / "serve.log"):
            # Every process must be listening, or the first one would take every request.
            for _ in range(300):
                if len(listening_pids(port)) == 3:
                    break
                await asyncio.sleep(0.1)
            assert len(listening_pids(port)) == 3
            # A new connection per request lets the kernel spread them over the workers.
            connector = aiohttp.TCPConnector(force_close=True)
            async with aiohttp.ClientSession(connector=connector) as client:
                for _ in range(REQUESTS):
                    async with client.request(
                        "PROPFIND", f"http://127.0.0.1:{port}/.ids-s3/", headers={"Depth": "1"}
                    ) as reply:
                        await reply.read()
                        assert reply.status == 207
                counted = 0.0
                deadline = time.monotonic() + 20
                while time.monotonic() < deadline:
                    async with client.get(f"http://127.0.0.1:{admin_port}/metrics") as scrape:
                        counted = requests_counted(await scrape.text(), "3", "PROPFIND")
                    if counted >= REQUESTS:
                        break
                    await asyncio.sleep(0.2)
                async with client.get(f"http://127.0.0.1:{admin_port}/status.json") as status:
                    page = await status.json()
    finally:
        await backend.close()
    assert counted == REQUESTS
    shard3 = next(row for row in page["shards"] if row["shard"] == 3)
    assert shard3["requests"] == REQUESTS
