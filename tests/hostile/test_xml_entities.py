"""Listings that declare entities (the "billion laughs") are refused, never expanded."""

from __future__ import annotations

import asyncio

import aiohttp

from tests.helpers.proxies import RunningProxy
from tests.helpers.raw_backend import Script, raw_backend

# Ten levels of ten: 10^9 "ha"s once expanded. Refused at its DOCTYPE, it costs nothing;
# expanded, it would take gigabytes.
BOMB_DTD = (
    b'<!DOCTYPE D:multistatus [<!ENTITY a "ha">'
    + b"".join(b'<!ENTITY %c "%s">' % (98 + i, (b"&%c;" % (97 + i)) * 10) for i in range(9))
    + b"]>"
)
LINK = "/completed-symlinks/movies/Film/Film.mkv.rclonelink"


def listing(dtd: bytes, text: bytes) -> bytes:
    return (
        b'<?xml version="1.0" encoding="utf-8"?>' + dtd + b'<D:multistatus xmlns:D="DAV:">'
        b"<D:response><D:href>" + LINK.encode() + b"</D:href><D:propstat><D:prop>"
        b"<D:getcontentlength>54</D:getcontentlength><D:displayname>" + text + b"</D:displayname>"
        b"</D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response>"
        b"</D:multistatus>"
    )


def answer_with(body: bytes) -> Script:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(
            b"HTTP/1.1 207 Multi-Status\r\nContent-Type: application/xml\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)
        )
        await writer.drain()

    return answer


async def propfind(
    proxy: RunningProxy, body: bytes, path: str, **settings: object
) -> tuple[int, str]:
    async with (
        raw_backend(answer_with(body)) as backend,
        proxy(backend, **settings) as url,
        aiohttp.ClientSession() as client,
        client.request("PROPFIND", url.with_path(path), headers={"Depth": "1"}) as reply,
    ):
        return reply.status, await reply.text()


async def test_symlinks_listing_with_nested_entities_is_502_not_expanded(
    proxy: RunningProxy,
) -> None:
    status, text = await propfind(
        proxy, listing(BOMB_DTD, b"&c;"), "/completed-symlinks/movies/", rewrite_rclonelinks=True
    )
    assert status == 502
    assert "DOCTYPE" in text


async def test_symlinks_listing_without_a_doctype_still_grows_link_sizes(
    proxy: RunningProxy,
) -> None:
    status, text = await propfind(
        proxy, listing(b"", b"Film"), "/completed-symlinks/movies/", rewrite_rclonelinks=True
    )
    assert status == 207
    assert "<D:getcontentlength>57</D:getcontentlength>" in text


async def test_shard_listing_with_nested_entities_is_502(proxy: RunningProxy) -> None:
    # A fifth-level folder: NzbDav is asked for it, not the proxy's virtual levels.
    status, text = await propfind(proxy, listing(BOMB_DTD, b"&c;"), "/.ids-s0/0/1/2/3/4/")
    assert status == 502
    assert "DOCTYPE" in text
