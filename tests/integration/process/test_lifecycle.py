"""`shardproxy serve` as a process: workers that die with it, replaced workers, a bounded
shutdown, SIGHUP. Real processes, real signals; the log and exit status are the evidence."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from shardproxy.tools.ports import free_port
from tests.helpers.processes import running, serve_argv

STARTED_RE = re.compile(r"started worker (\d+)")
# Generous bounds: the machine is shared; these only catch "never".
PATIENCE = 60.0


async def wait_for_log(log: Path, pattern: str, *, count: int = 1) -> list[str]:
    """Poll ``log`` until ``pattern`` matched ``count`` times; return the matches' groups."""
    async with asyncio.timeout(PATIENCE):
        while True:
            found = re.findall(pattern, log.read_text())
            if len(found) >= count:
                return found
            await asyncio.sleep(0.05)


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
            sock.listen()
        except OSError:
            return False
        return True


def listening_inode(port: int) -> str:
    """The socket inode listening on ``port`` on 127.0.0.1, from /proc/net/tcp."""
    wanted = f"0100007F:{port:04X}"
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == wanted and fields[3] == "0A":  # 0A: LISTEN
            return fields[9]
    raise AssertionError(f"nothing listens on 127.0.0.1:{port}")


def socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[len("socket:[") : -1])
    return inodes


@contextlib.asynccontextmanager
async def endless_backend() -> AsyncIterator[str]:
    """A backend whose every GET streams forever, slowly: a stream that never finishes."""

    async def forever(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        while True:
            await response.write(b"x" * 4096)
            await asyncio.sleep(0.05)

    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/slow", forever)
    app.router.add_route("*", "/{path:.*}", ok)
    server = TestServer(app)
    await server.start_server()
    try:
        yield str(server.make_url("/").origin())
    finally:
        await server.close()


async def test_workers_hold_no_rc_socket_and_die_with_their_parent(tmp_path: Path) -> None:
    port, rc_port = free_port(), free_port()
    log = tmp_path / "serve.log"
    argv = serve_argv("http://127.0.0.1:9", port, tmp_path, "--workers", "3")
    argv += ["--rc-listen", f"127.0.0.1:{rc_port}"]
    async with running(argv, port=port, log=log) as parent:
        workers = [int(pid) for pid in await wait_for_log(log, STARTED_RE.pattern, count=2)]
        rc_inode = listening_inode(rc_port)
        assert rc_inode in socket_inodes(parent.pid)
        for worker in workers:
            assert rc_inode not in socket_inodes(worker), f"worker {worker} holds the RC socket"
        parent.kill()
        await parent.wait()
        async with asyncio.timeout(PATIENCE):
            while True:
                if not any(alive(w) for w in workers) and port_is_free(port):
                    break
                await asyncio.sleep(0.05)
        assert port_is_free(rc_port)


async def test_a_killed_worker_is_replaced_and_logged(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "serve.log"
    argv = serve_argv("http://127.0.0.1:9", port, tmp_path, "--workers", "2")
    async with running(argv, port=port, log=log):
        (first,) = [int(pid) for pid in await wait_for_log(log, STARTED_RE.pattern)]
        os.kill(first, signal.SIGKILL)
        await wait_for_log(log, rf"worker {first} ended \(killed by SIGKILL\)")
        started = [int(pid) for pid in await wait_for_log(log, STARTED_RE.pattern, count=2)]
        replacement = started[1]
        assert replacement != first and alive(replacement)


async def test_sigterm_cuts_a_stream_after_the_grace_and_says_so(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "serve.log"
    async with endless_backend() as backend:
        argv = serve_argv(backend, port, tmp_path, "--shutdown-grace", "1")
        async with running(argv, port=port, log=log) as process, aiohttp.ClientSession() as client:
            async with client.get(f"http://127.0.0.1:{port}/slow") as reply:
                assert reply.status == 200
                assert await reply.content.readexactly(4096) == b"x" * 4096
                process.send_signal(signal.SIGTERM)
                async with asyncio.timeout(PATIENCE):
                    assert await process.wait() == 0
                # The stream was cut, not ended: reading on fails or stops short.
                with contextlib.suppress(aiohttp.ClientPayloadError):
                    await reply.content.read()
            text = log.read_text()
    assert "1 active request(s) get up to 1 s to finish" in text
    assert "shutdown grace of 1 s (shutdown_grace) ran out: cut 1 active request(s)" in text


async def test_sighup_is_logged_and_serving_goes_on(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "serve.log"
    async with endless_backend() as backend:
        argv = serve_argv(backend, port, tmp_path)
        async with running(argv, port=port, log=log) as process:
            process.send_signal(signal.SIGHUP)
            await wait_for_log(log, "SIGHUP received")
            async with (
                aiohttp.ClientSession() as client,
                client.get(f"http://127.0.0.1:{port}/x") as reply,
            ):
                assert reply.status == 200 and await reply.text() == "ok"
            assert process.returncode is None
