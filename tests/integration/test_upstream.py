"""The proxy's own backend client against raw backends that misbehave on purpose.

Each backend is a loopback TCP server whose every connection runs a script; the
scripts answer with exact bytes, fall silent, send too much or too little, or talk
when nobody asked. Every scenario runs on the standard loop and on uvloop.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest

from shardproxy.backend.connection import READ_BUFFER
from shardproxy.backend.pool import BackendPool
from shardproxy.backend.reply import BackendError, BodyError, BodyTimeout
from tests.helpers.proxies import run_on, until

Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class RawBackend:
    """A loopback server running ``script`` on each connection, noting what it saw."""

    def __init__(self, script: Callable[[RawBackend], Script]) -> None:
        self.script = script(self)
        self.connections = 0
        self.heads: list[bytes] = []
        self.writers: list[asyncio.StreamWriter] = []

    async def read_head(self, reader: asyncio.StreamReader) -> bytes:
        """The next request head on a connection (b"" when it closed)."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return b""
        self.heads.append(head)
        return head

    async def on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        try:
            await self.script(reader, writer)
        except ConnectionError:
            pass
        finally:
            writer.close()


@asynccontextmanager
async def backend_pool(
    script: Callable[[RawBackend], Script], read_timeout: float = 10.0
) -> AsyncIterator[tuple[RawBackend, BackendPool]]:
    """A raw backend running ``script(backend)`` and a pool to it."""
    backend = RawBackend(script)
    server = await asyncio.start_server(backend.on_connect, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    pool = BackendPool("127.0.0.1", port, connect_timeout=2.0, read_timeout=read_timeout)
    try:
        yield backend, pool
    finally:
        pool.close()
        server.close()


def replies(*answers: bytes) -> Callable[[RawBackend], Script]:
    """A backend answering each request on a connection with the next of ``answers``."""

    def script(backend: RawBackend) -> Script:
        async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            for answer in answers:
                if not await backend.read_head(reader):
                    return
                writer.write(answer)
                await writer.drain()
            await reader.read()

        return run

    return script


def answer_once(data: bytes, *, hold: bool = False) -> Callable[[RawBackend], Script]:
    """A backend answering a connection's first request with ``data``, then closing it
    (or, with ``hold``, staying silent until the client closes)."""

    def script(backend: RawBackend) -> Script:
        async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await backend.read_head(reader)
            writer.write(data)
            await writer.drain()
            if hold:
                await reader.read()

        return run

    return script


async def get(pool: BackendPool, path: str = "/f", method: str = "GET") -> tuple[int, bytes]:
    """One request; its status and whole body; the connection handed back."""
    response = await pool.request(method, path, [("Host", "backend")])
    body = await response.read_all()
    response.release()
    return response.status, body


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
OK2 = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nworld"


# --- framing ----------------------------------------------------------------------------


def test_content_length_bodies_reuse_one_connection(loop_kind: str) -> None:
    async def scenario() -> None:
        async with backend_pool(replies(OK, OK2)) as (backend, pool):
            assert await get(pool) == (200, b"hello")
            assert await get(pool) == (200, b"world")
        assert backend.connections == 1
        assert backend.heads[0].startswith(b"GET /f HTTP/1.1\r\nHost: backend\r\n")

    run_on(loop_kind, scenario)


def test_chunked_body_is_decoded_and_the_connection_reused(loop_kind: str) -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    )

    async def scenario() -> None:
        async with backend_pool(replies(chunked, OK)) as (backend, pool):
            assert await get(pool) == (200, b"abcde")
            assert await get(pool) == (200, b"hello")
        assert backend.connections == 1

    run_on(loop_kind, scenario)


def test_close_delimited_body_runs_to_the_end_and_is_not_reused(loop_kind: str) -> None:
    script = answer_once(b"HTTP/1.1 200 OK\r\n\r\nuntil the end")

    async def scenario() -> None:
        async with backend_pool(script) as (backend, pool):
            assert await get(pool) == (200, b"until the end")
            assert await get(pool) == (200, b"until the end")
        assert backend.connections == 2

    run_on(loop_kind, scenario)


