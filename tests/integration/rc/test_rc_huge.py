"""A huge forget (tens of thousands of paths) while every shard rclone is down.

The RC endpoint shares the event loop with WebDAV: the call must not stop a small
WebDAV read from being answered, and its failures must be logged as a few lines with
counts, not one line per path. (How long WebDAV stalls is measured by
``loadtest/rc_stall.py``, not asserted here.)
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import replace

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from yarl import URL

from nzbdav_standin import Library, make_standin_app
from nzbdav_standin.catalog import uuid_path
from shardproxy.rc.server import make_rc_app
from shardproxy.tools.ports import free_port
from tests.helpers.proxies import RunningProxy, proxy_settings

AiohttpClient = Callable[[web.Application], Awaitable[TestClient[web.Request, web.Application]]]
PATHS = 40_000
PENDING_MAX = 1000
SMALL_UUID = "961b00d8-1111-4222-8333-444455556666"


def huge_forget(count: int) -> dict[str, str]:
    """``{"dir": ".ids/...", "dir2": ...}`` naming ``count`` files spread over every shard."""
    rand = random.Random(11)
    params = {}
    for n in range(1, count + 1):
        uuid = "".join(rand.choice("0123456789abcdef") for _ in range(8)) + SMALL_UUID[8:]
        params["dir" if n == 1 else f"dir{n}"] = uuid_path(uuid).lstrip("/")
    return params


async def test_a_huge_forget_to_dead_rclones_logs_a_line_per_rclone_and_outcome(
    aiohttp_client: AiohttpClient, proxy: RunningProxy, caplog: pytest.LogCaptureFixture
) -> None:
    library = Library()
    small = library.add(uuid_path(SMALL_UUID), 1000)
    backend = TestServer(make_standin_app(library, user=None, password=None))
    await backend.start_server()
    dead = {n: URL(f"http://127.0.0.1:{free_port()}/") for n in range(4)}
    settings = replace(
        proxy_settings(backend.make_url("/")), shard_rc=dead, rc_pending_max=PENDING_MAX
    )
    rc = await aiohttp_client(make_rc_app(settings))
    params = huge_forget(PATHS)
    try:
        async with proxy(backend.make_url("/")) as base, aiohttp.ClientSession() as client:
            with caplog.at_level(logging.INFO, "shardproxy.rc"):
                forget = asyncio.ensure_future(rc.post("/vfs/forget", json=params))
                # A small WebDAV read while the forget is planned, sent and recorded.
                async with client.get(base / f".ids-s2/9/6/1/b/0/{SMALL_UUID}") as reply:
                    assert reply.status == 200
                    assert await reply.read() == small.read(0, 999)
                answer = await (await forget).json()
        assert answer["forgotten"] == []
        assert len(answer["notForgotten"]) == PATHS
        lines = [r.getMessage() for r in caplog.records if r.name == "shardproxy.rc"]
        # Per shard: its calls fail, so many paths are kept, so many dropped.
        assert len(lines) <= 3 * len(dead), "\n".join(lines[:20])
        dropped = [line for line in lines if line.startswith("dropped ")]
        assert len(dropped) == len(dead)
        counts = sum(int(line.split()[1]) for line in dropped)
        assert counts == PATHS - PENDING_MAX
    finally:
        await backend.close()
