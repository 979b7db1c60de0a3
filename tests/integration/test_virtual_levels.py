"""NzbDav's virtual ``.ids`` folders answered by the proxy, against the stand-in and rclone.

Two proxies sit in front of one NzbDav stand-in: one answers the folders above the fifth
level itself (``virtual_levels``, the default), the other asks NzbDav for everything.
With NzbDav up, clients must not tell them apart; with NzbDav stopped, the first still
lists a shard view's upper levels, and leaves fail as they always did.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from yarl import URL

from nzbdav_standin import REQUEST_LOG, Library, make_standin_app
from shardproxy.core.shards import HEX_DIGITS, ShardMap
from shardproxy.tools.deploy.files import obscure, webdav_remotes
from tests.helpers.processes import rclone_binaries, require_program, run_rclone
from tests.helpers.proxies import basic_auth, running_proxy

USER, PASSWORD = "admin", "secret"
AUTH = basic_auth(USER, PASSWORD)
SHARD_MAP = ShardMap.even(4)
HOST = "Proxy.Example:8765"  # sent to both proxies, so their hrefs agree
RCLONE_BODY = (
    b'<?xml version="1.0"?>\n<d:propfind xmlns:d="DAV:">\n <d:prop>\n  <d:displayname/>\n'
    b"  <d:getlastmodified/>\n  <d:getcontentlength/>\n  <d:resourcetype/>\n </d:prop>\n"
    b"</d:propfind>\n"
)


@dataclass
class Proxies:
    """The stand-in, a proxy answering virtual levels, and one that asks NzbDav."""

    backend: TestServer
    app: web.Application
    library: Library
    virtual: URL
    asking: URL

    def backend_requests(self) -> int:
        return len(self.app[REQUEST_LOG])

    async def stop_nzbdav(self) -> None:
        await self.backend.close()

    def leaf(self, shard: int) -> str:
        """A fifth-level folder of the shard's view that holds a file."""
        uuid = next(u for u in sorted(self.library.ids) if SHARD_MAP.shard_of(u) == shard)
        return "/".join(uuid[:5])


@pytest.fixture
async def proxies() -> AsyncIterator[Proxies]:
    library = Library.sample(n_ids=24, seed=9)
    app = make_standin_app(library, user=USER, password=PASSWORD)
    backend = TestServer(app)
    await backend.start_server()
    origin = backend.make_url("/").origin()
    try:
        async with (
            running_proxy(origin, nzbdav_pass=PASSWORD) as virtual,
            running_proxy(origin, virtual_levels=False) as asking,
        ):
            yield Proxies(backend, app, library, virtual, asking)
    finally:
        await backend.close()


async def request(
    base: URL, method: str, path: str, *, body: bytes = b"", **headers: str
) -> tuple[int, dict[str, str], bytes]:
    """One request with NzbDav's login: status, headers, body."""
    async with (
        aiohttp.ClientSession(headers=AUTH) as client,
        client.request(method, URL(f"{base}{path}", encoded=True), headers=headers, data=body) as r,
    ):
        return r.status, dict(r.headers), await r.read()


# --- as clients see them ----------------------------------------------------------------


@pytest.mark.parametrize("body", [b"", RCLONE_BODY], ids=["allprop", "rclone-current"])
@pytest.mark.parametrize(
    ("path", "depth"),
    [("/.ids-s1/", "1"), ("/.ids-s1", "0"), ("/.ids-s2/9/6", "1"), ("/.ids-s3/c/d/e/f/", "1")],
)
async def test_upper_level_listing_is_nzbdavs_through_the_filter_byte_for_byte(
    proxies: Proxies, path: str, depth: str, body: bytes
) -> None:
    before = proxies.backend_requests()
    virtual = await request(proxies.virtual, "PROPFIND", path, body=body, Depth=depth, Host=HOST)
    assert proxies.backend_requests() == before, "the virtual folder was asked of NzbDav"
    asked = await request(proxies.asking, "PROPFIND", path, body=body, Depth=depth, Host=HOST)
    assert proxies.backend_requests() == before + 1
    assert virtual[0] == asked[0] == 207
    assert virtual[1]["Content-Type"] == asked[1]["Content-Type"]
    assert virtual[2] == asked[2]