def test_head_reply_has_no_body_and_the_connection_is_reused(loop_kind: str) -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"

    async def scenario() -> None:
        async with backend_pool(replies(head, OK)) as (backend, pool):
            response = await pool.request("HEAD", "/f", [])
            assert response.content_length == 1000
            assert await response.read_all() == b""
            response.release()
            assert await get(pool) == (200, b"hello")
        assert backend.connections == 1

    run_on(loop_kind, scenario)


@pytest.mark.parametrize("status", [b"204 No Content", b"304 Not Modified"])
def test_204_and_304_have_no_body(loop_kind: str, status: bytes) -> None:
    async def scenario() -> None:
        async with backend_pool(replies(b"HTTP/1.1 %s\r\n\r\n" % status, OK)) as (backend, pool):
            assert await get(pool) == (int(status[:3]), b"")
            assert await get(pool) == (200, b"hello")
        assert backend.connections == 1

    run_on(loop_kind, scenario)


def test_interim_1xx_replies_are_skipped(loop_kind: str) -> None:
    interim = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\n\r\n" + OK

    async def scenario() -> None:
        async with backend_pool(replies(interim, OK2)) as (backend, pool):
            assert await get(pool) == (200, b"hello")
            assert await get(pool) == (200, b"world")
        assert backend.connections == 1

    run_on(loop_kind, scenario)


def test_streamed_request_body_goes_chunked_without_a_length(loop_kind: str) -> None:
    async def body() -> AsyncIterator[bytes]:
        yield b"abc"
        yield b"defg"

    def script(backend: RawBackend) -> Script:
        async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await backend.read_head(reader)
            backend.heads.append(await reader.readuntil(b"0\r\n\r\n"))
            writer.write(OK)
            await writer.drain()

        return run

    async def scenario() -> None:
        async with backend_pool(script) as (backend, pool):
            response = await pool.request("PUT", "/f", [], body())
            assert await response.read_all() == b"hello"
        assert b"transfer-encoding: chunked" in backend.heads[0].lower()
        assert backend.heads[1] == b"3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n"

    run_on(loop_kind, scenario)


def test_streamed_request_body_with_a_known_length_goes_as_is(loop_kind: str) -> None:
    async def body() -> AsyncIterator[bytes]:
        yield b"abc"
        yield b"defg"

    def script(backend: RawBackend) -> Script:
        async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await backend.read_head(reader)
            backend.heads.append(await reader.readexactly(7))
            writer.write(OK)
            await writer.drain()

        return run

    async def scenario() -> None:
        async with backend_pool(script) as (backend, pool):
            response = await pool.request("PUT", "/f", [], body(), body_length=7)
            assert await response.read_all() == b"hello"
        assert b"content-length: 7\r\n" in backend.heads[0].lower()
        assert backend.heads[1] == b"abcdefg"

    run_on(loop_kind, scenario)


def test_header_values_pass_as_bytes(loop_kind: str) -> None:
    async def scenario() -> None:
        async with backend_pool(replies(OK)) as (backend, pool):
            response = await pool.request("GET", "/f", [("X-Name", "caf\xe9")])
            await response.read_all()
        assert b"X-Name: caf\xe9\r\n" in backend.heads[0]

    run_on(loop_kind, scenario)


# --- a connection out of step ------------------------------------------------------------


def test_bytes_on_an_idle_connection_close_it_and_never_answer_the_next_request(
    loop_kind: str,
) -> None:
    pooled = asyncio.Event()

    def script(backend: RawBackend) -> Script:
        async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            head = await backend.read_head(reader)
            writer.write(OK)
            await writer.drain()
            if backend.connections == 1:
                await pooled.wait()
                # Unasked: a reply nobody requested, sent while the connection idles.
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nWRONG")
                await writer.drain()
            while head:
                head = await backend.read_head(reader)
                if head:
                    writer.write(OK2)
                    await writer.drain()

        return run

    async def scenario() -> None:
        async with backend_pool(script) as (backend, pool):
            assert await get(pool) == (200, b"hello")
            assert pool.idle_count == 1
            pooled.set()
            await until(lambda: pool.idle_count == 0, "the spoiled connection to be dropped")
            assert await get(pool) == (200, b"hello")
        assert backend.connections == 2

    run_on(loop_kind, scenario)


def test_overlong_body_is_cut_at_its_length_and_the_connection_dropped(loop_kind: str) -> None:
    overlong = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 200 OK\r\n"

    async def scenario() -> None:
        async with backend_pool(replies(overlong, OK2)) as (backend, pool):
            assert await get(pool) == (200, b"hello")
            assert await get(pool) == (200, b"hello")
        assert backend.connections == 2

    run_on(loop_kind, scenario)


