"""The smaller doors: who may claim to be the rest mount, targets with user info,
CONNECT, and a .rclonelink too big to rewrite."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket

import aiohttp
import pytest

from tests.helpers.proxies import RunningProxy
from tests.helpers.raw_backend import Script, raw_backend

UUID9 = "961b00d8-0f1e-4c52-9b0e-d0a7a3a2b1c4"
VIEW_FILE = f"/.ids-s2/9/6/1/b/0/{UUID9}"
FALLBACK_LINE = "being read without its cache"
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


async def answer_ok(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(OK)
    await writer.drain()


async def raw_exchange(proxy: RunningProxy, request: bytes, heads: list[bytes]) -> bytes:
    """One raw request to a proxy in front of a backend answering OK; the whole reply."""
    async with raw_backend(answer_ok, heads) as backend, proxy(backend) as url:
        assert url.host is not None and url.port is not None
        loop = asyncio.get_running_loop()
        with socket.create_connection((url.host, url.port)) as sock:
            sock.setblocking(False)
            await loop.sock_sendall(sock, request)
            got = bytearray()
            async with asyncio.timeout(10):
                while chunk := await loop.sock_recv(sock, 65536):
                    got += chunk
            return bytes(got)


async def read_as_rest_mount(proxy: RunningProxy, **settings: object) -> None:
    async with (
        raw_backend(answer_ok) as backend,
        proxy(backend, **settings) as url,
        aiohttp.ClientSession() as client,
        client.get(url.with_path(VIEW_FILE), headers={"X-Shardproxy-Mount": "rest"}) as reply,
    ):
        assert reply.status == 200


async def test_mount_header_from_an_address_not_named_is_ignored(
    proxy: RunningProxy, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="shardproxy.web.proxy")
    await read_as_rest_mount(proxy, mount_header_from=(ipaddress.ip_network("10.0.0.0/8"),))
    assert not [r for r in caplog.records if FALLBACK_LINE in r.getMessage()]


async def test_mount_header_from_loopback_is_believed_by_default(
    proxy: RunningProxy, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="shardproxy.web.proxy")
    await read_as_rest_mount(proxy)
    assert [r for r in caplog.records if FALLBACK_LINE in r.getMessage()]


async def test_absolute_target_with_user_info_is_400_and_not_forwarded(
    proxy: RunningProxy,
) -> None:
    heads: list[bytes] = []
    reply = await raw_exchange(
        proxy,
        b"GET http://a:b@media.example/content/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        heads,
    )
    assert reply.startswith(b"HTTP/1.1 400 ")
    assert b"user info" in reply
    assert heads == []


async def test_connect_is_405_and_not_forwarded(proxy: RunningProxy) -> None:
    heads: list[bytes] = []
    reply = await raw_exchange(proxy, b"CONNECT /content/x HTTP/1.1\r\nHost: x\r\n\r\n", heads)
    assert reply.startswith(b"HTTP/1.1 405 ")
    assert b"\r\nAllow: " in reply
    assert heads == []


BIG = 70_000
LINK = "/completed-symlinks/movies/Film/Film.mkv.rclonelink"


def big_link_backend(heads: list[bytes]) -> Script:
    """A listing naming one .rclonelink of BIG bytes, and the link itself, keeping alive."""
    listing = (
        b'<?xml version="1.0"?><D:multistatus xmlns:D="DAV:"><D:response><D:href>'
        + LINK.encode()
        + b"</D:href><D:propstat><D:prop><D:getcontentlength>%d</D:getcontentlength>"
        b"</D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response>"
        b"</D:multistatus>" % BIG
    )

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = heads[-1]  # the first head is read for us
        while True:
            if head.startswith(b"PROPFIND"):
                writer.write(
                    b"HTTP/1.1 207 Multi-Status\r\nContent-Length: %d\r\n\r\n" % len(listing)
                )
                writer.write(listing)
            else:
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % BIG + b"L" * BIG)
            await writer.drain()
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                return

    return answer


async def test_rclonelink_too_big_to_rewrite_is_listed_at_its_size_and_logged_once(
    proxy: RunningProxy, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="shardproxy.web.proxy")
    heads: list[bytes] = []
    async with (
        raw_backend(big_link_backend(heads), heads) as backend,
        proxy(backend, rewrite_rclonelinks=True) as url,
        aiohttp.ClientSession() as client,
    ):
        for _ in range(2):
            async with client.request(
                "PROPFIND", url.with_path("/completed-symlinks/movies/Film/")
            ) as reply:
                listed = await reply.text()
            async with client.get(url.with_path(LINK)) as reply:
                body = await reply.read()
    assert f"<D:getcontentlength>{BIG}</D:getcontentlength>" in listed
    assert body == b"L" * BIG
    assert len([r for r in caplog.records if "more than 65536 bytes" in r.getMessage()]) == 1
