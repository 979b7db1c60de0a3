"""The admin listener: ``/healthz``, ``/readyz``, ``/metrics``, ``/status.json`` and ``/``.

It polls every shard's rclone (``vfs/stats``) and NzbDav in the background; requests read
what the last poll found and never wait for an rclone. ``/readyz`` alone asks afresh,
since that is its point: one check at a time for every caller, its answer kept for
``READYZ_CACHE_SECONDS``, and what it finds shown on the status page at once. The
decisions live in ``status``; the counters in ``metrics``.
"""

from __future__ import annotations

import asyncio
import importlib.resources
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from shardproxy import __version__
from shardproxy.config.settings import Settings
from shardproxy.listeners.basicauth import authorized, unauthorized
from shardproxy.listeners.side_task import side_task
from shardproxy.ops.coalesce import Coalesced
from shardproxy.ops.status import (
    BackendState,
    FallbackWindow,
    ShardInfo,
    cache_path,
    caches_after_readiness,
    parse_vfs_stats,
    readiness_problems,
    status_document,
)
from shardproxy.rc.pending import PendingDeliveries
from shardproxy.rc.send import Endpoint
from shardproxy.rc.targets import Target
from shardproxy.telemetry.metrics import (
    CONTENT_TYPE,
    CacheStats,
    Metrics,
    PendingSummary,
)

log = logging.getLogger("shardproxy.ops.admin")

# Paths a health probe may ask without credentials: they reveal only "the process runs".
OPEN_PATHS = frozenset({"/healthz"})
# Seconds the page waits between refreshes; the cache figures change once a poll anyway.
PAGE_REFRESH_SECONDS = 5.0
# rclone replies to vfs/stats are a few KiB.
MAX_REPLY_BYTES = 1 << 20
# Seconds a /readyz answer is reused: probes asking many times a second share one check.
READYZ_CACHE_SECONDS = 1.0