async def test_leaf_folders_still_go_to_nzbdav(proxies: Proxies) -> None:
    before = proxies.backend_requests()
    status, _, body = await request(proxies.virtual, "PROPFIND", f"/.ids-s1/{proxies.leaf(1)}/")
    assert status == 207
    assert proxies.backend_requests() == before + 1
    assert body.count(b"<D:response>") >= 2  # the folder and its file(s)


@pytest.mark.parametrize("method", ["HEAD", "GET"])
async def test_head_and_get_of_an_upper_folder_are_nzbdavs_204_with_its_date(
    proxies: Proxies, method: str
) -> None:
    before = proxies.backend_requests()
    virtual = await request(proxies.virtual, method, "/.ids-s2/a/b")
    assert proxies.backend_requests() == before
    asked = await request(proxies.asking, method, "/.ids-s2/a/b")
    assert virtual[0] == asked[0] == 204
    assert virtual[1]["Last-Modified"] == asked[1]["Last-Modified"]
    assert virtual[2] == asked[2] == b""


async def test_malformed_body_gets_nzbdavs_500(proxies: Proxies) -> None:
    broken = b'<D:propfind xmlns:D="DAV:"><D:prop>'
    virtual = await request(proxies.virtual, "PROPFIND", "/.ids-s0/", body=broken, Depth="1")
    asked = await request(proxies.asking, "PROPFIND", "/.ids-s0/", body=broken, Depth="1")
    assert virtual[0] == asked[0] == 500


async def test_a_listing_over_the_cap_is_a_502_naming_the_setting_as_nzbdavs_would_be(
    proxies: Proxies,
) -> None:
    names = "".join(f"<D:missing{n}/>" for n in range(2000))
    body = f'<D:propfind xmlns:D="DAV:"><D:prop>{names}</D:prop></D:propfind>'.encode()
    origin = proxies.backend.make_url("/").origin()
    replies = []
    for virtual_levels in (True, False):
        async with running_proxy(
            origin, virtual_levels=virtual_levels, listing_max_bytes=100_000
        ) as url:
            replies.append(await request(url, "PROPFIND", "/.ids-s0/", body=body, Depth="1"))
    for status, _, text in replies:
        assert status == 502
        assert b"listing_max_bytes" in text


async def test_a_wrong_login_is_judged_by_nzbdav(proxies: Proxies) -> None:
    before = proxies.backend_requests()
    async with (
        aiohttp.ClientSession(headers=basic_auth(USER, "wrong")) as client,
        client.request("PROPFIND", proxies.virtual / ".ids-s0/", headers={"Depth": "1"}) as r,
    ):
        assert r.status == 401
    assert proxies.backend_requests() == before + 1


# --- NzbDav stopped ---------------------------------------------------------------------


async def test_with_nzbdav_stopped_upper_levels_still_list(proxies: Proxies) -> None:
    await proxies.stop_nzbdav()
    status, _, body = await request(proxies.virtual, "PROPFIND", "/.ids-s1/4/", Depth="1")
    assert status == 207
    assert body.count(b"<D:response>") == 17


async def test_with_nzbdav_stopped_a_leaf_is_a_502(proxies: Proxies) -> None:
    await proxies.stop_nzbdav()
    status, _, body = await request(proxies.virtual, "PROPFIND", f"/.ids-s1/{proxies.leaf(1)}/")
    assert status == 502
    assert b"backend" in body


@pytest.mark.parametrize(
    ("method", "headers"),
    [
        ("GET", {"Range": "bytes=0-9"}),  # a Range: NzbDav's own answer
        ("PROPFIND", {"Host": "[::1]:8765"}),  # a Host NzbDav might spell otherwise
        ("PROPFIND", {"Authorization": "Basic d3Jvbmc6d3Jvbmc="}),  # a login NzbDav judges
    ],
)
async def test_with_nzbdav_stopped_what_cannot_be_answered_exactly_is_a_502(
    proxies: Proxies, method: str, headers: dict[str, str]
) -> None:
    await proxies.stop_nzbdav()
    status, _, _ = await request(proxies.virtual, method, "/.ids-s1/4/", Depth="1", **headers)
    assert status == 502


