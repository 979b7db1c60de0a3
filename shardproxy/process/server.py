"""Process lifecycle: start the listeners, run until a signal, stop within a bounded grace.

With ``workers > 1`` the WebDAV port is shared by several processes through
SO_REUSEPORT, so the kernel spreads connections over every core (see ``workers``). The
RC endpoint runs in the first process only: its retry queue must be one queue.

SIGTERM or SIGINT: stop accepting at once, let running requests finish for
``shutdown_grace`` seconds, then cut them and say how many. A second signal cuts at
once. SIGHUP is logged and ignored: settings are read at start only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Awaitable, Callable, Coroutine
from multiprocessing.connection import Connection
from typing import Any

import orjson
from aiohttp import web

from shardproxy.config.settings import HostPort, Settings
from shardproxy.core.shards import view_root
from shardproxy.listeners.descriptors import descriptors_needed, fit_descriptor_limit
from shardproxy.listeners.drain import ActiveRequests
from shardproxy.listeners.listener import READ_BUFSIZE, ClientLimits, Doorkeeper, ProxyServer
from shardproxy.listeners.side_task import side_task
from shardproxy.listeners.site import GuardedSite
from shardproxy.process.app import (
    ADMIN_LISTENER,
    RC_LISTENER,
    client_limits,
    make_proxy_server,
)
from shardproxy.process.workers import WorkerPool
from shardproxy.rc.server import RC_DELIVERY, make_rc_app
from shardproxy.rc.store import PendingStoreError
from shardproxy.telemetry.logs import AccessLogger, access_logger
from shardproxy.telemetry.metrics import Metrics

# How often a worker sends its counters to the first process (a scrape is seconds apart).
WORKER_REPORT_SECONDS = 1.0

log = logging.getLogger("shardproxy")

# After the grace, cancelled handlers get this long to close before aiohttp drops them.
CLOSE_TIMEOUT_SECONDS = 2.0


def make_runner(
    target: web.Application | web.Server, limits: ClientLimits | None = None
) -> web.BaseRunner:
    """A runner for an application (RC endpoint) or a low-level server (WebDAV proxy).

    An application's connections get ``limits``' keep-alive (without: aiohttp's); the
    WebDAV server was made with its own.
    """
    if isinstance(target, web.Server):
        # The grace is ours (ActiveRequests.drain); aiohttp's own wait comes after it.
        return web.ServerRunner(target, shutdown_timeout=CLOSE_TIMEOUT_SECONDS)
    keepalive: dict[str, Any] = (
        {} if limits is None else {"keepalive_timeout": limits.keepalive_timeout}
    )
    return web.AppRunner(
        target,
        # A client that hangs up cancels its handler at once.
        handler_cancellation=True,
        access_log=access_logger() if log.isEnabledFor(logging.DEBUG) else None,
        access_log_class=AccessLogger,
        shutdown_timeout=CLOSE_TIMEOUT_SECONDS,
        read_bufsize=READ_BUFSIZE,
        max_headers=256,
        **keepalive,
    )


async def start_site(
    target: web.Application | web.Server,
    address: HostPort,
    *,
    reuse_port: bool,
    active: ActiveRequests | None = None,
    limits: ClientLimits | None = None,
) -> web.BaseRunner:
    """Start serving ``target`` on ``address`` within ``limits``; the caller cleans the
    runner up.

    The WebDAV server brings its own limits. With ``active``, requests are tracked so
    that a shutdown can drain them.
    """
    if limits is None:
        limits = (
            target.limits if isinstance(target, ProxyServer) else ClientLimits(32768, 20.0, 60.0)
        )
    doors = Doorkeeper(limits)
    if isinstance(target, ProxyServer):
        target.doors = doors
        if active is not None:
            target.active = active
    elif isinstance(target, web.Application):
        # Outermost, so that it sees the end of every request, refused ones too.
        target.middlewares.insert(0, doors.middleware)
        if active is not None:
            target.middlewares.append(active.middleware)
    runner = make_runner(target, limits)
    await runner.setup()
    site = GuardedSite(runner, address.host, address.port, doors=doors, reuse_port=reuse_port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise SystemExit(f"shardproxy: cannot listen on {address}: {exc.strerror}") from None
    return runner


def _on_sighup() -> None:
    log.warning(
        "SIGHUP received: settings are only read at start, so nothing changes; "
        "still serving (restart shardproxy to apply new settings)"
    )


async def serve_until_stopped(
    settings: Settings,
    *,
    with_rc: bool,
    ready: Callable[[], Awaitable[None]] | None = None,
    pool: WorkerPool | None = None,
    report_to: Connection | None = None,
) -> None:
    """Run the WebDAV proxy (and the RC and admin listeners if set) until SIGINT/SIGTERM.

    ``with_rc`` is true in the first process only, which runs the RC endpoint and the
    admin listener; other workers serve WebDAV alone and send their metrics to it on
    ``report_to``.
    """
    stop, hurry = asyncio.Event(), asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_stop_signal(signum: signal.Signals) -> None:
        if stop.is_set():
            log.warning("%s again: cutting active requests now", signum.name)
            hurry.set()
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_stop_signal, signum)
    loop.add_signal_handler(signal.SIGHUP, _on_sighup)
    active = ActiveRequests()
    metrics = Metrics()
    runners = [
        await start_site(
            make_proxy_server(settings, metrics),
            settings.listen,
            reuse_port=settings.workers > 1,
            active=active,
        )
    ]
    try:
        if with_rc and settings.rc_listen is not None:
            try:
                rc_app = make_rc_app(settings, metrics=metrics)
            except PendingStoreError as exc:
                raise SystemExit(f"shardproxy: {exc}") from None
            try:
                runners.append(
                    await start_site(
                        rc_app,
                        settings.rc_listen,
                        reuse_port=False,
                        active=active,
                        limits=client_limits(settings, RC_LISTENER),
                    )
                )
            except PendingStoreError as exc:  # the queue is loaded as the listener starts
                raise SystemExit(f"shardproxy: {exc}") from None
        if with_rc and settings.admin_listen is not None:
            from shardproxy.ops.admin import make_admin_app

            delivery = rc_app[RC_DELIVERY] if settings.rc_listen is not None else None
            admin_app = make_admin_app(settings, metrics, delivery)
            runners.append(
                await start_site(
                    admin_app,
                    settings.admin_listen,
                    reuse_port=False,
                    limits=client_limits(settings, ADMIN_LISTENER),
                )
            )
        if pool is not None:
            pool.on_report = metrics.add_worker_totals
            pool.on_end = metrics.worker_ended
            pool.start()
        if ready is not None:
            await ready()
        if report_to is None:
            await stop.wait()
        else:
            async with side_task(report_metrics(metrics, report_to)):
                await stop.wait()
            send_metrics(metrics, report_to)  # the last counts, before the worker goes
    finally:
        await _shut_down(runners, active, settings.shutdown_grace, hurry, pool)


async def _shut_down(
    runners: list[web.BaseRunner],
    active: ActiveRequests,
    grace: float,
    hurry: asyncio.Event,
    pool: WorkerPool | None,
) -> None:
    """Stop accepting, drain for ``grace``, cut the rest, then close everything."""
    for runner in runners:
        for site in list(runner.sites):
            await site.stop()
        if runner.server is not None:
            runner.server.pre_shutdown()  # idle keep-alive connections close now
    log.info(
        "pid %d: stopped accepting; %d active request(s) get up to %g s to finish (shutdown_grace)",
        os.getpid(),
        len(active),
        grace,
    )
    workers_stopped = asyncio.ensure_future(pool.stop(grace) if pool else asyncio.sleep(0))
    cut = await active.drain(grace, hurry)
    if cut:
        log.warning(
            "pid %d: shutdown grace of %g s (shutdown_grace) ran out: cut %d active request(s)",
            os.getpid(),
            grace,
            cut,
        )
    else:
        log.info("pid %d: every active request finished; cut 0", os.getpid())
    for runner in reversed(runners):
        await runner.cleanup()
    await workers_stopped


def run_with_uvloop(main: Coroutine[Any, Any, None]) -> None:
    """Run ``main`` on uvloop where it is installed: it is markedly faster for sockets."""
    try:
        import uvloop

        loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = uvloop.new_event_loop
    except ImportError:
        loop_factory = None
    with (
        contextlib.suppress(KeyboardInterrupt),
        asyncio.Runner(loop_factory=loop_factory) as runner,
    ):
        runner.run(main)


def serve_worker(settings: Settings, report_to: Connection) -> None:
    """What an extra worker process runs: WebDAV only (RC and admin stay with the first)."""
    run_with_uvloop(serve_until_stopped(settings, with_rc=False, report_to=report_to))


def send_metrics(metrics: Metrics, report_to: Connection) -> None:
    """One report of this worker's counters to the first process."""
    with contextlib.suppress(OSError):  # the first process is gone: nobody to tell
        report_to.send_bytes(orjson.dumps(metrics.counter_totals()))


async def report_metrics(metrics: Metrics, report_to: Connection) -> None:
    """Report this worker's counters to the first process every WORKER_REPORT_SECONDS."""
    while True:
        await asyncio.sleep(WORKER_REPORT_SECONDS)
        send_metrics(metrics, report_to)


def run(settings: Settings) -> None:
    """Serve until stopped, with ``settings.workers`` processes sharing the port."""
    # Extra workers start once this process holds the port, so a bad address fails
    # once, in the foreground, instead of in every worker.
    pool = (
        WorkerPool(settings, settings.workers - 1, serve_worker) if settings.workers > 1 else None
    )
    # Before the workers start: they inherit the limit.
    fit_descriptor_limit(
        descriptors_needed(
            settings.max_connections,
            settings.rc_max_connections if settings.rc_listen is not None else None,
            settings.admin_max_connections if settings.admin_listen is not None else None,
        )
    )

    async def announce() -> None:
        shards = ", ".join(
            f"{view_root(n)} ({settings.shard_map.prefixes_of(n)})"
            for n in range(settings.shard_map.count)
        )
        log.info(
            "shardproxy %s -> %s on http://%s with %d worker(s); shard views: %s",
            os.getpid(),
            settings.backend,
            settings.listen,
            settings.workers,
            shards,
        )
        if settings.rc_listen is not None:
            log.info(
                "RC endpoint on http://%s; undelivered paths kept in %s",
                settings.rc_listen,
                settings.rc_pending_file or "memory only",
            )
        if settings.admin_listen is not None:
            log.info("status page, /metrics, /healthz on http://%s/", settings.admin_listen)

    run_with_uvloop(serve_until_stopped(settings, with_rc=True, ready=announce, pool=pool))
