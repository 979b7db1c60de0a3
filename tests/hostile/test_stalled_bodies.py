"""Request bodies that stop midway hold kilobytes per connection, not the body.

Measured with tracemalloc over the whole process (proxy, backend and clients share it;
the clients send one shared bytes object, the backend keeps nothing), after every byte
sent has reached the backend: what is still held is what the stalled connections hold.
Before the fix each held its first read of the body whole: over a megabyte.
"""

from __future__ import annotations

import asyncio
import gc
import socket
import tracemalloc
from collections.abc import Iterator

import pytest

from tests.helpers.proxies import RunningProxy, until
from tests.helpers.raw_backend import raw_backend

CLIENTS = 20
DECLARED = 1 << 20
SENT = 1_040_000
# What one stalled upload may hold in the proxy: its connection's own objects and
# aiohttp's read-ahead, not its body.
PER_CONNECTION_LIMIT = 48 << 10


@pytest.fixture
def traced() -> Iterator[None]:
    tracemalloc.start()
    try:
        yield
    finally:
        tracemalloc.stop()


def traced_now() -> int:
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


async def test_stalled_uploads_hold_kilobytes_each(proxy: RunningProxy, traced: None) -> None:
    received = [0]

    async def sink(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Counts and keeps nothing, not even the last piece while it waits for the next.
        while count := len(await reader.read(65536)):
            received[0] += count

    body = b"b" * SENT
    loop = asyncio.get_running_loop()
    socks: list[socket.socket] = []
    async with raw_backend(sink) as backend, proxy(backend, body_timeout=600.0) as url:
        assert url.host is not None and url.port is not None
        try:
            before = traced_now()
            for n in range(CLIENTS):
                sock = socket.create_connection((url.host, url.port))
                sock.setblocking(False)
                socks.append(sock)
                head = b"PUT /content/up%d HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
                await loop.sock_sendall(sock, head % (n, DECLARED))
                await loop.sock_sendall(sock, body)
            await until(lambda: received[0] >= CLIENTS * SENT, "every sent byte at the backend")
            held = traced_now() - before
        finally:
            for sock in socks:
                sock.close()
    assert held / CLIENTS < PER_CONNECTION_LIMIT, f"{held / CLIENTS:.0f} bytes per connection"
