"""The admin listener against real rclones: health, readiness, metrics, the status page.

Shard 0's and shard 2's rclones (``rclone serve webdav --rc`` of their shard views, disk
cache on) run; shard 1's was started and killed, so it is down; shard 3 has no RC URL.
The status page is drawn by a real headless Chromium.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp.pytest_plugin import AiohttpServer
from aiohttp.test_utils import TestServer
from prometheus_client.parser import text_string_to_metric_families
from yarl import URL

from nzbdav_standin import Library, make_standin_app
from shardproxy.config.settings import HostPort, Settings
from shardproxy.core.shards import ShardMap
from shardproxy.ops.admin import ADMIN_STATE, make_admin_app
from shardproxy.process.app import make_proxy_server
from shardproxy.telemetry.metrics import Metrics
from tests.helpers.proxies import basic_auth
from tests.helpers.rclone_procs import (
    BackgroundApps,
    RcloneRc,
    debian_rclone,
    free_port,
    make_rclone,
    start_all,
    webdav_remote,
)

pytestmark = pytest.mark.rclone
SHARD_MAP = ShardMap.even(4)
FILM_UUID = "0a1b2c3d-1111-4222-8333-444455556666"
FILM_SIZE = 3 << 20
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)


@dataclass
class Stack:
    backend: URL
    up: list[RcloneRc]  # shards 0 and 2
    dead_rc_url: URL  # shard 1's, whose rclone was killed

    def settings(self, **overrides: Any) -> Settings:
        base = Settings(
            backend=self.backend,
            shard_map=SHARD_MAP,
            shard_rc={0: self.up[0].rc_url, 1: self.dead_rc_url, 2: self.up[1].rc_url},
            admin_listen=HostPort("127.0.0.1", 0),
            admin_poll_interval=3600.0,
            rc_timeout=5.0,
        )
        return replace(base, **overrides)


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    binary = debian_rclone()
    if binary is None:
        pytest.skip("rclone is not installed (apt-get install rclone gives 1.60.1)")
    library = Library.sample(16, seed=3)
    library.add("/content/movies/Film/Film.mkv", FILM_SIZE, uuid=FILM_UUID)
    apps = BackgroundApps()
    with tempfile.TemporaryDirectory(prefix="admin-") as tmp:
        base = Path(tmp)
        rclones: list[RcloneRc] = []
        try:
            standin = apps.serve(lambda: make_standin_app(library, user=None, password=None))
            proxy = apps.serve(
                lambda: make_proxy_server(Settings(backend=standin, shard_map=SHARD_MAP))
            )
            cache_flags = (
                "--vfs-cache-mode",
                "full",
                "--vfs-cache-max-size",
                "1G",
                "--vfs-cache-poll-interval",
                "1s",
            )
            for shard in (0, 1, 2):
                rclone = make_rclone(
                    binary,
                    base,
                    f"shard{shard}",
                    remote=webdav_remote(proxy / f".ids-s{shard}"),
                    extra=cache_flags,
                )
                rclone.protocol = "webdav"
                rclones.append(rclone)
            start_all(rclones)
            dead = rclones.pop(1)
            dead_url = dead.rc_url
            dead.kill()
            # Read the film through shard 0's rclone, so its cache holds something.
            film = f"http://127.0.0.1:{rclones[0].http_port}/0/a/1/b/2/{FILM_UUID}"
            with urllib.request.urlopen(film, timeout=30) as reply:
                assert len(reply.read()) == FILM_SIZE
            wait_for_cache(rclones[0])
            yield Stack(standin, rclones, dead_url)
        finally:
            for rclone in rclones:
                rclone.stop()
            apps.close()


def wait_for_cache(rclone: RcloneRc) -> None:
    """Poll until the cache cleaner has counted the read file (every 1 s here)."""
    for _ in range(300):
        stats = orjson.loads(rclone.post("vfs/stats", b"{}"))
        if stats["diskCache"]["bytesUsed"] > 0:
            return
        time.sleep(0.05)
    raise AssertionError(f"shard 0's cache stayed empty: {rclone.tail()}")


async def admin_server(
    aiohttp_server: AiohttpServer, settings: Settings, metrics: Metrics | None = None
) -> TestServer:
    """The admin app on loopback, after one complete poll of every rclone."""
    app = make_admin_app(settings, metrics or Metrics())
    server = await aiohttp_server(app)
    await app[ADMIN_STATE].poll()
    return server


async def get(server: TestServer, path: str, **headers: str) -> tuple[int, str]:
    """GET ``path`` from the server: (status, text)."""
    async with aiohttp.ClientSession() as session:
        async with session.get(server.make_url(path), headers=headers) as reply:
            return reply.status, await reply.text()


async def test_healthz_answers_while_shards_are_down(
    stack: Stack, aiohttp_server: AiohttpServer
) -> None:
    server = await admin_server(aiohttp_server, stack.settings())
    assert await get(server, "/healthz") == (200, "ok\n")


async def test_readyz_is_503_naming_the_dead_rclone(
    stack: Stack, aiohttp_server: AiohttpServer
) -> None:
    server = await admin_server(aiohttp_server, stack.settings())
    status, text = await get(server, "/readyz")
    assert status == 503
    dead = f"shard 1 rclone (127.0.0.1:{stack.dead_rc_url.port}) does not answer rc/noop"
    assert dead in text
    assert "shard 0" not in text
    assert "shard 2" not in text
    assert "NzbDav" not in text


async def test_readyz_is_200_when_nzbdav_and_every_rclone_answer(
    stack: Stack, aiohttp_server: AiohttpServer
) -> None:
    settings = stack.settings(shard_rc={0: stack.up[0].rc_url, 2: stack.up[1].rc_url})
    server = await admin_server(aiohttp_server, settings)
    assert await get(server, "/readyz") == (200, "ready\n")


async def test_readyz_names_nzbdav_when_it_is_down(
    stack: Stack, aiohttp_server: AiohttpServer
) -> None:
    nobody = URL(f"http://127.0.0.1:{free_port()}")
    settings = stack.settings(backend=nobody, shard_rc={0: stack.up[0].rc_url})
    server = await admin_server(aiohttp_server, settings)
    status, text = await get(server, "/readyz")
    assert status == 503
    assert "NzbDav does not answer: cannot connect" in text


async def test_metrics_show_each_shards_cache_as_its_rclone_reports_it(
    stack: Stack, aiohttp_server: AiohttpServer
) -> None:
    server = await admin_server(aiohttp_server, stack.settings())
    status, text = await get(server, "/metrics")
    assert status == 200
    found = {
        (sample.name, sample.labels.get("shard")): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    direct = orjson.loads(stack.up[0].post("vfs/stats", b"{}"))["diskCache"]
    assert direct["bytesUsed"] > 0
    assert found["shardproxy_cache_bytes_used", "0"] == direct["bytesUsed"]
    assert found["shardproxy_cache_files", "0"] == direct["files"]
    assert found["shardproxy_cache_max_bytes", "0"] == 1 << 30
    assert found["shardproxy_cache_out_of_space", "0"] == 0
    assert found["shardproxy_rclone_up", "0"] == 1
    assert found["shardproxy_rclone_up", "1"] == 0
    assert found["shardproxy_rclone_up", "2"] == 1
    assert ("shardproxy_cache_bytes_used", "1") not in found
    # The cache directory is on this machine: its disk is measured too.
    assert (
        found["shardproxy_cache_disk_bytes", "0"] > found["shardproxy_cache_disk_free_bytes", "0"]
    )


async def test_a_poll_never_blocks_a_request(stack: Stack, aiohttp_server: AiohttpServer) -> None:
    # An "rclone" that accepts and never answers: a poll of it hangs until its timeout.
    silent = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    try:
        settings = stack.settings(shard_rc={0: URL(f"http://127.0.0.1:{port}")}, rc_timeout=60.0)
        app = make_admin_app(settings, Metrics())
        server = await aiohttp_server(app)
        poll = asyncio.create_task(app[ADMIN_STATE].poll())
        await asyncio.sleep(0)
        for path in ("/metrics", "/status.json", "/", "/healthz"):
            status, _ = await get(server, path)
            assert status == 200
        assert not poll.done()
        poll.cancel()
    finally:
        silent.close()


async def test_beyond_loopback_rule_asks_for_credentials_except_healthz(
    stack: Stack, aiohttp_server: AiohttpServer
) -> None:
    settings = stack.settings(admin_user="ops", admin_pass="s3cret")
    server = await admin_server(aiohttp_server, settings)
    for path in ("/", "/metrics", "/status.json", "/readyz"):
        status, _ = await get(server, path)
        assert status == 401, path
    status, _ = await get(server, "/metrics", **basic_auth("ops", "s3cret"))
    assert status == 200
    status, _ = await get(server, "/metrics", **basic_auth("ops", "wrong"))
    assert status == 401
    assert await get(server, "/healthz") == (200, "ok\n")


async def test_status_json_has_a_row_per_shard(stack: Stack, aiohttp_server: AiohttpServer) -> None:
    metrics = Metrics()
    metrics.fallback_read(3)
    server = await admin_server(aiohttp_server, stack.settings(), metrics)
    status, text = await get(server, "/status.json")
    assert status == 200
    document = orjson.loads(text)
    states = {row["shard"]: row["state"] for row in document["shards"]}
    assert states == {0: "up", 1: "down", 2: "up", 3: "fallback"}
    assert document["nzbdav"]["up"] is True
    assert document["shards"][0]["cache"]["bytes_used"] > 0


def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return path


async def run_chromium(url: URL, *args: str) -> bytes:
    """Run headless Chromium on ``url`` with its own profile; its stdout."""
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        process = await asyncio.create_subprocess_exec(
            chromium(),
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            *args,
            str(url),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        out, _ = await asyncio.wait_for(process.communicate(), 90)
    assert process.returncode == 0
    return out


async def test_status_page_in_chromium_shows_the_dead_shard_as_down(
    stack: Stack, aiohttp_server: AiohttpServer, tmp_path: Path
) -> None:
    metrics = Metrics()
    metrics.fallback_read(3)
    server = await admin_server(aiohttp_server, stack.settings(), metrics)
    url = server.make_url("/")
    # --dump-dom prints the DOM after the page's scripts ran: the rows are drawn by
    # JavaScript, so they are not in the HTML the server sent.
    dom = (await run_chromium(url, "--dump-dom")).decode()
    drawn = re.findall(r'<article class="shard state-(\w+)" data-shard="(\d)"', dom)
    rows = {int(shard): state for state, shard in drawn}
    assert rows == {0: "up", 1: "down", 2: "up", 3: "fallback"}
    down_row = re.search(r'data-shard="1".*?</article>', dom)
    assert down_row is not None
    assert '<span class="badge">down</span>' in down_row.group(0)
    assert "rclone not answering" in down_row.group(0)
    fallback_row = re.search(r'data-shard="3".*?</article>', dom)
    assert fallback_row is not None
    assert '<span class="badge">via fallback</span>' in fallback_row.group(0)
    assert "Serving through fallback" in fallback_row.group(0)
    assert "NzbDav up" in dom
    screenshot = Path(os.environ.get("SHARDPROXY_SCREENSHOT", tmp_path / "status.png"))
    await run_chromium(url, f"--screenshot={screenshot}", "--window-size=1280,820")
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
