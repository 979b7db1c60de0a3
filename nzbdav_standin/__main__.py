"""Run the stand-in on a sample library: ``python -m nzbdav_standin --listen 127.0.0.1:8080``.

Prints one line, ``nzbdav-standin ready at http://HOST:PORT/``, once it is
listening (with the real port when asked for port 0), then serves until
interrupted. On SIGUSR1 it prints one more line: the requests it has received so
far by method and the bytes its GETs sent, as JSON
(``{"GET": 12, "PROPFIND": 40, "bytes read": 1048576}``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys

import uvloop
from aiohttp import web
from aiohttp.log import access_logger
from aiohttp.typedefs import Handler, Middleware

from nzbdav_standin.catalog import Library
from nzbdav_standin.generated import build_generated, parse_kib_range
from nzbdav_standin.latency import Latency, parse_milliseconds
from nzbdav_standin.server import READ_LOG, REQUEST_LOG, make_standin_app


def _listen_address(text: str) -> tuple[str, int]:
    host, separator, port = text.rpartition(":")
    if not separator or not port.isdigit() or not host:
        raise argparse.ArgumentTypeError(f"--listen wants HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


def _kib_range(text: str) -> tuple[int, int]:
    try:
        return parse_kib_range(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _milliseconds(text: str) -> tuple[float, float]:
    try:
        return parse_milliseconds(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


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
        "--items",
        type=int,
        metavar="N",
        help="serve a generated library of N episodes and films instead of the sample "
        "(nzbdav_standin.generated; --ids and --big-file-mib are then ignored)",
    )
    parser.add_argument(
        "--item-kib",
        type=_kib_range,
        default=(64, 1024),
        metavar="MIN-MAX",
        help="sizes of the generated items in KiB (default 64-1024)",
    )
    parser.add_argument(
        "--propfind-ms",
        type=float,
        default=0.0,
        metavar="MS",
        help="wait this long before answering each PROPFIND, as NzbDav's database does",
    )
    parser.add_argument(
        "--first-byte-ms",
        type=_milliseconds,
        default=(0.0, 0.0),
        metavar="MS|LOW-HIGH",
        help="wait this long (or a time drawn in the range) before a GET's first byte, "
        "as a Usenet fetch does",
    )
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
    if options.ids < 0 or options.big_file_mib < 0 or (options.items or 0) < 0:
        raise SystemExit("--ids, --items and --big-file-mib must not be negative")
    if options.propfind_ms < 0:
        raise SystemExit("--propfind-ms must not be negative")
    if options.items is not None:
        library = Library()
        build_generated(library, options.items, seed=options.seed, sizes=options.item_kib)
    else:
        library = Library.sample(options.ids, seed=options.seed, big_file_mib=options.big_file_mib)
    latency = Latency(options.propfind_ms / 1000, options.first_byte_ms, seed=options.seed)
    app = make_standin_app(
        library,
        user=None if options.no_auth else options.user,
        password=None if options.no_auth else options.password,
        mount_dir=options.mount_dir,
        enforce_readonly=not options.writable,
        latency=latency,
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
    with contextlib.suppress(NotImplementedError):
        loop.add_signal_handler(signal.SIGUSR1, _print_counts, app)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def _print_counts(app: web.Application) -> None:
    counts: dict[str, int] = {}
    for record in app[REQUEST_LOG]:
        counts[record.method] = counts.get(record.method, 0) + 1
    counts["bytes read"] = sum(read.sent for read in app[READ_LOG])
    print(json.dumps(counts, sort_keys=True), flush=True)


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and serve until SIGINT or SIGTERM."""
    options = _parser().parse_args(argv)
    uvloop.run(_serve(options))


if __name__ == "__main__":
    main(sys.argv[1:])
