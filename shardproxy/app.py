"""Application factory: wires settings, the backend session and the handlers together."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from shardproxy.config import Settings
from shardproxy.fallback import FallbackReads
from shardproxy.proxy import WebDavProxy

SETTINGS_KEY = web.AppKey("settings", Settings)
PROXY_KEY = web.AppKey("proxy", WebDavProxy)
# Reads of shard files through /.ids/ (the rest mount) per shard, for the metrics.
FALLBACK_READS = web.AppKey("fallback_reads", FallbackReads)
# Bodies that are not spliced are copied through this buffer (aiohttp holds up to twice
# it per connection). Measured with 200 slow readers and 1 GiB GETs on the copying
# path: 256 KiB gave 351 MiB RSS and 1.10 CPU s/GiB, 64 KiB 161 MiB and 0.91 s/GiB
# (a copy that fits in the CPU cache), with no loss of throughput.
READ_BUFFER = 1 << 16


def backend_session(settings: Settings) -> aiohttp.ClientSession:
    """The keep-alive pool to NzbDav."""
    connector = aiohttp.TCPConnector(
        limit=0, keepalive_timeout=30, ttl_dns_cache=300, enable_cleanup_closed=False
    )
    timeout = aiohttp.ClientTimeout(
        total=None, connect=settings.connect_timeout, sock_read=settings.read_timeout
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=timeout,
        auto_decompress=False,
        read_bufsize=READ_BUFFER,
        # NzbDav's login cookie belongs to each client; a shared jar would hand one
        # client's session to all the others.
        cookie_jar=aiohttp.DummyCookieJar(),
        # Only what the client sent goes upstream: no default Accept-Encoding (it would
        # invite a compressed reply the client never asked for), User-Agent or Accept.
        skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
    )


def make_proxy_app(settings: Settings) -> web.Application:
    """The WebDAV proxy as an aiohttp application (every path, every method)."""
    app = web.Application(client_max_size=1 << 20)
    app[SETTINGS_KEY] = settings
    app[FALLBACK_READS] = FallbackReads(settings.shard_map.count)

    async def session_lifetime(app: web.Application) -> AsyncIterator[None]:
        session = backend_session(settings)
        app[PROXY_KEY] = WebDavProxy(settings, session, app[FALLBACK_READS])
        yield
        await session.close()

    async def handle(request: web.Request) -> web.StreamResponse:
        return await request.app[PROXY_KEY].handle(request)

    app.cleanup_ctx.append(session_lifetime)
    app.router.add_route("*", "/{path:.*}", handle)
    return app
