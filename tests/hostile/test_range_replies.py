"""A backend whose ranged replies are not what was asked: the client gets 502, never them."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from tests.helpers.proxies import RunningProxy
from tests.helpers.raw_backend import raw_backend

PART = bytes(range(7, 107))  # bytes 7-106 of a file whose byte n is n % 256
WRONG_PART = (
    b"HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 7-106/1000\r\n"
    b"Content-Length: 100\r\nConnection: close\r\n\r\n" + PART
)


async def always_bytes_7_to_106(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Every GET and HEAD, ranged or not, answered with bytes 7-106 of 1000."""
    writer.write(WRONG_PART)
    await writer.drain()


async def get(proxy: RunningProxy, **headers: str) -> tuple[int, bytes]:
    async with (
        raw_backend(always_bytes_7_to_106) as backend,
        proxy(backend) as url,
        aiohttp.ClientSession() as client,
        client.get(url.with_path("/content/film.mkv"), headers=headers) as reply,
    ):
        return reply.status, await reply.read()


async def test_suffix_range_whose_size_cannot_be_had_never_gets_another_part(
    proxy: RunningProxy,
) -> None:
    # The size request (HEAD) gets a 206 too, so the proxy asks without Range: the 206
    # that comes back is bytes 7-106, not the last 100.
    status, body = await get(proxy, Range="bytes=-100")
    assert status == 502
    assert PART not in body


async def test_invalid_range_answered_with_a_part_is_502(proxy: RunningProxy) -> None:
    status, body = await get(proxy, Range="bytes=9-1")
    assert status == 502
    assert PART not in body


@pytest.mark.parametrize("asked", ["bytes=500-599", "bytes=-100"])
async def test_conditional_range_answered_with_another_part_is_502(
    proxy: RunningProxy, asked: str
) -> None:
    status, body = await get(proxy, Range=asked, **{"If-Range": '"v1"'})
    assert status == 502
    assert PART not in body


async def test_the_asked_part_still_passes(proxy: RunningProxy) -> None:
    assert await get(proxy, Range="bytes=7-106") == (206, PART)
