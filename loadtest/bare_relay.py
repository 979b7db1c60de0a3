"""The least an aiohttp proxy can do: relay each request to the origin and its reply back.

No routing, no header filtering, no Range contract, no streaming: one ClientSession
request per client request, the body read whole. The benchmark runs it beside
shardproxy as the ceiling of the stack for small requests, so the report shows how much
of shardproxy's cost per request is its own and how much is aiohttp's.

    python -m loadtest.bare_relay ORIGIN_URL HOST:PORT
"""

from __future__ import annotations

import sys

import aiohttp
import uvloop
from aiohttp import web

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


def main() -> None:
    """Serve until stopped."""
    origin, listen = sys.argv[1], sys.argv[2]
    host, _, port = listen.rpartition(":")
    web.run_app(
        make_app(origin.rstrip("/")),
        host=host,
        port=int(port),
        access_log=None,
        print=None,
        loop=uvloop.new_event_loop(),
    )


if __name__ == "__main__":
    main()
