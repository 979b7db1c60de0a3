"""The WebDAV proxy in front of the NzbDav stand-in: shard views, pass-through, ranges."""

from __future__ import annotations

import asyncio
import base64
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from yarl import URL

from nzbdav_standin import (
    READ_LOG,
    REQUEST_LOG,
    Library,
    RequestRecord,
    expected_bytes,
    make_standin_app,
    uuid_path,
)
from shardproxy.core.shards import ShardMap
from tests.helpers.proxies import basic_auth, running_proxy

AUTH = basic_auth("admin", "secret")
SHARD_MAP = ShardMap.even(4)
DAV = "{DAV:}"
BIG_UUID = "0badcafe-0000-4000-8000-000000000001"
BIG_SIZE = 128 << 20
EMPTY_UUID = "0e0e0e0e-0000-4000-8000-000000000002"


@dataclass
class Setup:
    """The stand-in, its library and a proxy in front of it."""

    catalog: Library
    app: web.Application
    proxy: URL
    client: aiohttp.ClientSession

    @property
    def requests(self) -> list[RequestRecord]:
        return list(self.app[REQUEST_LOG])

    def uuid_in_shard(self, shard: int) -> str:
        return next(u for u in sorted(self.catalog.ids) if SHARD_MAP.shard_of(u) == shard)

    def view_path(self, uuid: str) -> str:
        return f"/.ids-s{SHARD_MAP.shard_of(uuid)}" + uuid_path(uuid)[len("/.ids") :]

    def expected(self, uuid: str, start: int, end: int) -> bytes:
        size = self.catalog.ids[uuid].size
        return expected_bytes(uuid_path(uuid), size, start, end)


@pytest.fixture
async def setup() -> AsyncIterator[Setup]:
    library = Library.sample(n_ids=32, seed=5)
    # Bigger than every socket buffer between the stand-in and the client together.
    library.add(uuid_path(BIG_UUID), BIG_SIZE)
    library.add(uuid_path(EMPTY_UUID), 0)
    app = make_standin_app(library)
    backend = TestServer(app)
    await backend.start_server()
    try:
        async with (
            running_proxy(backend.make_url("/").origin(), nzbdav_pass="secret") as proxy,
            aiohttp.ClientSession(headers=AUTH) as client,
        ):
            yield Setup(library, app, proxy, client)
    finally:
        await backend.close()


async def propfind(
    setup: Setup, path: str, depth: str | None = "1", body: bytes = b""
) -> tuple[int, bytes]:
    headers = {} if depth is None else {"Depth": depth}
    url = URL(f"{setup.proxy}{path}", encoded=True)
    async with setup.client.request("PROPFIND", url, headers=headers, data=body) as reply:
        return reply.status, await reply.read()


def hrefs(body: bytes) -> list[str]:
    root = ET.fromstring(body)
    return [unquote(urlsplit(h.text or "").path) for h in root.iter(f"{DAV}href")]


# --- shard views ------------------------------------------------------------------------


async def test_shard_root_listing_keeps_own_prefixes_with_rewritten_hrefs(setup: Setup) -> None:
    status, body = await propfind(setup, "/.ids-s1/")
    assert status == 207
    assert hrefs(body) == ["/.ids-s1/", "/.ids-s1/4", "/.ids-s1/5", "/.ids-s1/6", "/.ids-s1/7"]
    # NzbDav wrote full URLs from the Host header; they stay full URLs, naming the proxy.
    first = ET.fromstring(body).find(f"{DAV}response/{DAV}href")
    assert first is not None
    assert first.text == f"{setup.proxy}/.ids-s1/"


async def test_fifth_level_lists_the_files_of_that_prefix(setup: Setup) -> None:
    uuid = setup.uuid_in_shard(2)
    folder = setup.view_path(uuid).rsplit("/", 1)[0]
    status, body = await propfind(setup, folder)
    expected = sorted(f"{folder}/{u}" for u in setup.catalog.ids if u.startswith(uuid[:5]))
    assert status == 207
    assert hrefs(body)[0] == folder
    assert sorted(hrefs(body)[1:]) == expected


async def test_missing_depth_is_sent_upstream_as_depth_1(setup: Setup) -> None:
    uuid = setup.uuid_in_shard(0)
    folder = setup.view_path(uuid).rsplit("/", 1)[0] + "/"  # a leaf: NzbDav lists it
    status, body = await propfind(setup, folder, depth=None)
    assert status == 207
    assert hrefs(body)[1:] == [f"{folder}{u}" for u in setup.catalog.ids if u[:5] == uuid[:5]]
    status, _ = await propfind(setup, "/.ids/", depth="infinity")
    assert status == 207
    depths = [r.headers.get("Depth") for r in setup.requests if r.method == "PROPFIND"]
    assert depths == ["1", "1"]