def test_read_now_takes_a_body_that_has_arrived_and_leaves_the_rest(loop_kind: str) -> None:
    async def scenario() -> None:
        async with backend_pool(replies(OK, OK2)) as (backend, pool):
            response = await pool.request("GET", "/f", [])
            await until(lambda: response.unread == 5, "the body to arrive")
            assert response.read_now(6) is None  # more than has arrived: nothing taken
            assert response.read_now(3) == b"hel"
            assert response.unread == 2
            assert await response.read_all() == b"lo"
            response.release()
            # A body read partly by read_now and the rest after is a clean end: reused.
            assert await get(pool) == (200, b"world")
        assert backend.connections == 1

    run_on(loop_kind, scenario)


def test_head_reply_followed_by_body_bytes_drops_the_connection(loop_kind: str) -> None:
    head_with_body = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"

    async def scenario() -> None:
        async with backend_pool(replies(head_with_body, OK2)) as (backend, pool):
            assert await get(pool, method="HEAD") == (200, b"")
            await until(lambda: pool.idle_count == 0, "the connection to be dropped")
            assert await get(pool, method="HEAD") == (200, b"")
        assert backend.connections == 2

    run_on(loop_kind, scenario)


def test_short_body_is_an_error_not_a_complete_reply(loop_kind: str) -> None:
    short = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello"

    script = answer_once(short)

    async def scenario() -> None:
        async with backend_pool(script) as (_, pool):
            response = await pool.request("GET", "/f", [])
            with pytest.raises(BodyError, match="closed the connection"):
                await response.read_all()
            response.release()
            assert pool.idle_count == 0

    run_on(loop_kind, scenario)


def test_reset_mid_body_is_an_error(loop_kind: str) -> None:
    def script(backend: RawBackend) -> Script:
        async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await backend.read_head(reader)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nhello")
            await writer.drain()
            await asyncio.sleep(0.05)
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
            writer.transport.abort()

        return run

    async def scenario() -> None:
        async with backend_pool(script) as (_, pool):
            response = await pool.request("GET", "/f", [])
            with pytest.raises(BodyError):
                await response.read_all()

    run_on(loop_kind, scenario)


def test_malformed_reply_is_a_502(loop_kind: str) -> None:
    async def scenario() -> None:
        async with backend_pool(replies(b"HTTP/1.1 abc nonsense\r\n\r\n")) as (_, pool):
            with pytest.raises(BackendError, match="malformed") as caught:
                await pool.request("GET", "/f", [])
        assert caught.value.status == 502

    run_on(loop_kind, scenario)


# --- stalls ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sent", [b"", b"HTTP/1.1 200", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"]
)
def test_stall_before_the_head_ends_is_a_504(loop_kind: str, sent: bytes) -> None:
    script = answer_once(sent, hold=True)

    async def scenario() -> None:
        async with backend_pool(script, read_timeout=0.3) as (_, pool):
            with pytest.raises(BackendError, match=r"did not answer within 0\.3s") as caught:
                await pool.request("GET", "/f", [])
        assert caught.value.status == 504

    run_on(loop_kind, scenario)


def answers_late(*steps: tuple[float, bytes]) -> Callable[[RawBackend], Script]:
    """A backend answering its first connection's requests in turn, each ``(delay,
    answer)`` after that many seconds, and never answering any request after those."""

    def script(backend: RawBackend) -> Script:
        async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            # Later connections (the pool's retry of a request on a new one) stay silent.
            for delay, answer in steps if backend.connections == 1 else ():
                if not await backend.read_head(reader):
                    return
                await asyncio.sleep(delay)
                writer.write(answer)
                await writer.drain()
            await reader.read()

        return run

    return script


def test_stall_on_a_reused_connection_is_a_504(loop_kind: str) -> None:
    # The connection's one head timer was armed for the first request; it must still
    # time out the second.
    async def scenario() -> None:
        async with backend_pool(answers_late((0.0, OK)), read_timeout=0.3) as (backend, pool):
            assert await get(pool) == (200, b"hello")
            with pytest.raises(BackendError, match=r"did not answer within 0\.3s"):
                await pool.request("GET", "/f", [])
        # Sent once: a timed-out request is not asked again on a new connection.
        assert backend.connections == 1

    run_on(loop_kind, scenario)


