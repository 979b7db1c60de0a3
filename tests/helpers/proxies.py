"""Running the proxy for real on loopback, and the event loops scenarios run on."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import replace
from typing import Any

import pytest
from yarl import URL

from shardproxy.config.settings import HostPort, Settings
from shardproxy.core.shards import ShardMap
from shardproxy.process.app import make_proxy_server
from shardproxy.process.server import start_site


def basic_auth(user: str, password: str) -> dict[str, str]:
    """An Authorization header for HTTP Basic auth."""
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


RunningProxy = Callable[..., AbstractAsyncContextManager[URL]]


def proxy_settings(backend: str | URL, **overrides: Any) -> Settings:
    """Settings for a test proxy on an ephemeral loopback port, 4 shards by default."""
    base = Settings(
        backend=URL(str(backend)),
        listen=HostPort("127.0.0.1", 0),
        shard_map=ShardMap.even(4),
        connect_timeout=2.0,
        read_timeout=10.0,
    )
    return replace(base, **overrides)


@asynccontextmanager
async def running_proxy(backend: str | URL, **overrides: Any) -> AsyncIterator[URL]:
    """Start the proxy exactly as `shardproxy serve` does; yield its base URL."""
    settings = proxy_settings(backend, **overrides)
    runner = await start_site(make_proxy_server(settings), settings.listen, reuse_port=False)
    try:
        host, port = runner.addresses[0][:2]
        yield URL(f"http://{host}:{port}")
    finally:
        await runner.cleanup()


def run_on(loop_kind: str, scenario: Callable[[], Awaitable[None]]) -> None:
    """Run ``scenario`` on a fresh event loop of the given kind, for at most 20 s."""
    factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    if loop_kind == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        factory = uvloop.new_event_loop

    async def bounded() -> None:
        await asyncio.wait_for(scenario(), timeout=20)

    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(bounded())


async def until(condition: Callable[[], bool], what: str) -> None:
    """Poll ``condition`` for up to 5 s."""
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"still waiting for {what}")
