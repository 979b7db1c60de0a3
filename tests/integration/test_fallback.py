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
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from yarl import URL

from nzbdav_standin import Library, expected_bytes, make_standin_app
from shardproxy.core.failover import FallbackReads, fallback_read_shard, is_fallback_mount
from shardproxy.core.shards import ShardMap
from shardproxy.listeners.listener import ProxyServer
from shardproxy.process.app import make_proxy_server
from shardproxy.process.server import start_site
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


@pytest.mark.parametrize(("header", "rest"), [("rest", True), (" Rest ", True), ("s2", False)])
def test_the_rest_mount_is_known_by_its_header(header: str, rest: bool) -> None:
    assert is_fallback_mount(header) is rest


def test_no_header_is_no_rest_mount() -> None:
    assert not is_fallback_mount(None)


# --- counting and reporting -----------------------------------------------------------------


def test_the_first_read_of_a_shard_is_reported_at_once() -> None:
    reads = FallbackReads(4, clock=FakeClock())
    line = reads.record(2)
    assert line is not None
    assert line.startswith(LINE)
    assert "1 read(s) through the rest mount, served uncached (1 in all)" in line
    assert "is shard 2's rclone (/.ids-s2) running?" in line


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
    assert "5 read(s) through the rest mount in the last 61 s, served uncached (6 in all)" in line


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
    caplog.set_level(logging.WARNING, logger="shardproxy.web.proxy")
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
    caplog.set_level(logging.WARNING, logger="shardproxy.web.proxy")
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


async def test_a_read_of_a_shard_view_from_the_rest_mount_is_counted(running: Running) -> None:
    # The "shard links" layout: rest reads the shard's own paths, and says who it is.
    view_file = f"/.ids-s2{FILE9[5:]}"
    async with running.client.get(
        running.url.with_path(view_file), headers={"X-Shardproxy-Mount": "rest"}
    ) as response:
        assert response.status == 200
        assert await response.read() == expected_bytes(FILE9, SIZE, 0, SIZE - 1)
    assert running.counts == {0: 0, 1: 0, 2: 1, 3: 0}


async def rclone_cat_through_rest(running: Running, path: str, tmp_path: Path) -> bytes:
    """``rclone cat`` of ``path`` through a remote written as ``gen`` writes ``rest``."""
    binary = debian_rclone()
    if binary is None:
        pytest.skip("rclone is not installed (apt-get install rclone gives 1.60.1)")
    config = tmp_path / "rclone.conf"
    config.write_text(
        "[rest]\ntype = webdav\n"
        f"url = {running.url}\nvendor = other\nuser = admin\npass = {obscure('secret')}\n"
        "headers = X-Shardproxy-Mount,rest\n"
    )
    process = await asyncio.create_subprocess_exec(
        binary,
        "cat",
        "--config",
        str(config),
        "rest:" + path.lstrip("/"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    return out


async def test_a_real_rclone_reading_ids_through_rest_is_counted(
    running: Running, tmp_path: Path
) -> None:
    """What rest does for a dead shard with links unchanged: it asks for /.ids/... itself."""
    out = await rclone_cat_through_rest(running, FILE9, tmp_path)
    assert out == expected_bytes(FILE9, SIZE, 0, SIZE - 1)
    assert running.counts[2] >= 1
    assert running.counts[0] == running.counts[1] == running.counts[3] == 0


async def test_a_real_rclone_reading_a_shard_view_through_rest_is_counted(
    running: Running, tmp_path: Path
) -> None:
    """With shard links, rest reads /.ids-s2/... like the shard; its header tells them apart."""
    out = await rclone_cat_through_rest(running, f"/.ids-s2{FILE9[5:]}", tmp_path)
    assert out == expected_bytes(FILE9, SIZE, 0, SIZE - 1)
    assert running.counts[2] >= 1
    assert running.counts[0] == running.counts[1] == running.counts[3] == 0


def obscure(password: str) -> str:
    """rclone's reversible obscuring of a password, as ``rclone obscure`` prints it."""
    binary = debian_rclone()
    assert binary is not None
    done = subprocess.run([binary, "obscure", password], capture_output=True, text=True, check=True)
    return done.stdout.strip()