def test_a_later_request_gets_its_own_read_timeout(loop_kind: str) -> None:
    # The second request goes out 1.2 s after the first and is answered 1.4 s later:
    # past the first request's 2 s deadline, well within its own.
    async def scenario() -> None:
        script = answers_late((0.0, OK), (1.4, OK2))
        async with backend_pool(script, read_timeout=2.0) as (backend, pool):
            assert await get(pool) == (200, b"hello")
            await asyncio.sleep(1.2)
            assert await get(pool) == (200, b"world")
        assert backend.connections == 1

    run_on(loop_kind, scenario)


@pytest.mark.parametrize(
    "sent",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
    ],
)
def test_stall_mid_body_times_out(loop_kind: str, sent: bytes) -> None:
    script = answer_once(sent, hold=True)

    async def scenario() -> None:
        async with backend_pool(script, read_timeout=0.3) as (_, pool):
            response = await pool.request("GET", "/f", [])
            with pytest.raises(BodyTimeout):
                await response.read_all()

    run_on(loop_kind, scenario)


def test_backend_that_stops_reading_the_request_body_is_a_502(loop_kind: str) -> None:
    async def endless() -> AsyncIterator[bytes]:
        block = b"x" * 65536
        for _ in range(100_000):
            yield block

    def script(backend: RawBackend) -> Script:
        async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await backend.read_head(reader)
            await asyncio.sleep(30)

        return run

    async def scenario() -> None:
        async with backend_pool(script, read_timeout=0.3) as (_, pool):
            with pytest.raises(BackendError, match="stopped reading"):
                await pool.request("PUT", "/f", [], endless())

    run_on(loop_kind, scenario)


def test_unreachable_backend_is_a_502() -> None:
    async def scenario() -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        pool = BackendPool("127.0.0.1", port, connect_timeout=2.0, read_timeout=2.0)
        with pytest.raises(BackendError, match="is unreachable") as caught:
            await pool.request("GET", "/", [])
        assert caught.value.status == 502

    run_on("asyncio", scenario)


# --- flow control ------------------------------------------------------------------------


def test_a_consumer_that_reads_nothing_holds_the_backend_back(loop_kind: str) -> None:
    total = 64 << 20
    backend_blocked = asyncio.Event()

    def script(backend: RawBackend) -> Script:
        async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await backend.read_head(reader)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % total)
            block = b"y" * (1 << 20)
            for _ in range(total >> 20):
                writer.write(block)
                # Let the client read what it will; a paused reader leaves it here.
                await asyncio.sleep(0.001)
                if writer.transport.get_write_buffer_size() > 4 << 20:
                    backend_blocked.set()
                    await writer.drain()

        return run

    async def scenario() -> None:
        async with backend_pool(script) as (_, pool):
            response = await pool.request("GET", "/f", [])
            await asyncio.wait_for(backend_blocked.wait(), timeout=10)
            first = await response.read()
            # What was read ahead is bounded by the buffer and one socket read.
            assert len(first) <= READ_BUFFER + (1 << 20)
            got = len(first)
            while data := await response.read():
                got += len(data)
            assert got == total

    run_on(loop_kind, scenario)


def test_a_reused_connection_the_backend_closed_is_retried_on_a_new_one(loop_kind: str) -> None:
    # Keep-alive promised, then closed without a word, as idle timeouts do.
    script = answer_once(OK)

    async def scenario() -> None:
        async with backend_pool(script) as (backend, pool):
            assert await get(pool) == (200, b"hello")
            assert await get(pool) == (200, b"hello")
        assert backend.connections == 2

    run_on(loop_kind, scenario)


def test_idle_connections_are_closed_after_the_idle_timeout(loop_kind: str) -> None:
    async def scenario() -> None:
        async with backend_pool(replies(OK, OK2)) as (backend, pool):
            pool.idle_timeout = 0.2
            assert await get(pool) == (200, b"hello")
            assert pool.idle_count == 1
            await until(lambda: pool.idle_count == 0, "the idle connection to be closed")
            assert await get(pool) == (200, b"hello")
        assert backend.connections == 2

    run_on(loop_kind, scenario)
