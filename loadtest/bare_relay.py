"""The least an aiohttp proxy can do: relay each request to the origin and its reply back.

No routing, no header filtering, no Range contract, no streaming: one request upstream
per client request, the body read whole. The benchmark runs it beside shardproxy, in
three designs, as the ceiling of each stack for small requests, so the report shows how
much of shardproxy's cost per request is its own and how much is the stack's:

- ``app-session``: an aiohttp web application and aiohttp's ClientSession;
- ``app-pool``: the same application, upstream through shardproxy's own pool
  (``shardproxy.backend.pool``, asyncio.Protocol + httptools);
- ``server-pool``: aiohttp's low-level server (one handler, no router) and that pool.

    python -m loadtest.bare_relay ORIGIN_URL HOST:PORT [DESIGN]
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable

import aiohttp
import uvloop
from aiohttp import web
from yarl import URL

from shardproxy.backend.pool import BackendPool

# Headers the relay must not copy: aiohttp sets them for the reply it writes.
OWN_HEADERS = ("Content-Length", "Transfer-Encoding", "Connection", "Keep-Alive")


def make_app(origin: str) -> web.Application:
    """An app relaying every request to ``origin``."""
    app = web.Application()
    sessions: list[aiohttp.ClientSession] = []

    async def open_session(_app: web.Application) -> None:
        sessions.append(
            aiohttp.ClientSession(auto_decompress=False, cookie_jar=aiohttp.DummyCookieJar())
        )

    async def close_session(_app: web.Application) -> None:
        await sessions[0].close()

    async def relay(request: web.Request) -> web.Response:
        body = await request.read() if request.can_read_body else None
        async with sessions[0].request(
            request.method, origin + request.raw_path, headers=request.headers, data=body
        ) as reply:
            payload = await reply.read()
            headers = {k: v for k, v in reply.headers.items() if k not in OWN_HEADERS}
            return web.Response(status=reply.status, headers=headers, body=payload)

    app.on_startup.append(open_session)
    app.on_cleanup.append(close_session)
    app.router.add_route("*", "/{tail:.*}", relay)
    return app


def pool_relay(origin: str) -> Callable[[web.BaseRequest], Awaitable[web.Response]]:
    """A handler relaying every request through shardproxy's own upstream pool."""
    url = URL(origin)
    assert url.host is not None and url.port is not None
    pool = BackendPool(url.host, url.port, connect_timeout=5.0, read_timeout=60.0)

    async def relay(request: web.BaseRequest) -> web.Response:
        body = await request.read() if request.can_read_body else None
        reply = await pool.request(request.method, request.raw_path, request.headers.items(), body)
        payload = await reply.read_all()
        reply.release()
        headers = [(k, v) for k, v in reply.headers.items() if k not in OWN_HEADERS]
        return web.Response(status=reply.status, headers=headers, body=payload)

    return relay


def make_pool_app(origin: str) -> web.Application:
    """An app relaying every request through the pool."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", pool_relay(origin))
    return app


async def serve_low_level(origin: str, host: str, port: int) -> None:
    """aiohttp's low-level server with one relaying handler, until killed."""
    runner = web.ServerRunner(web.Server(pool_relay(origin)))
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    await asyncio.Event().wait()


def main() -> None:
    """Serve until stopped."""
    origin, listen = sys.argv[1], sys.argv[2]
    design = sys.argv[3] if len(sys.argv) > 3 else "app-session"
    host, _, port = listen.rpartition(":")
    if design == "server-pool":
        uvloop.run(serve_low_level(origin.rstrip("/"), host, int(port)))
        return
    maker = make_pool_app if design == "app-pool" else make_app
    web.run_app(
        maker(origin.rstrip("/")),
        host=host,
        port=int(port),
        access_log=None,
        print=None,
        loop=uvloop.new_event_loop(),
    )


if __name__ == "__main__":
    main()
