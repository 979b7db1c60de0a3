"""The stand-in at library scale: a generated library, NzbDav's delays, request counts.

Small libraries (a few hundred items) keep these fast; the scan benchmark
(``loadtest/scan.py``) runs the same code with twenty thousand.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from loadtest.scan import library_items, make_library
from nzbdav_standin import Library, make_standin_app, uuid_path
from nzbdav_standin.generated import build_generated, parse_kib_range
from nzbdav_standin.latency import Latency, parse_milliseconds
from tests.helpers.processes import REPO

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[..., Awaitable[Client]]
ITEMS = 300


def test_generated_library_is_the_same_for_the_same_seed() -> None:
    first = build_generated(Library(), ITEMS, seed=5)
    second = build_generated(Library(), ITEMS, seed=5)
    other = build_generated(Library(), ITEMS, seed=6)
    assert first == second
    assert [i.uuid for i in first] != [i.uuid for i in other]


def test_generated_library_is_seven_episodes_in_ten() -> None:
    items = build_generated(Library(), ITEMS, seed=5)
    episodes = [i for i in items if i.content_path.startswith("/content/tv/")]
    films = [i for i in items if i.content_path.startswith("/content/movies/")]
    # A show comes whole (its seasons' episodes at once), so the share is near, not at.
    assert len(episodes) + len(films) == ITEMS
    assert 0.65 <= len(episodes) / ITEMS <= 0.75
    assert len({i.library_path for i in items}) == ITEMS
    assert all(i.library_path.startswith(("tv/", "movies/")) for i in items)


def test_generated_sizes_stay_in_their_range() -> None:
    library = Library()
    build_generated(library, ITEMS, seed=5, sizes=(1000, 2000))
    assert {1000 <= f.size <= 2000 for f in library.ids.values()} == {True}


async def test_every_generated_item_is_served_under_ids_and_as_a_link(
    aiohttp_client: MakeClient,
) -> None:
    library = Library()
    items = build_generated(library, 40, seed=5)
    client = await aiohttp_client(make_standin_app(library, user=None, password=None))
    for item in items:
        leaf = uuid_path(item.uuid).rsplit("/", 1)[0] + "/"
        reply = await client.request("PROPFIND", leaf, headers={"Depth": "1"})
        assert item.uuid in await reply.text()
        link = "/completed-symlinks" + item.content_path.removeprefix("/content") + ".rclonelink"
        reply = await client.get(link)
        assert await reply.text() == f"/mnt/nzbdav{uuid_path(item.uuid)}"


async def test_a_listing_waits_the_listing_delay(aiohttp_client: MakeClient) -> None:
    library = Library()
    build_generated(library, 5, seed=5)
    app = make_standin_app(library, user=None, password=None, latency=Latency(listing=0.2))
    client = await aiohttp_client(app)
    loop = asyncio.get_running_loop()
    started = loop.time()
    reply = await client.request("PROPFIND", "/.ids/", headers={"Depth": "1"})
    assert reply.status == 207
    assert loop.time() - started >= 0.2


async def test_a_read_waits_the_first_byte_delay_and_a_listing_does_not(
    aiohttp_client: MakeClient,
) -> None:
    library = Library()
    item = build_generated(library, 1, seed=5)[0]
    latency = Latency(first_byte=(0.3, 0.3))
    client = await aiohttp_client(
        make_standin_app(library, user=None, password=None, latency=latency)
    )
    loop = asyncio.get_running_loop()
    started = loop.time()
    await client.request("PROPFIND", "/.ids/", headers={"Depth": "1"})
    listed = loop.time()
    reply = await client.get(uuid_path(item.uuid), headers={"Range": "bytes=0-99"})
    assert len(await reply.read()) == 100
    assert listed - started < 0.3 <= loop.time() - listed


def test_delays_and_sizes_are_read_from_their_flags() -> None:
    assert parse_milliseconds("80") == (0.08, 0.08)
    assert parse_milliseconds("30-300") == (0.03, 0.3)
    assert parse_kib_range("64-512") == (65536, 524288)
    for bad in ("fast", "300-30", "-5"):
        with pytest.raises(ValueError, match="milliseconds"):
            parse_milliseconds(bad)
    with pytest.raises(ValueError, match="KiB"):
        parse_kib_range("512-64")


def test_sigusr1_prints_the_requests_received_by_method() -> None:
    argv = [sys.executable, "-m", "nzbdav_standin", "--listen", "127.0.0.1:0", "--no-auth"]
    argv += ["--items", "20"]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, cwd=REPO)
    try:
        assert process.stdout is not None
        url = process.stdout.readline().decode().split()[-1].rstrip("/")
        for method, path in (("PROPFIND", "/.ids/"), ("PROPFIND", "/"), ("GET", "/README")):
            request = urllib.request.Request(url + path, method=method, headers={"Depth": "1"})
            with urllib.request.urlopen(request, timeout=10) as reply:
                reply.read()
        process.send_signal(signal.SIGUSR1)
        counts = json.loads(process.stdout.readline())
        readme = len(Library().readme.data or b"")
        assert counts == {"GET": 1, "PROPFIND": 2, "bytes read": readme}
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_library_walk_lists_links_to_folders_as_items(tmp_path: Path) -> None:
    # os.walk would follow each link to ask whether it is a folder (a stat through the
    # mount per item), and take a link to a folder for a folder.
    (tmp_path / "elsewhere").mkdir()
    items = build_generated(Library(), 12, seed=5)
    make_library(tmp_path / "library", items, lambda _uuid: str(tmp_path / "elsewhere"))
    found = library_items(tmp_path / "library")
    assert sorted(found) == sorted(tmp_path / "library" / i.library_path for i in items)