class AdminState:
    """What the last polls found, and how to ask again."""

    def __init__(
        self, settings: Settings, metrics: Metrics, delivery: PendingDeliveries | None
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.delivery = delivery
        self.shards = [
            ShardInfo(
                n,
                settings.shard_map.prefixes_of(n),
                _address(settings.shard_rc[n]) if n in settings.shard_rc else None,
            )
            for n in range(settings.shard_map.count)
        ]
        self.endpoints = {n: Endpoint.from_url(url) for n, url in settings.shard_rc.items()}
        self.fallback_endpoints = [Endpoint.from_url(url) for url in settings.rc_fallback]
        self.caches: dict[int, CacheStats] = {}
        self.backend = BackendState(None)
        self.windows = {shard.number: FallbackWindow() for shard in self.shards}
        started = time.monotonic()
        for window in self.windows.values():
            window.observe(started, 0.0)  # every counter starts at 0 with the process
        self.session: aiohttp.ClientSession | None = None
        self.readiness_check = Coalesced(self._check_readiness, READYZ_CACHE_SECONDS)
        metrics.watch_caches(lambda: self.caches)
        if delivery is not None:
            metrics.watch_pending(self.pending)

    def pending(self) -> PendingSummary:
        """The RC deliveries waiting now."""
        delivery = self.delivery
        if delivery is None:
            return PendingSummary(0, 0.0)
        targets = [Target("shard", n) for n in self.endpoints]
        targets += [Target("fallback", k) for k in range(len(self.fallback_endpoints))]
        by_rclone = {t.label: len(delivery.pending_for(t)) for t in targets}
        return PendingSummary(delivery.pending_count, delivery.oldest_pending_age, by_rclone)

    def document(self) -> dict[str, Any]:
        """The status page's figures."""
        return status_document(
            shards=self.shards,
            caches=self.caches,
            fallback_recent={n: window.recent() for n, window in self.windows.items()},
            backend_url=str(self.settings.backend.origin()),
            backend=self.backend,
            pending=self.pending() if self.delivery is not None else None,
            failing_rclones=self.delivery.failing_targets if self.delivery else {},
            metrics=self.metrics,
            version=__version__,
            refresh_seconds=PAGE_REFRESH_SECONDS,
        )

    async def poll(self) -> None:
        """Ask every shard's rclone for its cache and NzbDav whether it answers; never raises."""
        shards = list(self.endpoints)
        backend, caches = await asyncio.gather(
            self.probe_backend(), asyncio.gather(*(self.cache_of(n) for n in shards))
        )
        self.backend = backend
        self.caches = dict(zip(shards, caches, strict=True))
        now = time.monotonic()
        for shard, window in self.windows.items():
            reads = self.metrics.value("shardproxy_fallback_reads_total", shard=str(shard))
            window.observe(now, reads)

    async def cache_of(self, shard: int) -> CacheStats:
        """Shard ``shard``'s cache figures, or a down value saying why there are none."""
        params: dict[str, Any] = {}
        fs_name = self.settings.shard_rc_fs.get(shard)
        if fs_name is not None:
            params["fs"] = fs_name
        body, error = await self.rc_call(self.endpoints[shard], "vfs/stats", params)
        if body is None:
            return CacheStats(up=False, error=error)
        stats = parse_vfs_stats(body)
        path = cache_path(body)
        if path is None:
            return stats
        disk = await asyncio.to_thread(_disk_of, path)
        if disk is None:
            return stats
        return CacheStats(**{**stats.__dict__, "disk_size": disk[0], "disk_free": disk[1]})

    async def rc_call(
        self, endpoint: Endpoint, command: str, params: Mapping[str, Any]
    ) -> tuple[dict[str, Any] | None, str]:
        """POST one RC call: (reply, "") or (None, why it failed)."""
        assert self.session is not None
        timeout = aiohttp.ClientTimeout(total=min(self.settings.rc_timeout, 10.0))
        try:
            async with self.session.post(
                endpoint.command_url(command),
                data=orjson.dumps(params),
                headers=endpoint.headers,
                timeout=timeout,
            ) as response:
                raw = await response.content.read(MAX_REPLY_BYTES)
                if response.status != 200:
                    return None, f"HTTP {response.status}"
        except TimeoutError:
            return None, f"no answer within {timeout.total:g} s"
        except (aiohttp.ClientError, OSError) as exc:
            return None, _reason(exc)
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return None, "reply is not JSON"
        return (body, "") if isinstance(body, dict) else (None, "reply is not a JSON object")

    async def probe_backend(self) -> BackendState:
        """NzbDav answers when an OPTIONS (exempt from its auth) gets any reply below 500."""
        assert self.session is not None
        timeout = aiohttp.ClientTimeout(
            total=self.settings.connect_timeout + 5.0, connect=self.settings.connect_timeout
        )
        try:
            async with self.session.options(
                self.settings.backend.origin(), timeout=timeout
            ) as response:
                status = response.status
        except TimeoutError:
            return BackendState(False, f"no answer within {timeout.total:g} s")
        except (aiohttp.ClientError, OSError) as exc:
            return BackendState(False, _reason(exc))
        return BackendState(status < 500, f"HTTP {status}")

    async def readiness(self) -> list[str]:
        """What keeps the proxy from being ready, named: asked of NzbDav and every rclone
        at most once per ``READYZ_CACHE_SECONDS``, however many callers ask."""
        return await self.readiness_check.get()

    async def _check_readiness(self) -> list[str]:
        """Ask NzbDav and every rclone now; note what they said for the status page."""
        named: list[tuple[str, Endpoint]] = [
            (f"shard {n} rclone ({_address(e.url)})", e) for n, e in self.endpoints.items()
        ]
        named += [
            (f"fallback rclone {k} ({_address(e.url)})", e)
            for k, e in enumerate(self.fallback_endpoints)
        ]
        backend, answers = await asyncio.gather(
            self.probe_backend(),
            asyncio.gather(*(self.rc_call(e, "rc/noop", {}) for _, e in named)),
        )
        rclones = {
            name: None if body is not None else why
            for (name, _), (body, why) in zip(named, answers, strict=True)
        }
        self.backend = backend
        # The shards' rclones come first in ``named``, in the order of ``endpoints``.
        shard_answers = {
            shard: None if body is not None else why
            for shard, (body, why) in zip(
                self.endpoints, answers[: len(self.endpoints)], strict=True
            )
        }
        self.caches = caches_after_readiness(self.caches, shard_answers)
        return readiness_problems(backend, rclones)


def _address(url: Any) -> str:
    return f"{url.host}:{url.port}"


def _reason(exc: BaseException) -> str:
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"cannot connect: {exc.os_error.strerror or exc.os_error}"
    return f"{type(exc).__name__}: {exc}"


def _disk_of(path: str) -> tuple[int, int] | None:
    """(size, free) of the filesystem holding ``path``, when this machine can see it."""
    try:
        info = os.statvfs(path)
    except OSError:
        return None
    return info.f_blocks * info.f_frsize, info.f_bavail * info.f_frsize


async def poll_forever(state: AdminState, interval: float) -> None:
    """Poll every ``interval`` seconds until cancelled; a failing poll is logged, not fatal."""
    while True:
        try:
            await state.poll()
        except Exception:
            log.exception("polling the rclones failed")
        await asyncio.sleep(interval)


ADMIN_STATE = web.AppKey("admin_state", AdminState)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def status_page_html(document: Mapping[str, Any]) -> bytes:
    """The status page with its first figures inside, so it draws without a round trip."""
    template = importlib.resources.files("shardproxy.ops").joinpath("status.html").read_bytes()
    # "</" inside the JSON would end the script element early.
    initial = orjson.dumps(document).replace(b"</", b"<\\/")
    return template.replace(b"/*STATUS_JSON*/", initial)


def make_admin_app(
    settings: Settings, metrics: Metrics, delivery: PendingDeliveries | None = None
) -> web.Application:
    """The admin listener as an aiohttp app; it owns its poll task and client session."""
    state = AdminState(settings, metrics, delivery)

    @web.middleware
    async def require_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in OPEN_PATHS or authorized(
            request, settings.admin_user, settings.admin_pass
        ):
            return await handler(request)
        return unauthorized("shardproxy admin")

    app = web.Application(middlewares=[require_auth])
    app[ADMIN_STATE] = state

    async def healthz(_request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(_request: web.Request) -> web.Response:
        problems = await state.readiness()
        if problems:
            return web.Response(status=503, text="not ready:\n" + "\n".join(problems) + "\n")
        return web.Response(text="ready\n")

    async def metrics_page(_request: web.Request) -> web.Response:
        return web.Response(body=metrics.exposition(), headers={"Content-Type": CONTENT_TYPE})

    async def status_json(_request: web.Request) -> web.Response:
        return web.Response(
            body=orjson.dumps(state.document()),
            content_type="application/json",
            headers={"Cache-Control": "no-store"},
        )

    async def status_page(_request: web.Request) -> web.Response:
        return web.Response(
            body=status_page_html(state.document()),
            content_type="text/html",
            charset="utf-8",
            headers={"Cache-Control": "no-store"},
        )

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_page)
    app.router.add_get("/status.json", status_json)
    app.router.add_get("/", status_page)

    async def lifetime(app: web.Application) -> AsyncIterator[None]:
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=32), cookie_jar=aiohttp.DummyCookieJar()
        ) as session:
            state.session = session
            async with side_task(poll_forever(state, settings.admin_poll_interval)):
                yield
            state.session = None

    app.cleanup_ctx.append(lifetime)
    return app
