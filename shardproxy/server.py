"""Process lifecycle: start the listeners, run until a signal, stop cleanly.

With ``workers > 1`` the WebDAV port is shared by several processes through
SO_REUSEPORT, so the kernel spreads connections over every core. The RC endpoint runs
in the first process only: its retry queue must be one queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from aiohttp import web

from shardproxy.app import make_proxy_app
from shardproxy.config import HostPort, Settings
from shardproxy.rcserver import make_rc_app
from shardproxy.shards import view_root

log = logging.getLogger("shardproxy")


async def start_site(app: web.Application, address: HostPort, *, reuse_port: bool) -> web.AppRunner:
    """Start serving ``app`` on ``address``; the caller cleans the runner up."""
    runner = web.AppRunner(
        app,
        # A client that hangs up cancels its handler at once, which closes the
        # upstream connection: NzbDav stops fetching from Usenet for nobody.
        handler_cancellation=True,
        access_log=log if log.isEnabledFor(logging.DEBUG) else None,
    )
    await runner.setup()
    site = web.TCPSite(runner, address.host, address.port, reuse_port=reuse_port or None)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise SystemExit(f"shardproxy: cannot listen on {address}: {exc.strerror}") from None
    return runner


async def serve_until_stopped(
    settings: Settings, *, with_rc: bool, ready: Callable[[], Awaitable[None]] | None = None
) -> None:
    """Run the WebDAV proxy (and the RC endpoint if configured) until SIGINT/SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    runners = [
        await start_site(make_proxy_app(settings), settings.listen, reuse_port=settings.workers > 1)
    ]
    if with_rc and settings.rc_listen is not None:
        runners.append(
            await start_site(make_rc_app(settings), settings.rc_listen, reuse_port=False)
        )
    if ready is not None:
        await ready()
    try:
        await stop.wait()
    finally:
        for runner in reversed(runners):
            await runner.cleanup()


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


def _worker_main(settings: Settings) -> None:
    logging.basicConfig(level=settings.log_level.upper(), format="%(levelname)s %(message)s")
    run_with_uvloop(serve_until_stopped(settings, with_rc=False))


def run(settings: Settings) -> None:
    """Serve until stopped, with ``settings.workers`` processes sharing the port."""
    workers: list[multiprocessing.process.BaseProcess] = []
    context = multiprocessing.get_context("fork")

    async def announce() -> None:
        # Extra workers start once the first one holds the port, so a bad address fails
        # once, in the foreground, instead of in every child.
        for _ in range(settings.workers - 1):
            worker = context.Process(target=_worker_main, args=(settings,), daemon=True)
            worker.start()
            workers.append(worker)
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
            log.info("RC endpoint on http://%s", settings.rc_listen)

    try:
        run_with_uvloop(serve_until_stopped(settings, with_rc=True, ready=announce))
    finally:
        for worker in workers:
            if worker.pid is not None and worker.is_alive():
                os.kill(worker.pid, signal.SIGTERM)
        for worker in workers:
            worker.join(timeout=10)
