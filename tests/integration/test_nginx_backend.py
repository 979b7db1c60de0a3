"""nginx with WebDAV (dav + dav-ext) as the backend: what it does unlike NzbDav.

nginx's dav-ext leaves dot-entries out of listings, so its root listing has no
``/.ids``; and it redirects a folder asked without its trailing slash to an absolute
URL with its own port. Through the proxy, the root still shows the shard view folders
and the redirect points at the proxy. nginx's ``.ids`` folders are real ones, not
NzbDav's virtual levels, so the proxy runs with ``virtual_levels`` off, as it should in
front of any backend that is not NzbDav.
"""

from __future__ import annotations

import asyncio
import getpass
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from yarl import URL

from shardproxy.tools.ports import free_port
from tests.helpers.processes import require_program
from tests.helpers.proxies import RunningProxy

DAV_EXT = Path("/usr/lib/nginx/modules/ngx_http_dav_ext_module.so")
UUID = "961b00d8-1111-4222-8333-444455556666"
SHARDS = 4


@pytest.fixture
async def nginx(tmp_path: Path) -> AsyncIterator[URL]:
    """nginx serving a small tree (``.ids`` and ``content``) over WebDAV on loopback."""
    binary = require_program("nginx")
    if not DAV_EXT.exists():
        pytest.skip("nginx's dav-ext module is missing: run ./scripts/setup.sh")
    root = tmp_path / "root"
    (root / ".ids/9/6/1/b/0").mkdir(parents=True)
    (root / ".ids/9/6/1/b/0" / UUID).write_bytes(b"hello from nginx\n")
    (root / "content/movies").mkdir(parents=True)
    (tmp_path / "temp").mkdir()
    port = free_port()
    temp = tmp_path / "temp"
    conf = tmp_path / "nginx.conf"
    conf.write_text(
        # user: the test's own, so its workers can read the test's private directory.
        f"load_module {DAV_EXT};\ndaemon off;\nuser {getpass.getuser()};\n"
        f"pid {tmp_path}/nginx.pid;\n"
        f"error_log {tmp_path}/error.log;\nevents {{}}\nhttp {{\n  access_log off;\n"
        + "".join(
            f"  {kind}_temp_path {temp};\n"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        + f"  server {{\n    listen 127.0.0.1:{port};\n    root {root};\n"
        "    dav_ext_methods PROPFIND OPTIONS;\n    autoindex on;\n  }\n}\n"
    )
    process = await asyncio.create_subprocess_exec(
        binary,
        "-p",
        str(tmp_path),
        "-c",
        str(conf),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        async with asyncio.timeout(30):
            while True:
                try:
                    _, writer = await asyncio.open_connection("127.0.0.1", port)
                    writer.close()
                    break
                except OSError:
                    assert process.returncode is None, (tmp_path / "error.log").read_text()
                    await asyncio.sleep(0.05)
        yield URL(f"http://127.0.0.1:{port}")
    finally:
        process.terminate()
        await process.wait()


async def propfind_hrefs(client: aiohttp.ClientSession, url: URL) -> list[str]:
    async with client.request("PROPFIND", url, headers={"Depth": "1"}) as reply:
        assert reply.status == 207
        body = await reply.text()
    return [part.split("<", 1)[0] for part in body.split("href>")[1::2]]


async def test_root_listing_shows_view_folders_though_nginx_hides_dot_entries(
    nginx: URL, proxy: RunningProxy
) -> None:
    async with proxy(nginx, virtual_levels=False) as base, aiohttp.ClientSession() as client:
        assert "/.ids/" not in await propfind_hrefs(client, nginx / "")
        hrefs = await propfind_hrefs(client, base / "")
    assert hrefs[:2] == ["/", "/content/"]
    assert sorted(href.rstrip("/") for href in hrefs[2:]) == [f"/.ids-s{n}" for n in range(SHARDS)]


async def test_nginx_folder_redirect_points_at_the_proxy(nginx: URL, proxy: RunningProxy) -> None:
    async with proxy(nginx, virtual_levels=False) as base, aiohttp.ClientSession() as client:
        async with client.get(base / "content", allow_redirects=False) as reply:
            assert reply.status == 301
            assert reply.headers["Location"] == str(base / "content/")
        async with client.get(base / ".ids-s2/9/6/1/b", allow_redirects=False) as reply:
            assert reply.status == 301
            assert reply.headers["Location"] == str(base / ".ids-s2/9/6/1/b/")
        # Followed, the redirect reaches the folder through the proxy.
        async with client.get(base / ".ids-s2/9/6/1/b/0/") as reply:
            assert reply.status == 200 and UUID in await reply.text()
