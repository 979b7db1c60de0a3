"""Reads of a shard's files through ``/.ids/`` (the rest mount), not the shard's view.

Unit tests feed ``FallbackReads`` a fake clock; the rest sends real requests (and a real
rclone) through the proxy in front of the NzbDav stand-in and reads the app's counter.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from yarl import URL

from nzbdav_standin import Library, expected_bytes, make_standin_app
from shardproxy.app import make_proxy_server
from shardproxy.fallback import FallbackReads, fallback_read_shard
from shardproxy.listener import ProxyServer
from shardproxy.server import start_site
from shardproxy.shards import ShardMap
from tests.helpers.proxies import basic_auth, proxy_settings
from tests.helpers.rclone_procs import debian_rclone

SHARD_MAP = ShardMap.even(4)
UUID9 = "961b00d8-0f1e-4c52-9b0e-d0a7a3a2b1c4"
FILE9 = f"/.ids/9/6/1/b/0/{UUID9}"
SIZE = 300_000
AUTH = basic_auth("admin", "secret")
LINE = "shard 2's files are being read without its cache"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# --- which requests are fallback reads ------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_a_read_of_an_ids_file_belongs_to_the_shard_of_its_first_level(method: str) -> None:
    assert fallback_read_shard(method, FILE9, SHARD_MAP) == 2


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PROPFIND", FILE9),  # a listing or stat, not a read
        ("GET", "/.ids/9/6/1/b/0/"),  # a folder
        ("GET", "/.ids/9/6/1/b/0"),
        ("GET", "/.ids/"),
        ("GET", f"/.ids-s2/9/6/1/b/0/{UUID9}"),  # through the shard, cached
        ("GET", "/content/movies/film.mkv"),  # not sharded at all
        ("PUT", FILE9),
    ],
)
def test_other_requests_are_not_fallback_reads(method: str, path: str) -> None:
    assert fallback_read_shard(method, path, SHARD_MAP) is None


# --- counting and reporting -----------------------------------------------------------------


def test_the_first_read_of_a_shard_is_reported_at_once() -> None:
    reads = FallbackReads(4, clock=FakeClock())
    line = reads.record(2)
    assert line is not None
    assert line.startswith(LINE)
    assert "1 read(s) through /.ids/ instead of /.ids-s2/" in line


def test_reads_within_the_interval_are_counted_but_not_reported() -> None:
    clock = FakeClock()
    reads = FallbackReads(4, clock=clock)
    reads.record(2)
    clock.now += 59.0
    assert [reads.record(2) for _ in range(5)] == [None] * 5
    assert reads.counts[2] == 6


def test_the_next_line_after_the_interval_counts_the_reads_since_the_last() -> None:
    clock = FakeClock()
    reads = FallbackReads(4, clock=clock)
    reads.record(2)
    for _ in range(4):
        reads.record(2)
    clock.now += 61.0
    line = reads.record(2)
    assert line is not None
    assert "5 read(s) through /.ids/ instead of /.ids-s2/ in the last 61 s" in line
    assert "(6 in all)" in line


def test_each_shard_is_reported_on_its_own() -> None:
    reads = FallbackReads(4, clock=FakeClock())
    assert reads.record(2) is not None
    line = reads.record(0)
    assert line is not None and line.startswith("shard 0's files")
    assert reads.record(2) is None


def test_counts_list_every_shard_from_zero() -> None:
    reads = FallbackReads(4, clock=FakeClock())
    reads.record(3)
    assert dict(reads.counts) == {0: 0, 1: 0, 2: 0, 3: 1}


# --- through the running proxy ------------------------------------------------------------


@dataclass
class Running:
    server: ProxyServer
    url: URL
    client: aiohttp.ClientSession

    @property
    def counts(self) -> dict[int, int]:
        assert self.server.fallback_reads is not None
        return dict(self.server.fallback_reads.counts)


@pytest.fixture
async def running() -> AsyncIterator[Running]:
    library = Library.sample(n_ids=8, seed=11)
    library.add(FILE9, SIZE)
    backend = TestServer(make_standin_app(library))
    await backend.start_server()
    settings = proxy_settings(backend.make_url("/").origin())
    server = make_proxy_server(settings)
    runner = await start_site(server, settings.listen, reuse_port=False)
    host, port = runner.addresses[0][:2]
    try:
        async with aiohttp.ClientSession(headers=AUTH) as client:
            yield Running(server, URL(f"http://{host}:{port}"), client)
    finally:
        await runner.cleanup()
        await backend.close()


async def test_a_get_through_ids_is_served_counted_and_logged(
    running: Running, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="shardproxy.proxy")
    async with running.client.get(running.url.with_path(FILE9)) as response:
        assert response.status == 200
        assert await response.read() == expected_bytes(FILE9, SIZE, 0, SIZE - 1)
    assert running.counts == {0: 0, 1: 0, 2: 1, 3: 0}
    assert [r.getMessage() for r in caplog.records if LINE in r.getMessage()]


async def test_a_head_through_ids_is_counted(running: Running) -> None:
    async with running.client.head(running.url.with_path(FILE9)) as response:
        assert response.status == 200
    assert running.counts[2] == 1


async def test_reads_through_the_shard_view_and_listings_are_not_counted(
    running: Running, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="shardproxy.proxy")
    async with running.client.get(running.url.with_path(f"/.ids-s2{FILE9[5:]}")) as response:
        assert response.status == 200
        await response.read()
    propfind = running.client.request(
        "PROPFIND", running.url.with_path(FILE9), headers={"Depth": "0"}
    )
    async with propfind as response:
        assert response.status == 207
    async with running.client.get(running.url.with_path("/.ids/9/6/1/b/0/")) as response:
        await response.read()
    assert running.counts == {0: 0, 1: 0, 2: 0, 3: 0}
    assert not [r for r in caplog.records if "without its cache" in r.getMessage()]


async def test_a_real_rclone_reading_the_proxy_root_is_counted(running: Running) -> None:
    """What the rest mount does when a shard is down: rclone asks for /.ids/... itself."""
    binary = debian_rclone()
    if binary is None:
        pytest.skip("rclone is not installed (apt-get install rclone gives 1.60.1)")
    remote = f":webdav,url='{running.url}',vendor=other,user=admin,pass='{obscure('secret')}':"
    process = await asyncio.create_subprocess_exec(
        binary,
        "cat",
        "--config",
        "/dev/null",
        remote + FILE9.lstrip("/"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    assert out == expected_bytes(FILE9, SIZE, 0, SIZE - 1)
    assert running.counts[2] >= 1
    assert running.counts[0] == running.counts[1] == running.counts[3] == 0


def obscure(password: str) -> str:
    """rclone's reversible obscuring of a password, as ``rclone obscure`` prints it."""
    binary = debian_rclone()
    assert binary is not None
    done = subprocess.run([binary, "obscure", password], capture_output=True, text=True, check=True)
    return done.stdout.strip()
