"""Wiring: settings, the backend pool and the WebDAV handler into one listener."""

from __future__ import annotations

import logging

from shardproxy.backend.pool import BackendPool
from shardproxy.config.settings import Settings
from shardproxy.core.failover import FallbackReads
from shardproxy.listeners.listener import ClientLimits, ProxyServer
from shardproxy.telemetry.logs import access_logger
from shardproxy.telemetry.metrics import Metrics
from shardproxy.web.proxy import WebDavProxy

log = logging.getLogger("shardproxy")


def backend_pool(settings: Settings) -> BackendPool:
    """The keep-alive pool to NzbDav."""
    backend = settings.backend
    assert backend.host is not None and backend.port is not None
    return BackendPool(
        backend.host,
        backend.port,
        connect_timeout=settings.connect_timeout,
        read_timeout=settings.read_timeout,
    )


WEBDAV_LISTENER, RC_LISTENER, ADMIN_LISTENER = "WebDAV", "RC", "admin"


def client_limits(settings: Settings, listener: str) -> ClientLimits:
    """The limits of one listener: the same for every listener but its connection cap."""
    cap_setting = {
        WEBDAV_LISTENER: "max_connections",
        RC_LISTENER: "rc_max_connections",
        ADMIN_LISTENER: "admin_max_connections",
    }[listener]
    return ClientLimits(
        settings.header_max_size,
        settings.header_timeout,
        settings.send_timeout,
        keepalive_timeout=settings.keepalive_timeout,
        body_timeout=settings.body_timeout,
        max_connections=getattr(settings, cap_setting),
        cap_setting=cap_setting,
        name=listener,
    )


def make_proxy_server(settings: Settings, metrics: Metrics | None = None) -> ProxyServer:
    """The WebDAV proxy as aiohttp's low-level server: one handler for every request.

    ``metrics`` is shared with the process's other listeners; without it the server
    counts into a registry of its own.
    """
    pool = backend_pool(settings)
    # Reads of shard files through /.ids/ (the rest mount) per shard, for the metrics.
    fallback_reads = FallbackReads(settings.shard_map.count)
    proxy = WebDavProxy(settings, pool, fallback_reads, metrics)
    limits = client_limits(settings, WEBDAV_LISTENER)
    server = ProxyServer(
        proxy.handle,
        limits,
        on_shutdown=pool.close,
        keepalive_timeout=settings.keepalive_timeout,
        access_log=(
            access_logger() if settings.access_log or log.isEnabledFor(logging.DEBUG) else None
        ),
    )
    server.fallback_reads = fallback_reads
    return server
