"""A backend's Location never leads a shard view's client out of its view."""

from __future__ import annotations

import asyncio

import aiohttp
from multidict import CIMultiDictProxy

from tests.helpers.proxies import RunningProxy
from tests.helpers.raw_backend import Script, raw_backend

# A fifth-level folder of shard 1's view: NzbDav is asked for it (the levels above are
# the proxy's own with virtual_levels on).
LEAF_FOLDER = "/.ids-s1/4/5/6/7/8"


def redirecting(
    status: bytes, location: bytes, *, to_host: bool = False
) -> tuple[Script, list[bytes]]:
    """A backend answering ``status`` with ``location`` (after the request's Host if asked),
    as Apache, nginx and wsgidav redirect a folder asked without its slash; and the
    list its request heads go into."""
    heads: list[bytes] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        where = location
        if to_host:
            host = next(
                line.split(b":", 1)[1].strip()
                for line in heads[-1].split(b"\r\n")
                if line.lower().startswith(b"host:")
            )
            where = b"http://" + host + location
        writer.write(
            b"HTTP/1.1 " + status + b"\r\nLocation: " + where + b"\r\n"
            b"Content-Length: 0\r\nConnection: close\r\n\r\n"
        )
        await writer.drain()

    return answer, heads


async def ask(
    proxy: RunningProxy,
    backend: tuple[Script, list[bytes]],
    method: str,
    path: str,
    **settings: object,
) -> tuple[int, CIMultiDictProxy[str]]:
    async with (
        raw_backend(*backend) as backend_url,
        proxy(backend_url, **settings) as url,
        aiohttp.ClientSession() as client,
        client.request(method, url.with_path(path), allow_redirects=False) as reply,
    ):
        return reply.status, reply.headers


async def test_view_root_without_slash_redirects_into_the_view(proxy: RunningProxy) -> None:
    # PROPFIND /.ids-s1 goes upstream as /.ids (with virtual_levels off: on, the proxy
    # answers the view's upper folders itself), which the backend redirects to /.ids/.
    status, headers = await ask(
        proxy,
        redirecting(b"301 Moved", b"/.ids/", to_host=True),
        "PROPFIND",
        "/.ids-s1",
        virtual_levels=False,
    )
    assert status == 301
    assert headers["Location"].endswith("/.ids-s1/")


async def test_redirect_into_another_shards_prefix_is_502(proxy: RunningProxy) -> None:
    status, headers = await ask(
        proxy, redirecting(b"301 Moved", b"/.ids/0/", to_host=True), "GET", LEAF_FOLDER
    )
    assert status == 502
    assert "Location" not in headers


async def test_created_with_a_location_outside_the_view_loses_the_location(
    proxy: RunningProxy,
) -> None:
    status, headers = await ask(
        proxy, redirecting(b"201 Created", b"/.ids-s0/0/"), "MKCOL", "/.ids-s1/4/"
    )
    assert status == 201
    assert "Location" not in headers


async def test_redirect_to_pass_through_space_passes(proxy: RunningProxy) -> None:
    status, headers = await ask(
        proxy, redirecting(b"302 Found", b"/content/movies/"), "GET", LEAF_FOLDER + "/"
    )
    assert (status, headers["Location"]) == (302, "/content/movies/")
