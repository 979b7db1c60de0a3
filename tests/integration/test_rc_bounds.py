"""RC refreshes against real rclone: no walk of the virtual tree, no call sent twice at once.

The shard rclones (Debian's 1.60.1) serve their views of the proxy in front of the NzbDav
stand-in with ``-vv``, whose log shows the parameters of every RC call each one got. A
gate in front of the stand-in can hold a shard's listing, which keeps that shard's
``vfs/refresh`` running for as long as the test wants.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterator

import pytest
from aiohttp import web
from yarl import URL

from nzbdav_standin import Library, make_standin_app
from shardproxy.config.settings import Settings
from shardproxy.process.app import make_proxy_server
from shardproxy.rc.bounds import CLAMP_NOTE
from shardproxy.rc.calls import REFRESH
from shardproxy.rc.server import RC_IN_FLIGHT
from tests.helpers.rclone_procs import BackgroundApps, debian_rclone, go_map
from tests.helpers.rcstack import (
    IDS,
    NZBDAV_UUID,
    SHARD_MAP,
    AiohttpClient,
    Stack,
    eventually,
    post,
    rc_client,
    running_stack,
)

pytestmark = pytest.mark.rclone
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Gate:
    """Holds the stand-in's listings of one folder while closed, counting them."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.closed = False
        self.opened = threading.Event()
        self.held = 0

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if self.closed and request.method == "PROPFIND" and request.path.startswith(self.prefix):
            self.held += 1
            # The gate is opened from the test's own thread and event loop.
            await asyncio.to_thread(self.opened.wait)
        return await handler(request)

    def close(self) -> None:
        self.opened.clear()
        self.closed = True

    def open(self) -> None:
        self.closed = False
        self.opened.set()


GATE = Gate("/" + IDS)


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    """Shard rclones 0..3 and a fallback, serving a proxy in front of a gated stand-in."""
    binary = debian_rclone()
    if binary is None:
        pytest.skip("rclone is not installed (apt-get install rclone gives 1.60.1)")
    library = Library.sample(16, seed=7)
    library.add("/content/tv/Show/Show.S01E01.mkv", 1000, uuid=NZBDAV_UUID)

    def standin() -> web.Application:
        app = make_standin_app(library, user=None, password=None)
        app.middlewares.append(GATE.middleware)
        return app

    apps = BackgroundApps()
    try:
        backend = apps.serve(standin)
        proxy: URL = apps.serve(
            lambda: make_proxy_server(Settings(backend=backend, shard_map=SHARD_MAP))
        )
        with running_stack(binary, proxy) as running:
            yield running
    finally:
        GATE.open()
        apps.close()


async def test_a_recursive_refresh_of_ids_reaches_every_shard_as_a_flat_refresh(
    aiohttp_client: AiohttpClient, stack: Stack
) -> None:
    client = await rc_client(aiohttp_client, stack.settings())
    marks = stack.marks()
    status, reply = await post(client, REFRESH, {"dir": ".ids", "recursive": "true"})
    assert status == 200, reply
    assert reply == {"result": {".ids": f"OK ({CLAMP_NOTE})"}}
    # Each shard refreshed its root, without "recursive"; the fallback got nothing.
    assert stack.calls(marks, REFRESH) == [["map[]"]] * 4 + [[]]


async def test_a_second_identical_refresh_while_the_first_runs_is_not_sent_again(
    aiohttp_client: AiohttpClient, stack: Stack
) -> None:
    client = await rc_client(aiohttp_client, stack.settings())
    shard2 = stack.shards[2]
    mark = shard2.mark()
    GATE.close()
    try:
        first = asyncio.create_task(post(client, REFRESH, {"dir": IDS}))
        # Shard 2's rclone is now listing the folder for the first call, held at the gate.
        await eventually(lambda: GATE.held == 1)
        second = asyncio.create_task(post(client, REFRESH, {"dir": IDS}))
        await eventually(lambda: client.app[RC_IN_FLIGHT].shared_count == 1)
    finally:
        GATE.open()
    assert await first == (200, {"result": {IDS: "OK"}})
    assert await second == (200, {"result": {IDS: "OK"}})
    assert [call.params for call in shard2.calls_since(mark, REFRESH)] == [
        go_map({"dir": "9/6/1/b/0"})
    ]
    assert GATE.held == 1