async def test_with_virtual_levels_off_nzbdav_stopped_is_a_502(proxies: Proxies) -> None:
    await proxies.stop_nzbdav()
    status, _, _ = await request(proxies.asking, "PROPFIND", "/.ids-s1/", Depth="1")
    assert status == 502


async def test_a_stalled_propfind_body_is_a_408(proxies: Proxies) -> None:
    async with running_proxy(proxies.backend.make_url("/").origin(), body_timeout=0.3) as url:
        assert url.port is not None
        reader, writer = await asyncio.open_connection("127.0.0.1", url.port)
        writer.write(
            b"PROPFIND /.ids-s0/ HTTP/1.1\r\nHost: proxy\r\nDepth: 1\r\n"
            b"Content-Length: 100\r\n\r\n<D:propfind"
        )
        await writer.drain()
        reply = await asyncio.wait_for(reader.read(), 10)  # the proxy closes after its 408
        writer.close()
    assert reply.startswith(b"HTTP/1.1 408 ")


# --- real rclone ------------------------------------------------------------------------


@dataclass
class Rclone:
    """An rclone binary and a config with one remote per shard view of each proxy."""

    binary: str
    config: Path

    async def run(self, *args: str) -> subprocess.CompletedProcess[bytes]:
        return await run_rclone(self.binary, self.config, *args)

    async def listed(self, *args: str) -> list[str]:
        done = await self.run("lsf", *args)
        assert done.returncode == 0, done.stderr.decode(errors="replace")
        return done.stdout.decode().splitlines()


@pytest.fixture(params=rclone_binaries())
def rclone(request: pytest.FixtureRequest, proxies: Proxies, tmp_path: Path) -> Rclone:
    binary = require_program(request.param) if request.param == "rclone" else request.param
    obscured = obscure(PASSWORD, os.urandom(16))
    virtual = webdav_remotes(proxies.virtual, 4, USER, obscured)
    asking = webdav_remotes(proxies.asking, 4, USER, obscured).replace("[shard", "[asking")
    config = tmp_path / "rclone.conf"
    config.write_text(virtual + asking.replace("[rest]", "[asking-rest]"))
    return Rclone(binary, config)


def upper_levels(shard: int) -> list[str]:
    """``lsf -R --max-depth 3`` of a shard view: its characters and two levels below."""
    tree = []
    for first in sorted(SHARD_MAP.chars_of(shard)):
        tree.append(f"{first}/")
        for second in HEX_DIGITS:
            tree.append(f"{first}/{second}/")
            tree += [f"{first}/{second}/{third}/" for third in HEX_DIGITS]
    return tree


async def test_rclone_walks_upper_levels_as_through_nzbdav_without_asking_it(
    proxies: Proxies, rclone: Rclone
) -> None:
    before = proxies.backend_requests()
    walked = await rclone.listed("-R", "--max-depth", "3", "shard1:")
    assert proxies.backend_requests() == before
    assert sorted(walked) == upper_levels(1)
    assert sorted(await rclone.listed("-R", "--max-depth", "3", "asking1:")) == sorted(walked)
    assert proxies.backend_requests() > before


async def test_rclone_reads_a_leaf_through_nzbdav(proxies: Proxies, rclone: Rclone) -> None:
    leaf = proxies.leaf(2)
    files = await rclone.listed("--format", "ps", "--separator", " ", f"shard2:{leaf}")
    expected = [
        f"{u} {f.size}" for u, f in proxies.library.ids.items() if u[:5] == leaf.replace("/", "")
    ]
    assert sorted(files) == sorted(expected)


async def test_rclone_with_nzbdav_stopped_lists_upper_levels_and_fails_a_leaf(
    proxies: Proxies, rclone: Rclone
) -> None:
    await proxies.stop_nzbdav()
    assert sorted(await rclone.listed("-R", "--max-depth", "3", "shard3:")) == upper_levels(3)
    assert await rclone.listed("shard3:c/0/f/") == [f"{c}/" for c in HEX_DIGITS]
    done = await rclone.run("lsf", f"shard3:{proxies.leaf(3)}")
    assert done.returncode != 0
    assert done.stdout == b""
    # Asking NzbDav for everything, the view's root fails too.
    assert (await rclone.run("lsf", "asking3:")).returncode != 0
