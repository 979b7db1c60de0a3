"""GET and HEAD of .rclonelink files through the proxy with rewrite_rclonelinks on."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from urllib.parse import unquote, urlsplit

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from multidict import CIMultiDictProxy
from yarl import URL

from nzbdav_standin import Library, make_standin_app
from shardproxy.core.shards import ShardMap
from tests.helpers.proxies import running_proxy

Proxied = tuple[URL, URL, aiohttp.ClientSession]
SHARD_MAP = ShardMap.even(4)
DAV = "{DAV:}"
UUID = "961b00d8-0f1e-4c52-9b0e-d0a7a3a2b1c4"
LINK = "/completed-symlinks/movies/Film (2020)/Film (2020).mkv.rclonelink"
ORIGINAL = f"/mnt/nzbdav/.ids/9/6/1/b/0/{UUID}".encode()
REWRITTEN = f"/mnt/nzbdav/.ids-s2/9/6/1/b/0/{UUID}".encode()


@pytest.fixture
async def proxied() -> AsyncIterator[Proxied]:
    """(proxy with the setting on, proxy with it off, a client session)."""
    library = Library()
    library.add("/content/movies/Film (2020)/Film (2020).mkv", 1000, uuid=UUID)
    backend = TestServer(make_standin_app(library, user=None, password=None))
    await backend.start_server()
    origin = backend.make_url("/").origin()
    try:
        async with (
            running_proxy(origin, shard_map=SHARD_MAP, rewrite_rclonelinks=True) as on,
            running_proxy(origin, shard_map=SHARD_MAP) as off,
            aiohttp.ClientSession() as client,
        ):
            yield on, off, client
    finally:
        await backend.close()


async def fetch(
    client: aiohttp.ClientSession, url: URL, method: str = "GET", **headers: str
) -> tuple[int, bytes, CIMultiDictProxy[str]]:
    async with client.request(method, url.with_path(LINK), headers=headers) as reply:
        return reply.status, await reply.read(), reply.headers


async def test_get_serves_the_target_in_the_owning_shards_view(proxied: Proxied) -> None:
    on, off, client = proxied
    status, body, headers = await fetch(client, on)
    assert (status, body, headers["Content-Length"]) == (200, REWRITTEN, str(len(REWRITTEN)))
    assert (await fetch(client, off))[1] == ORIGINAL


async def test_head_reports_the_rewritten_length(proxied: Proxied) -> None:
    on, _, client = proxied
    status, body, headers = await fetch(client, on, "HEAD")
    assert (status, body, headers["Content-Length"]) == (200, b"", str(len(ORIGINAL) + 3))


@pytest.mark.parametrize(
    ("asked", "first", "last"),
    [("bytes=0-9", 0, 9), ("bytes=-5", None, None), ("bytes=20-", 20, None)],
)
async def test_ranges_apply_to_the_rewritten_body(
    proxied: Proxied, asked: str, first: int | None, last: int | None
) -> None:
    on, _, client = proxied
    status, body, headers = await fetch(client, on, Range=asked)
    size = len(REWRITTEN)
    if first is None:
        first, last = size - 5, size - 1
    last = size - 1 if last is None else last
    assert (status, body) == (206, REWRITTEN[first : last + 1])
    assert headers["Content-Range"] == f"bytes {first}-{last}/{size}"


async def test_a_range_past_the_rewritten_end_is_416(proxied: Proxied) -> None:
    on, _, client = proxied
    status, _, headers = await fetch(client, on, Range=f"bytes={len(REWRITTEN)}-")
    assert (status, headers["Content-Range"]) == (416, f"bytes */{len(REWRITTEN)}")


async def test_the_listing_gives_each_link_its_rewritten_size(proxied: Proxied) -> None:
    on, off, client = proxied
    folder = LINK.rsplit("/", 1)[0] + "/"
    for proxy, expected in ((on, len(REWRITTEN)), (off, len(ORIGINAL))):
        url = proxy.with_path(folder)
        async with client.request("PROPFIND", url, headers={"Depth": "1"}) as reply:
            assert reply.status == 207
            body = await reply.read()
        sizes = {
            unquote(urlsplit(r.findtext(f"{DAV}href") or "").path): r.findtext(
                f".//{DAV}getcontentlength"
            )
            for r in ET.fromstring(body).iter(f"{DAV}response")
        }
        assert sizes[LINK] == str(expected)
