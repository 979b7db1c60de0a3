"""The copying path keeps the Range contract: the client gets the range's bytes only, and
the backend's surplus is left unread.

A backend that ignores ``Range: bytes=0-N`` and sends the whole file with 200 must still
give the client exactly bytes 0..N. The ranges here are over the size answered in one
write and under the size that is spliced, so they go through the copying loop. The
client is a raw socket that reads until the proxy closes, so no byte too many can hide
behind the Content-Length; and the backend counts what it could send, because every byte
NzbDav sends is fetched from Usenet.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.helpers.proxies import RunningProxy
from tests.helpers.raw_backend import raw_backend

PIECE = bytes(range(256)) * 64  # 16 KiB
PIECES = 4096  # a 64 MiB file: far more than socket buffers hold


class WholeFile:
    """A backend that answers any GET with the whole file and 200, counting what it sent."""

    def __init__(self) -> None:
        self.sent = 0
        self.done = asyncio.Event()

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (len(PIECE) * PIECES))
        try:
            for _ in range(PIECES):
                writer.write(PIECE)
                await writer.drain()
                self.sent += len(PIECE)
        except ConnectionError:
            pass  # the proxy closed the connection: what it did not read stays unsent
        finally:
            self.done.set()


def file_bytes(count: int) -> bytes:
    return (PIECE * (count // len(PIECE) + 1))[:count]


async def raw_get(url: str, path: str, headers: str) -> tuple[bytes, bytes]:
    """(head, body) of a GET read until the proxy closes the connection."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n{headers}Connection: close\r\n\r\n".encode()
    )
    await writer.drain()
    reply = await asyncio.wait_for(reader.read(), 30)
    writer.close()
    head, _, body = reply.partition(b"\r\n\r\n")
    return head, body


@pytest.mark.parametrize("last", [100_000, 131_071, 300_001])
async def test_whole_file_answer_to_a_range_is_cut_to_the_range(
    proxy: RunningProxy, last: int
) -> None:
    backend_script = WholeFile()
    async with raw_backend(backend_script) as backend, proxy(backend) as url:
        head, body = await raw_get(str(url), "/content/film.mkv", f"Range: bytes=0-{last}\r\n")
        await asyncio.wait_for(backend_script.done.wait(), 30)
    assert head.startswith(b"HTTP/1.1 206")
    assert f"Content-Range: bytes 0-{last}/{len(PIECE) * PIECES}".encode() in head
    assert body == file_bytes(last + 1)
    # What socket buffers took, not the file: the proxy stopped reading after the range.
    assert backend_script.sent < len(PIECE) * PIECES // 4
