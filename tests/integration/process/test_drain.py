"""Requests in progress on the WebDAV listener, as a shutdown sees them: counted while
their handler runs, waited for, cut when told to hurry."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import aiohttp
from aiohttp import web

from shardproxy.listeners.drain import ActiveRequests
from shardproxy.listeners.listener import ClientLimits, ProxyServer
from shardproxy.tools.ports import free_port

Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]


@asynccontextmanager
async def listening(handler: Handler, active: ActiveRequests) -> AsyncIterator[str]:
    """A ProxyServer running ``handler``, tracked by ``active``; its base URL."""
    server = ProxyServer(
        handler, ClientLimits(32768, 20.0, 20.0), keepalive_timeout=5.0, access_log=None
    )
    server.active = active
    runner = web.ServerRunner(server)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_a_request_is_counted_while_it_runs_and_waited_for() -> None:
    active = ActiveRequests()
    started, release = asyncio.Event(), asyncio.Event()

    async def handler(request: web.BaseRequest) -> web.StreamResponse:
        started.set()
        await release.wait()
        return web.Response(text="done")

    async with listening(handler, active) as url, aiohttp.ClientSession() as session:
        reply = asyncio.ensure_future(session.get(url + "/x"))
        await started.wait()
        assert len(active) == 1
        draining = asyncio.ensure_future(active.drain(3600.0, asyncio.Event()))
        await asyncio.sleep(0)
        assert not draining.done()  # still waiting for the request
        release.set()
        assert await draining == 0
        async with await reply as response:
            assert await response.text() == "done"
        assert len(active) == 0


async def test_hurry_cuts_the_request_and_says_how_many() -> None:
    active = ActiveRequests()
    started = asyncio.Event()
    cancelled: list[bool] = []

    async def handler(request: web.BaseRequest) -> web.StreamResponse:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(True)
            raise
        return web.Response(text="never")

    async with listening(handler, active) as url, aiohttp.ClientSession() as session:
        reply = asyncio.ensure_future(session.get(url + "/x"))
        await started.wait()
        hurry = asyncio.Event()
        hurry.set()
        assert await active.drain(3600.0, hurry) == 1
        assert cancelled == [True]
        assert len(active) == 0
        reply.cancel()


async def test_a_failed_handler_is_no_longer_counted() -> None:
    active = ActiveRequests()

    async def handler(request: web.BaseRequest) -> web.StreamResponse:
        raise RuntimeError("broken handler")

    async with listening(handler, active) as url, aiohttp.ClientSession() as session:
        async with session.get(url + "/x") as response:
            assert response.status == 500
        assert len(active) == 0
        assert await active.drain(3600.0, asyncio.Event()) == 0