async def test_404_propstats_come_after_the_200_one(setup: Setup) -> None:
    asked = (
        b'<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:getetag/>'
        b"<D:displayname/><D:creationdate/></D:prop></D:propfind>"
    )
    # Straight from the stand-in, as NzbDav does, the 404 propstats come first...
    status, direct = await propfind(setup, "/.ids/", depth="0", body=asked)
    direct_statuses = [s.text for s in ET.fromstring(direct).iter(f"{DAV}status")]
    assert "404" in (direct_statuses[0] or "")
    # ...through a shard view the 200 propstat leads, and nothing is lost.
    status, body = await propfind(setup, "/.ids-s0/", depth="0", body=asked)
    statuses = [s.text for s in ET.fromstring(body).iter(f"{DAV}status")]
    assert status == 207
    assert "200" in (statuses[0] or "")
    assert sorted(statuses) == sorted(direct_statuses)


async def test_root_listing_adds_the_shard_folders(setup: Setup) -> None:
    status, body = await propfind(setup, "/")
    listed = hrefs(body)
    assert status == 207
    assert [p for p in listed if p.startswith("/.ids")] == [
        "/.ids",
        "/.ids-s0",
        "/.ids-s1",
        "/.ids-s2",
        "/.ids-s3",
    ]
    names = [d.text for d in ET.fromstring(body).iter(f"{DAV}displayname")]
    assert {".ids-s0", ".ids-s3", "content"} <= set(names)


async def test_shard_file_gives_the_backends_bytes(setup: Setup) -> None:
    uuid = setup.uuid_in_shard(3)
    async with setup.client.get(f"{setup.proxy}{setup.view_path(uuid)}") as reply:
        body = await reply.read()
    assert reply.status == 200
    assert reply.headers.get("Transfer-Encoding") is None
    assert reply.content_length == setup.catalog.ids[uuid].size
    assert body == setup.expected(uuid, 0, setup.catalog.ids[uuid].size - 1)


# --- pass-through -----------------------------------------------------------------------


async def test_every_method_passes_through_with_its_headers(setup: Setup) -> None:
    methods = ["OPTIONS", "GET", "HEAD", "PROPFIND", "PUT", "DELETE", "MKCOL", "LOCK", "MOVE"]
    for method in methods:
        headers = {"X-Custom": method, "Connection": "keep-alive, X-Hop", "X-Hop": "drop me"}
        if method == "MOVE":
            headers["Destination"] = f"{setup.proxy}/nzbs/moved.nzb"
        async with setup.client.request(
            method, f"{setup.proxy}/nzbs/a%20b.nzb?x=1", headers=headers, data=b""
        ) as reply:
            await reply.read()
    seen = [r for r in setup.requests if r.headers.get("X-Custom")]
    assert [r.method for r in seen] == methods
    for record in seen:
        assert record.raw_path == "/nzbs/a%20b.nzb?x=1"
        assert (
            record.headers["Authorization"] == "Basic " + base64.b64encode(b"admin:secret").decode()
        )
        assert "X-Hop" not in record.headers
    assert seen[-1].headers["Destination"] == f"{setup.proxy}/nzbs/moved.nzb"


async def test_destination_into_a_shard_view_is_mapped(setup: Setup) -> None:
    uuid = setup.uuid_in_shard(0)
    destination = f"{setup.proxy}{setup.view_path(uuid)}"
    async with setup.client.request(
        "COPY", f"{setup.proxy}/content/x", headers={"Destination": destination}
    ) as reply:
        await reply.read()
    copy = next(r for r in setup.requests if r.method == "COPY")
    assert copy.headers["Destination"] == f"{setup.proxy}{uuid_path(uuid)}"


async def test_destination_outside_its_shard_is_refused(setup: Setup) -> None:
    destination = f"{setup.proxy}/.ids-s0/f/"
    async with setup.client.request(
        "MOVE", f"{setup.proxy}/content/x", headers={"Destination": destination}
    ) as reply:
        text = await reply.text()
    assert reply.status == 400
    assert "Destination" in text
    assert not [r for r in setup.requests if r.method == "MOVE"]


async def test_wrong_password_is_the_backends_401(setup: Setup) -> None:
    async with aiohttp.ClientSession() as client:
        async with client.get(
            f"{setup.proxy}/.ids-s0/", headers=basic_auth("admin", "wrong")
        ) as reply:
            assert reply.status == 401
            assert reply.headers["WWW-Authenticate"].startswith("Basic")


# --- the Range contract -----------------------------------------------------------------


