"""/readyz under a crowd of probes: one check for all, and the status page agrees with it.

A real rclone (1.60.1) answers the RC calls; its ``-vv`` log counts them. Freezing it
(SIGSTOP) holds every check in flight while the probes arrive, so the count does not
depend on timing.
"""

from __future__ import annotations

import asyncio
import os
import signal
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import aiohttp
import orjson
import pytest
from aiohttp import web
from aiohttp.pytest_plugin import AiohttpServer
from aiohttp.test_utils import TestServer

from nzbdav_standin import Library, make_standin_app
from shardproxy.config.settings import HostPort, Settings
from shardproxy.core.shards import ShardMap
from shardproxy.ops.admin import ADMIN_STATE, make_admin_app
from shardproxy.telemetry.metrics import Metrics
from tests.helpers.proxies import until
from tests.helpers.rclone_procs import RcloneRc, debian_rclone, make_rclone, start_all

pytestmark = pytest.mark.rclone
PROBES = 20


@pytest.fixture(scope="module")
def rclone() -> Iterator[RcloneRc]:
    binary = debian_rclone()
    if binary is None:
        pytest.skip("rclone is not installed (apt-get install rclone gives 1.60.1)")
    with tempfile.TemporaryDirectory(prefix="readyz-") as tmp:
        proc = make_rclone(binary, Path(tmp), "shard0")
        start_all([proc])
        try:
            yield proc
        finally:
            proc.stop()


@contextmanager
def frozen(rclone: RcloneRc) -> Iterator[None]:
    """The rclone stopped (SIGSTOP) inside the block, running again after it, always."""
    assert rclone.proc is not None
    os.kill(rclone.proc.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(rclone.proc.pid, signal.SIGCONT)


@pytest.fixture
async def nzbdav(aiohttp_server: AiohttpServer) -> TestServer:
    return await aiohttp_server(make_standin_app(Library(), user=None, password=None))


async def admin(
    aiohttp_server: AiohttpServer, nzbdav: TestServer, rclone: RcloneRc, **overrides: object
) -> tuple[TestServer, list[str]]:
    """The admin app after its first poll, and the paths of the requests it has received."""
    settings = Settings(
        backend=nzbdav.make_url("/"),
        shard_map=ShardMap.even(2),
        shard_rc={0: rclone.rc_url},
        admin_listen=HostPort("127.0.0.1", 0),
        admin_poll_interval=3600.0,
        **overrides,  # type: ignore[arg-type]
    )
    app = make_admin_app(settings, Metrics())
    arrived: list[str] = []

    @web.middleware
    async def note(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        arrived.append(request.path)
        return await handler(request)

    app.middlewares.append(note)
    server = await aiohttp_server(app)
    await app[ADMIN_STATE].poll()
    return server, arrived


async def fetch(server: TestServer, path: str) -> tuple[int, bytes]:
    async with aiohttp.ClientSession() as session, session.get(server.make_url(path)) as reply:
        return reply.status, await reply.read()


async def test_concurrent_probes_share_one_rc_call(
    aiohttp_server: AiohttpServer, nzbdav: TestServer, rclone: RcloneRc
) -> None:
    server, arrived = await admin(aiohttp_server, nzbdav, rclone)
    mark = rclone.mark()
    with frozen(rclone):
        probes = [asyncio.create_task(fetch(server, "/readyz")) for _ in range(PROBES)]
        await until(lambda: arrived.count("/readyz") == PROBES, "every probe to arrive")
    answers = await asyncio.gather(*probes)
    assert answers == [(200, b"ready\n")] * PROBES
    assert len(rclone.calls_since(mark, "rc/noop")) == 1


async def test_a_shard_readyz_finds_down_is_down_on_the_status_page(
    aiohttp_server: AiohttpServer, nzbdav: TestServer, rclone: RcloneRc
) -> None:
    server, _ = await admin(aiohttp_server, nzbdav, rclone, rc_timeout=0.5)
    _, before = await fetch(server, "/status.json")
    assert orjson.loads(before)["shards"][0]["state"] == "up"
    with frozen(rclone):
        status, text = await fetch(server, "/readyz")
        _, after = await fetch(server, "/status.json")
    assert status == 503
    assert b"shard 0 rclone" in text
    shard0 = orjson.loads(after)["shards"][0]
    assert shard0["state"] == "down"
    assert "no answer within 0.5 s" in shard0["detail"]
