"""The splice fast path, end to end through the proxy on loopback sockets.

Every scenario runs twice, on the standard asyncio loop and on uvloop (which the
proxy uses in production), because the fast path borrows each loop's transports.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from yarl import URL

from shardproxy.backend import splice
from shardproxy.process.app import make_proxy_server
from shardproxy.process.server import make_runner
from tests.helpers.proxies import proxy_settings, run_on, running_proxy, until
from tests.helpers.raw_backend import raw_backend

UUID = "01234567-89ab-cdef-0123-456789abcdef"
SHARD_PATH = f"/.ids-s0/0/1/2/3/4/{UUID}"
BODY = random.Random(7).randbytes(8 << 20)
MiB = 1 << 20

pytestmark = pytest.mark.skipif(not splice.enabled, reason="splice(2) is Linux only")


@pytest.fixture
def splice_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """The byte counts of every splice(2) call made while the test runs."""
    calls: list[int] = []
    real_splice = os.splice

    def counting_splice(*args: Any, **kwargs: Any) -> int:
        moved = real_splice(*args, **kwargs)
        calls.append(moved)
        return moved

    monkeypatch.setattr(os, "splice", counting_splice)
    yield calls


class FileBackend:
    """An aiohttp backend serving ``BODY`` with Range support, noting who asked."""

    def __init__(self) -> None:
        self.peers: list[tuple[str, int]] = []
        self.aborted = asyncio.Event()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/.ids/0/1/2/3/4/{name}", self.serve)
        app.router.add_get("/endless/{name}", self.endless)
        return app

    async def serve(self, request: web.Request) -> web.StreamResponse:
        self.peers.append(request.transport.get_extra_info("peername")[:2])  # type: ignore[union-attr]
        asked = request.headers.get("Range")
        if asked is None or "whole" in request.query:
            return web.Response(body=BODY)
        first, _, last = asked.removeprefix("bytes=").partition("-")
        start, end = int(first), min(int(last), len(BODY) - 1)
        return web.Response(
            status=206,
            body=BODY[start : end + 1],
            headers={"Content-Range": f"bytes {start}-{end}/{len(BODY)}"},
        )

    async def endless(self, request: web.Request) -> web.StreamResponse:
        """256 MiB, far more than the sockets between here and the client can hold."""
        response = web.StreamResponse()
        response.content_length = 256 * MiB
        await response.prepare(request)
        block = BODY[:MiB]
        try:
            for _ in range(256):
                await response.write(block)
        except (ConnectionError, asyncio.CancelledError):
            self.aborted.set()
            raise
        return response


@asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[URL]:
    runner = web.AppRunner(app, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        host, port = runner.addresses[0][:2]
        yield URL(f"http://{host}:{port}")
    finally:
        await runner.cleanup()


@asynccontextmanager
async def proxied(backend_app: web.Application, **settings: Any) -> AsyncIterator[URL]:
    async with serving(backend_app) as backend, running_proxy(backend, **settings) as url:
        yield url


@asynccontextmanager
async def proxy_with_tiny_send_buffers(backend: URL) -> AsyncIterator[URL]:
    """The proxy, its client sockets holding 4 KiB in the kernel (accepted sockets
    inherit the listener's SO_SNDBUF), so what it writes waits in the transport."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    listener.bind(("127.0.0.1", 0))
    runner = make_runner(make_proxy_server(proxy_settings(backend)))
    await runner.setup()
    try:
        await web.SockSite(runner, listener).start()
        host, port = listener.getsockname()[:2]
        yield URL(f"http://{host}:{port}")
    finally:
        await runner.cleanup()


def open_pipes() -> int:
    """How many pipe descriptors this process holds."""
    count = 0
    for name in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{name}").startswith("pipe:")
        except OSError:
            continue
    return count


async def raw_get(
    url: URL, path: str, *, read: int, whole: bool = False, idle_first: float = 0.0
) -> bytes:
    """GET on a socket with a small receive buffer; read ``read`` bytes (or until closed).

    ``idle_first`` seconds pass before the first read, like a player busy elsewhere.
    """
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
    sock.setblocking(False)
    try:
        await loop.sock_connect(sock, (url.host, url.port))
        close = "Connection: close\r\n" if whole else ""
        request = f"GET {path} HTTP/1.1\r\nHost: x\r\n{close}\r\n"
        await loop.sock_sendall(sock, request.encode())
        await asyncio.sleep(idle_first)
        got = bytearray()
        while len(got) < read:
            chunk = await loop.sock_recv(sock, 65536)
            if not chunk:
                break
            got += chunk
        if whole:
            return bytes(got)
        # SO_LINGER 0: close with a reset, like a player that is killed.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        return bytes(got)
    finally:
        sock.close()


# --- the bytes ----------------------------------------------------------------------------


def test_whole_file_arrives_exactly_through_splice(loop_kind: str, splice_calls: list[int]) -> None:
    async def scenario() -> None:
        async with proxied(FileBackend().app()) as url, aiohttp.ClientSession() as client:
            async with client.get(url.with_path(SHARD_PATH)) as reply:
                body = await reply.read()
        assert reply.status == 200
        assert reply.headers["Content-Length"] == str(len(BODY))
        assert "Transfer-Encoding" not in reply.headers
        assert body == BODY

    run_on(loop_kind, scenario)
    assert sum(splice_calls) > 0


def test_slow_client_gets_the_buffered_head_before_the_spliced_rest(
    loop_kind: str, splice_calls: list[int]
) -> None:
    """What aiohttp read first still waits in the client transport when splicing starts."""

    async def scenario() -> None:
        async with (
            serving(FileBackend().app()) as backend,
            proxy_with_tiny_send_buffers(backend) as url,
        ):
            got = await raw_get(url, SHARD_PATH, read=len(BODY) + 1000, whole=True, idle_first=0.3)
        head, _, body = got.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        assert body == BODY

    run_on(loop_kind, scenario)
    assert sum(splice_calls) > 0


def test_range_arrives_exactly_through_splice(loop_kind: str, splice_calls: list[int]) -> None:
    start, end = 1_000_003, 7_000_001

    async def scenario() -> None:
        headers = {"Range": f"bytes={start}-{end}"}
        async with proxied(FileBackend().app()) as url, aiohttp.ClientSession() as client:
            async with client.get(url.with_path(SHARD_PATH), headers=headers) as reply:
                body = await reply.read()
        assert reply.status == 206
        assert reply.headers["Content-Range"] == f"bytes {start}-{end}/{len(BODY)}"
        assert body == BODY[start : end + 1]

    run_on(loop_kind, scenario)
    assert sum(splice_calls) > 0


def test_whole_file_answer_to_a_range_is_cut_at_the_range(
    loop_kind: str, splice_calls: list[int]
) -> None:
    """NzbDav answers bytes=0-N with the whole file; only N+1 bytes may pass."""
    last = 3 * MiB + 17

    async def scenario() -> None:
        backend = FileBackend()
        headers = {"Range": f"bytes=0-{last}"}
        path = URL(SHARD_PATH).with_query("whole")
        async with proxied(backend.app()) as url, aiohttp.ClientSession() as client:
            for _ in range(2):
                async with client.get(url.join(path), headers=headers) as reply:
                    body = await reply.read()
                assert reply.status == 206
                assert body == BODY[: last + 1]
        # The backend's body was left unread, so its connection could not be reused.
        assert len(set(backend.peers)) == 2

    run_on(loop_kind, scenario)
    assert sum(splice_calls) > 0


def test_bodies_under_the_splice_size_are_copied_not_spliced(
    loop_kind: str, splice_calls: list[int]
) -> None:
    # Over the size answered in one write (64 KiB), so the copying loop runs.
    async def scenario() -> None:
        headers = {"Range": "bytes=10-200009"}
        async with proxied(FileBackend().app()) as url, aiohttp.ClientSession() as client:
            async with client.get(url.with_path(SHARD_PATH), headers=headers) as reply:
                assert await reply.read() == BODY[10:200010]

    run_on(loop_kind, scenario)
    assert splice_calls == []


# --- keep-alive -----------------------------------------------------------------------------


def test_both_connections_are_reused_after_a_splice(
    loop_kind: str, splice_calls: list[int]
) -> None:
    async def scenario() -> None:
        backend = FileBackend()
        new_connections: list[object] = []
        tracing = aiohttp.TraceConfig()

        async def on_new(*args: object) -> None:
            new_connections.append(args)

        tracing.on_connection_create_end.append(on_new)
        async with (
            proxied(backend.app()) as url,
            aiohttp.ClientSession(trace_configs=[tracing]) as client,
        ):
            for start in (0, 5 * MiB, 2 * MiB):
                headers = {"Range": f"bytes={start}-{start + 3 * MiB - 1}"}
                async with client.get(url.with_path(SHARD_PATH), headers=headers) as reply:
                    assert await reply.read() == BODY[start : start + 3 * MiB]
        assert len(new_connections) == 1
        assert len(backend.peers) == 3
        assert len(set(backend.peers)) == 1

    run_on(loop_kind, scenario)
    assert sum(splice_calls) > 0


# --- aborts ----------------------------------------------------------------------------------


def test_client_hanging_up_mid_splice_closes_the_backend_and_leaks_nothing(
    loop_kind: str, splice_calls: list[int]
) -> None:
    async def scenario() -> None:
        backend = FileBackend()
        pipes_before = open_pipes()
        async with proxied(backend.app()) as url:
            got = await raw_get(url, f"/endless/{UUID}", read=3 * MiB)
            assert got.startswith(b"HTTP/1.1 200")
            await until(backend.aborted.is_set, "the backend to see the proxy hang up")
            await until(lambda: open_pipes() == pipes_before, "the splice pipe to be closed")

    run_on(loop_kind, scenario)
    assert sum(splice_calls) > 0


@pytest.mark.parametrize("how", ["close", "reset"])
def test_backend_breaking_off_mid_splice_cuts_the_client_short(
    loop_kind: str, how: str, splice_calls: list[int]
) -> None:
    sent = 3 * MiB

    async def break_off(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(BODY))
        writer.write(BODY[:sent])
        await writer.drain()
        if how == "reset":
            writer.transport.abort()

    async def scenario() -> None:
        pipes_before = open_pipes()
        async with raw_backend(break_off) as backend, running_proxy(backend) as url:
            async with aiohttp.ClientSession() as client:
                async with client.get(url.with_path(SHARD_PATH)) as reply:
                    assert reply.status == 200
                    got = b""
                    with pytest.raises(aiohttp.ClientPayloadError):
                        async for chunk in reply.content.iter_any():
                            got += chunk
            assert BODY.startswith(got)
            assert len(got) <= sent
            await until(lambda: open_pipes() == pipes_before, "the splice pipe to be closed")

    run_on(loop_kind, scenario)
    if how == "close":
        # A reset may throw away what was in flight before the splice could see it.
        assert sum(splice_calls) > 0


def test_backend_falling_silent_mid_splice_times_out(
    loop_kind: str, splice_calls: list[int]
) -> None:
    async def fall_silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(BODY))
        writer.write(BODY[: 2 * MiB])
        await writer.drain()
        await reader.read()  # until the proxy gives up and closes

    async def scenario() -> None:
        async with raw_backend(fall_silent) as backend:
            async with running_proxy(backend, read_timeout=0.4) as url:
                async with aiohttp.ClientSession() as client:
                    async with client.get(url.with_path(SHARD_PATH)) as reply:
                        with pytest.raises(aiohttp.ClientPayloadError):
                            await reply.read()

    run_on(loop_kind, scenario)
    assert sum(splice_calls) > 0


