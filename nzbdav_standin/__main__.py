"""Run the stand-in on a sample library: ``python -m nzbdav_standin --listen 127.0.0.1:8080``.

Prints one line, ``nzbdav-standin ready at http://HOST:PORT/``, once it is
listening (with the real port when asked for port 0), then serves until
interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys

import uvloop
from aiohttp import web
from aiohttp.log import access_logger
from aiohttp.typedefs import Handler, Middleware

from nzbdav_standin.catalog import Library
from nzbdav_standin.server import make_standin_app


def _listen_address(text: str) -> tuple[str, int]:
    host, separator, port = text.rpartition(":")
    if not separator or not port.isdigit() or not host:
        raise argparse.ArgumentTypeError(f"--listen wants HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m nzbdav_standin",
        description="Serve a sample library over WebDAV the way NzbDav does.",
    )
    parser.add_argument(
        "--listen",
        type=_listen_address,
        default=("127.0.0.1", 8080),
        metavar="HOST:PORT",
        help="address to listen on; port 0 picks a free one (default 127.0.0.1:8080)",
    )
    parser.add_argument("--user", default="admin", help="WebDAV user (default admin)")
    parser.add_argument("--password", default="secret", help="WebDAV password (default secret)")
    parser.add_argument(
        "--no-auth", action="store_true", help="turn authentication off (DISABLE_WEBDAV_AUTH)"
    )
    parser.add_argument("--ids", type=int, default=64, metavar="N", help="Usenet files (64)")
    parser.add_argument(
        "--big-file-mib",
        type=int,
        default=0,
        metavar="M",
        help="add one movie of M MiB for throughput runs (default none)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample library (0)")
    parser.add_argument(
        "--mount-dir", default="/mnt/nzbdav", help="rclone mount dir in .rclonelink targets"
    )
    parser.add_argument(
        "--writable",
        action="store_true",
        help="turn NzbDav's 'Enforce Read-Only' off, so DELETE works in /content",
    )
    parser.add_argument("--access-log", action="store_true", help="log every request")
    parser.add_argument(
        "--latency-ms",
        type=float,
        default=0.0,
        metavar="MS",
        help="wait this long before answering each request, as NzbDav's own work does (0)",
    )
    return parser


def _delayed(seconds: float) -> Middleware:
    """A middleware that answers every request ``seconds`` late."""

    @web.middleware
    async def delayed(request: web.Request, handler: Handler) -> web.StreamResponse:
        await asyncio.sleep(seconds)
        return await handler(request)

    return delayed


async def _serve(options: argparse.Namespace) -> None:
    if options.ids < 0 or options.big_file_mib < 0:
        raise SystemExit("--ids and --big-file-mib must not be negative")
    library = Library.sample(options.ids, seed=options.seed, big_file_mib=options.big_file_mib)
    app = make_standin_app(
        library,
        user=None if options.no_auth else options.user,
        password=None if options.no_auth else options.password,
        mount_dir=options.mount_dir,
        enforce_readonly=not options.writable,
    )
    if options.latency_ms > 0:
        app.middlewares.append(_delayed(options.latency_ms / 1000))
    if options.access_log:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
    runner = web.AppRunner(app, access_log=access_logger if options.access_log else None)
    await runner.setup()
    host, port = options.listen
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError as error:
        await runner.cleanup()
        raise SystemExit(f"cannot listen on {host}:{port}: {error.strerror}") from error
    bound_port = runner.addresses[0][1]
    shown_host = f"[{host}]" if ":" in host else host
    print(f"nzbdav-standin ready at http://{shown_host}:{bound_port}/", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and serve until SIGINT or SIGTERM."""
    options = _parser().parse_args(argv)
    uvloop.run(_serve(options))


if __name__ == "__main__":
    main(sys.argv[1:])