async def ranged(
    setup: Setup, uuid: str, spec: str, **headers: str
) -> tuple[aiohttp.ClientResponse, bytes]:
    """GET a shard file with a Range header; the reply and its body."""
    async with setup.client.get(
        f"{setup.proxy}{setup.view_path(uuid)}", headers={"Range": spec, **headers}
    ) as reply:
        return reply, await reply.read()


async def test_suffix_range_returns_the_last_bytes(setup: Setup) -> None:
    uuid = setup.uuid_in_shard(1)
    size = setup.catalog.ids[uuid].size
    reply, body = await ranged(setup, uuid, "bytes=-100")
    assert reply.status == 206
    assert reply.headers["Content-Range"] == f"bytes {size - 100}-{size - 1}/{size}"
    assert body == setup.expected(uuid, size - 100, size - 1)


async def test_whole_file_range_is_a_206(setup: Setup) -> None:
    uuid = setup.uuid_in_shard(0)
    size = setup.catalog.ids[uuid].size
    reply, body = await ranged(setup, uuid, "bytes=0-")
    assert reply.status == 206
    assert reply.headers["Content-Range"] == f"bytes 0-{size - 1}/{size}"
    assert body == setup.expected(uuid, 0, size - 1)


async def test_closed_range_gives_exact_bytes(setup: Setup) -> None:
    uuid = setup.uuid_in_shard(2)
    reply, body = await ranged(setup, uuid, "bytes=1000-1999")
    assert reply.status == 206
    assert body == setup.expected(uuid, 1000, 1999)


async def test_range_past_the_end_is_416(setup: Setup) -> None:
    uuid = setup.uuid_in_shard(2)
    size = setup.catalog.ids[uuid].size
    reply, _ = await ranged(setup, uuid, f"bytes={size}-")
    assert reply.status == 416
    assert reply.headers["Content-Range"] == f"bytes */{size}"


async def test_suffix_range_of_an_empty_file_is_a_200_with_no_body(setup: Setup) -> None:
    reply, body = await ranged(setup, EMPTY_UUID, "bytes=-500")
    assert reply.status == 200
    assert body == b""
    assert "Content-Range" not in reply.headers


async def test_if_range_with_an_etag_sends_the_whole_file(setup: Setup) -> None:
    uuid = setup.uuid_in_shard(3)
    size = setup.catalog.ids[uuid].size
    reply, body = await ranged(setup, uuid, "bytes=10-20", **{"If-Range": '"some-etag"'})
    assert reply.status == 200
    assert body == setup.expected(uuid, 0, size - 1)


async def test_head_with_range_reports_the_range(setup: Setup) -> None:
    uuid = setup.uuid_in_shard(1)
    size = setup.catalog.ids[uuid].size
    async with setup.client.head(
        f"{setup.proxy}{setup.view_path(uuid)}", headers={"Range": "bytes=0-"}
    ) as reply:
        assert reply.status == 206
        assert reply.headers["Content-Range"] == f"bytes 0-{size - 1}/{size}"
        assert reply.content_length == size


# --- streaming --------------------------------------------------------------------------


async def test_client_hangup_stops_the_backend_read(setup: Setup) -> None:
    uuid = BIG_UUID
    reply = await setup.client.get(f"{setup.proxy}{setup.view_path(uuid)}")
    await reply.content.readexactly(256 << 10)
    reply.close()
    reads = setup.app[READ_LOG]
    for _ in range(400):  # poll until the stand-in logs the read as ended
        if reads:
            break
        await asyncio.sleep(0.025)
    assert len(reads) == 1
    assert not reads[0].completed
    assert reads[0].sent < reads[0].planned // 2


async def test_slow_reader_holds_the_backend_back(setup: Setup) -> None:
    async with setup.client.get(
        f"{setup.proxy}{setup.view_path(BIG_UUID)}", read_bufsize=1 << 16
    ) as reply:
        assert await reply.content.readexactly(64 << 10) == setup.expected(
            BIG_UUID, 0, (64 << 10) - 1
        )
        # The client stops reading; give the pipeline time to fill every buffer.
        for _ in range(25):
            await asyncio.sleep(0.02)
        assert not setup.app[READ_LOG], "the backend sent everything to a client that paused"
        more = await reply.content.readexactly(1 << 20)
    assert more == setup.expected(BIG_UUID, 64 << 10, (64 << 10) + (1 << 20) - 1)


async def test_suffix_range_on_a_missing_file_is_the_backends_404(setup: Setup) -> None:
    path = "/.ids-s0/0/0/0/0/0/00000000-0000-4000-8000-00000000dead"
    async with setup.client.get(f"{setup.proxy}{path}", headers={"Range": "bytes=-10"}) as reply:
        await reply.read()
    assert reply.status == 404