# --- set-up failures ---------------------------------------------------------------------

# Run in a child process with a low descriptor limit: the splice set-up finds `free`
# descriptors left (0: the first dup fails, 1: the second, 2-3: the pipe) and must close
# what it opened and cut the client off, so it neither hangs nor leaks.
EMFILE_SCENARIO = """
import asyncio, json, os, resource, socket, sys
from tests.helpers.proxies import running_proxy
from tests.integration.test_splice import BODY, SHARD_PATH, FileBackend, serving

def is_open(fd):
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True

def open_fds():
    # Without the descriptor the listing itself used.
    return {fd for fd in map(int, os.listdir("/proc/self/fd")) if is_open(fd)}

def leave_free(free):
    used, candidate, holes = open_fds(), 0, 0
    while True:
        if candidate not in used:
            if holes == free:
                break
            holes += 1
        candidate += 1
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (candidate, hard))
    return soft, hard

async def exchange(sock, request, until_closed):
    loop = asyncio.get_running_loop()
    await loop.sock_sendall(sock, request)
    got = b""
    async with asyncio.timeout(10):
        while True:
            chunk = await loop.sock_recv(sock, 1 << 20)
            if not chunk:
                return got, True
            got += chunk
            if not until_closed and b"\\r\\n\\r\\n" in got:
                head, _, body = got.partition(b"\\r\\n\\r\\n")
                if len(body) == 10:
                    return got, False

async def main(free):
    backend = FileBackend()
    async with serving(backend.app()) as origin, running_proxy(origin) as url:
        loop = asyncio.get_running_loop()
        sock = socket.socket()
        sock.setblocking(False)
        await loop.sock_connect(sock, (url.host, url.port))
        small = f"GET {SHARD_PATH} HTTP/1.1\\r\\nHost: x\\r\\nRange: bytes=0-9\\r\\n\\r\\n"
        await exchange(sock, small.encode(), until_closed=False)
        before = len(open_fds())
        limits = leave_free(free)
        big = f"GET {SHARD_PATH} HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n".encode()
        got, closed = await exchange(sock, big, until_closed=True)
        resource.setrlimit(resource.RLIMIT_NOFILE, limits)
        sock.close()
        # The proxy's two sockets and the backend's end of its connection go; nothing else.
        for _ in range(500):
            if len(open_fds()) <= before - 3:
                break
            await asyncio.sleep(0.01)
        print(json.dumps({"closed": closed, "body": len(got.partition(b"\\r\\n\\r\\n")[2]),
                          "left_over": len(open_fds()) - (before - 3)}))

asyncio.run(main(int(sys.argv[1])))
"""


@pytest.mark.parametrize("free", [0, 1, 2, 3])
def test_no_descriptors_for_the_splice_cuts_the_client_and_leaks_nothing(free: int) -> None:
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", EMFILE_SCENARIO, str(free)],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["closed"], "the client connection was not closed"
    assert result["body"] < len(BODY), "the client got a whole body through a failed splice"
    assert result["left_over"] <= 0, f"{result['left_over']} descriptors leaked"
