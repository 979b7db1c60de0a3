"""The proxy facing raw clients that misbehave: slow or huge heads, stalled bodies and
readers, idle connections; and request forms a plain client library never sends."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from tests.helpers.proxies import RunningProxy
from tests.helpers.raw_backend import raw_backend

LIMITS = {"header_timeout": 0.5, "body_timeout": 0.5, "send_timeout": 0.5}
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


@asynccontextmanager
async def raw_client(host: str, port: int, rcvbuf: int = 0) -> AsyncIterator[socket.socket]:
    """A non-blocking client socket connected to the proxy."""
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.setblocking(False)
    try:
        await loop.sock_connect(sock, (host, port))
        yield sock
    finally:
        sock.close()


async def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the proxy sends until it closes the connection (at most 10 s)."""
    loop = asyncio.get_running_loop()
    got = bytearray()
    async with asyncio.timeout(10):
        while chunk := await loop.sock_recv(sock, 65536):
            got += chunk
    return bytes(got)


async def answer_ok(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(OK)
    await writer.drain()


async def exchange(
    proxy: RunningProxy, parts: list[bytes], heads: list[bytes], **settings: float
) -> bytes:
    """Send ``parts`` to a proxy (in front of a backend answering OK) on one raw
    connection; everything it sends back until it closes."""
    async with raw_backend(answer_ok, heads) as backend, proxy(backend, **settings) as url:
        assert url.host is not None and url.port is not None
        async with raw_client(url.host, url.port) as sock:
            for part in parts:
                await asyncio.get_running_loop().sock_sendall(sock, part)
            return await read_until_closed(sock)


async def test_huge_head_is_refused_with_431_and_never_forwarded(proxy: RunningProxy) -> None:
    heads: list[bytes] = []
    pad = b"X-Pad: " + b"a" * 8000 + b"\r\n"
    parts = [b"GET /content/x HTTP/1.1\r\nHost: x\r\n", *[pad] * 4]
    reply = await exchange(proxy, parts, heads, header_max_size=16384)
    assert reply.startswith(b"HTTP/1.1 431 ")
    assert b"header_max_size" in reply
    assert heads == []


async def test_head_just_under_the_limit_is_served(proxy: RunningProxy) -> None:
    start = b"GET /content/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
    # Each line within aiohttp's 8190 bytes, as nginx's buffers want them too.
    pad = b"X-Pad-1: " + b"a" * 6000 + b"\r\n" + b"X-Pad-2: " + b"a" * 6000 + b"\r\n"
    pad += b"X-Pad-3: " + b"a" * (16384 - len(start) - len(pad) - 13) + b"\r\n\r\n"
    reply = await exchange(proxy, [start + pad], [], header_max_size=16384)
    assert len(start + pad) == 16384
    assert reply.startswith(b"HTTP/1.1 200 ")
    assert reply.endswith(b"\r\n\r\nok")


async def test_whole_head_one_byte_over_the_limit_in_one_write_is_refused(
    proxy: RunningProxy,
) -> None:
    # The same head as above plus one byte, complete (blank line and all) in one write:
    # the common one-read case is checked against the limit too.
    heads: list[bytes] = []
    start = b"GET /content/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
    pad = b"X-Pad-1: " + b"a" * 6000 + b"\r\n" + b"X-Pad-2: " + b"a" * 6000 + b"\r\n"
    pad += b"X-Pad-3: " + b"a" * (16385 - len(start) - len(pad) - 13) + b"\r\n\r\n"
    assert len(start + pad) == 16385
    reply = await exchange(proxy, [start + pad], heads, header_max_size=16384)
    assert reply.startswith(b"HTTP/1.1 431 ")
    assert heads == []


async def test_slow_head_is_dropped_with_408(proxy: RunningProxy) -> None:
    heads: list[bytes] = []
    reply = await exchange(proxy, [b"GET /content/x HTTP/1.1\r\nHo"], heads, **LIMITS)
    assert reply.startswith(b"HTTP/1.1 408 ")
    assert b"header_timeout" in reply
    assert heads == []


async def test_connection_that_sends_nothing_is_closed(proxy: RunningProxy) -> None:
    assert await exchange(proxy, [], [], **LIMITS) == b""


async def test_idle_keepalive_connection_is_closed(proxy: RunningProxy) -> None:
    request = b"GET /content/x HTTP/1.1\r\nHost: x\r\n\r\n"
    reply = await exchange(proxy, [request], [], keepalive_timeout=0.5)
    assert reply.startswith(b"HTTP/1.1 200 ")
    assert reply.endswith(b"\r\n\r\nok")


async def test_stalled_request_body_is_408_and_the_backend_let_go(proxy: RunningProxy) -> None:
    backend_saw_close = asyncio.Event()

    async def take_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # returns when the proxy closes the connection
        backend_saw_close.set()

    async with raw_backend(take_body) as backend, proxy(backend, **LIMITS) as url:
        assert url.host is not None and url.port is not None
        async with raw_client(url.host, url.port) as sock:
            await asyncio.get_running_loop().sock_sendall(
                sock,
                b"PUT /content/upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n"
                + b"b" * 1000,
            )
            reply = await read_until_closed(sock)
        await asyncio.wait_for(backend_saw_close.wait(), timeout=10)
    assert reply.startswith(b"HTTP/1.1 408 ")
    assert b"body_timeout" in reply


async def test_request_body_is_streamed_before_it_is_complete(proxy: RunningProxy) -> None:
    got_start = asyncio.Event()

    async def take_start(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readexactly(1000)
        got_start.set()
        await reader.readexactly(1000)
        writer.write(OK)
        await writer.drain()

    async with raw_backend(take_start) as backend, proxy(backend) as url:
        assert url.host is not None and url.port is not None
        async with raw_client(url.host, url.port) as sock:
            loop = asyncio.get_running_loop()
            await loop.sock_sendall(
                sock,
                b"PUT /content/upload HTTP/1.1\r\nHost: x\r\nContent-Length: 2000\r\n"
                b"Connection: close\r\n\r\n" + b"b" * 1000,
            )
            # The backend has the first half while the client still holds the second.
            await asyncio.wait_for(got_start.wait(), timeout=10)
            await loop.sock_sendall(sock, b"c" * 1000)
            reply = await read_until_closed(sock)
    assert reply.startswith(b"HTTP/1.1 200 ")


def endless_reply(length: bytes, saw_close: asyncio.Event) -> object:
    """A backend sending a reply far larger than any socket buffer; notes when cut."""

    async def send(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\n" + length + b"\r\n")
        chunk = b"z" * 65536
        chunked = b"chunked" in length
        try:
            for _ in range(100_000):
                writer.write(b"10000\r\n" + chunk + b"\r\n" if chunked else chunk)
                await writer.drain()
        except ConnectionError:
            saw_close.set()

    return send


async def stalled_reader(proxy: RunningProxy, length: bytes) -> None:
    """A client that asks for a big body and reads none of it is dropped, and so is the
    backend connection."""
    saw_close = asyncio.Event()
    async with (
        raw_backend(endless_reply(length, saw_close)) as backend,  # type: ignore[arg-type]
        proxy(backend, **LIMITS) as url,
    ):
        assert url.host is not None and url.port is not None
        async with raw_client(url.host, url.port, rcvbuf=4096) as sock:
            await asyncio.get_running_loop().sock_sendall(
                sock, b"GET /content/film.mkv HTTP/1.1\r\nHost: x\r\n\r\n"
            )
            await asyncio.wait_for(saw_close.wait(), timeout=15)


async def test_stalled_reader_on_the_copy_path_is_dropped(proxy: RunningProxy) -> None:
    await stalled_reader(proxy, b"Transfer-Encoding: chunked\r\n")


async def test_stalled_reader_on_the_splice_path_is_dropped(proxy: RunningProxy) -> None:
    await stalled_reader(proxy, b"Content-Length: 1099511627776\r\n")


async def test_absolute_form_target_goes_upstream_as_a_path_with_its_host(
    proxy: RunningProxy,
) -> None:
    heads: list[bytes] = []
    request = (
        b"GET http://media.example:8080/.ids-s0/0/?a=1 HTTP/1.1\r\nHost: other\r\n"
        b"Connection: close\r\n\r\n"
    )
    reply = await exchange(proxy, [request], heads)
    assert reply.startswith(b"HTTP/1.1 200 ")
    assert heads[0].startswith(b"GET /.ids/0/?a=1 HTTP/1.1\r\n")
    assert b"\r\nHost: media.example:8080\r\n" in heads[0]
    assert b"Host: other" not in heads[0]


async def test_header_value_that_is_not_utf8_passes_byte_for_byte(proxy: RunningProxy) -> None:
    heads: list[bytes] = []
    request = (
        b"GET /content/x HTTP/1.1\r\nHost: x\r\nX-Title: Am\xe9lie \xff\r\n"
        b"Connection: close\r\n\r\n"
    )
    await exchange(proxy, [request], heads)
    assert b"\r\nX-Title: Am\xe9lie \xff\r\n" in heads[0]
