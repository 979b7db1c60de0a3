"""The proxy's counters, through real sockets: requests, bytes, errors, client aborts."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import aiohttp
import pytest
from aiohttp import web
from yarl import URL

from nzbdav_standin import Library, make_standin_app
from shardproxy.process.app import make_proxy_server
from shardproxy.process.server import start_site
from shardproxy.telemetry.metrics import Metrics
from shardproxy.tools.ports import free_port
from tests.helpers.proxies import proxy_settings

BIG_UUID = "1abcdef0-1111-4222-8333-444455556666"  # shard 0 of 4
BIG_SIZE = 24 << 20
SMALL_UUID = "9abcdef0-1111-4222-8333-444455556666"  # shard 2 of 4
SMALL_SIZE = 5000


def ids_path(uuid: str, view: str) -> str:
    return f"/{view}/{'/'.join(uuid[:5])}/{uuid}"


@asynccontextmanager
async def stack(backend: URL | None = None) -> AsyncIterator[tuple[URL, Metrics]]:
    """The stand-in (unless ``backend`` is given) behind a proxy counting into one Metrics."""
    library = Library.sample(4, seed=5)
    library.add("/content/movies/Big/Big.mkv", BIG_SIZE, uuid=BIG_UUID)
    library.add("/content/movies/Small/Small.mkv", SMALL_SIZE, uuid=SMALL_UUID)
    runner = web.AppRunner(make_standin_app(library, user=None, password=None))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    metrics = Metrics()
    settings = proxy_settings(backend or f"http://127.0.0.1:{runner.addresses[0][1]}")
    proxy = await start_site(
        make_proxy_server(settings, metrics), settings.listen, reuse_port=False
    )
    try:
        yield URL(f"http://127.0.0.1:{proxy.addresses[0][1]}"), metrics
    finally:
        await proxy.cleanup()
        await runner.cleanup()


async def eventually(condition: Callable[[], bool]) -> None:
    """Poll until ``condition()`` holds (10 s at most)."""
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition never held")


async def test_a_film_read_counts_its_bytes_spliced_and_copied() -> None:
    async with stack() as (url, metrics), aiohttp.ClientSession() as session:
        async with session.get(url / ids_path(BIG_UUID, ".ids-s0")[1:]) as reply:
            assert reply.status == 200
            assert len(await reply.read()) == BIG_SIZE
        await eventually(lambda: metrics.total("shardproxy_requests_total") == 1)
    spliced = metrics.value("shardproxy_bytes_streamed_total", shard="0", path="spliced")
    copied = metrics.value("shardproxy_bytes_streamed_total", shard="0", path="copied")
    assert spliced + copied == BIG_SIZE
    assert spliced > 0
    assert (
        metrics.value("shardproxy_requests_total", shard="0", method="GET", status_class="2xx") == 1
    )


async def test_a_small_read_is_copied_and_counted_under_its_shard() -> None:
    async with stack() as (url, metrics), aiohttp.ClientSession() as session:
        async with session.get(url / ids_path(SMALL_UUID, ".ids-s2")[1:]) as reply:
            assert len(await reply.read()) == SMALL_SIZE
        async with session.get(url / "content/") as reply:
            await reply.read()
    assert metrics.value("shardproxy_bytes_streamed_total", shard="2", path="copied") == SMALL_SIZE
    assert metrics.total("shardproxy_bytes_streamed_total", path="spliced") == 0
    assert metrics.total("shardproxy_requests_total", shard="none") == 1


async def test_refused_paths_are_counted_as_4xx() -> None:
    async with stack() as (url, metrics), aiohttp.ClientSession() as session:
        async with session.get(url / ".ids-s0/f/") as reply:
            assert reply.status == 404
    assert (
        metrics.value("shardproxy_requests_total", shard="none", method="GET", status_class="4xx")
        == 1
    )


async def test_a_client_hanging_up_mid_body_is_an_abort_not_a_backend_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="shardproxy")
    async with stack() as (url, metrics):
        for _ in range(3):
            reader, writer = await asyncio.open_connection(url.host, url.port)
            path = ids_path(BIG_UUID, ".ids-s0")
            writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nRange: bytes=0-\r\n\r\n".encode())
            await writer.drain()
            await reader.readexactly(256 << 10)  # headers and the first part of the body
            writer.transport.abort()  # a reset, as rclone's seek does
        await eventually(lambda: metrics.value("shardproxy_client_aborts_total", shard="0") == 3)
    warnings = [
        r
        for r in caplog.records
        if r.levelno >= logging.WARNING and r.name.startswith("shardproxy")
    ]
    assert warnings == []
    assert metrics.total("shardproxy_upstream_errors_total") == 0


async def test_an_unreachable_backend_is_counted_by_kind() -> None:
    async with stack(URL(f"http://127.0.0.1:{free_port()}")) as (url, metrics):
        async with aiohttp.ClientSession() as session, session.get(url / "content/") as reply:
            assert reply.status == 502
    assert metrics.value("shardproxy_upstream_errors_total", shard="none", kind="unreachable") == 1
    assert (
        metrics.value("shardproxy_requests_total", shard="none", method="GET", status_class="5xx")
        == 1
    )


async def test_a_read_of_a_shard_file_through_ids_is_a_fallback_read_of_its_shard() -> None:
    async with stack() as (url, metrics), aiohttp.ClientSession() as session:
        async with session.get(url / ids_path(SMALL_UUID, ".ids")[1:]) as reply:
            assert len(await reply.read()) == SMALL_SIZE
        async with session.get(url / ids_path(SMALL_UUID, ".ids-s2")[1:]) as reply:
            await reply.read()
    assert metrics.value("shardproxy_fallback_reads_total", shard="2") == 1
    assert metrics.total("shardproxy_fallback_reads_total") == 1
