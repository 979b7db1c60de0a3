"""The RC endpoint with real rclones behind it: shard rclones and a fallback, and calls to it."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp import web
from aiohttp.test_utils import TestClient
from yarl import URL

from shardproxy.config.settings import Settings
from shardproxy.core.shards import ShardMap
from shardproxy.rc.pending import Backoff
from shardproxy.rc.server import make_rc_app
from tests.helpers.rclone_procs import (
    RcloneRc,
    make_rclone,
    rclone_version,
    start_all,
    webdav_remote,
)

SHARD_MAP = ShardMap.even(4)
FAST = Backoff(base=0.05, cap=0.3)
NZBDAV_UUID = "961b00d8-1111-4222-8333-444455556666"
IDS = ".ids/9/6/1/b/0"
AUTH_USER, AUTH_PASS = "rcuser", "rc pass:with colon"
NZBDAV_CONTENT_TYPE = "application/json; charset=utf-8"

AiohttpClient = Callable[[web.Application], Awaitable[TestClient[web.Request, web.Application]]]
Client = TestClient[web.Request, web.Application]


@dataclass
class Stack:
    """Shard rclones 0..3 and one fallback rclone, all serving the same proxy."""

    shards: list[RcloneRc]
    fallback: RcloneRc
    version: str

    @property
    def everyone(self) -> list[RcloneRc]:
        return [*self.shards, self.fallback]

    def marks(self) -> list[int]:
        return [proc.mark() for proc in self.everyone]

    def calls(self, marks: list[int], command: str | None = None) -> list[list[str]]:
        """Per rclone (shards, then fallback): the parameter maps it logged after ``marks``."""
        return [
            [call.params for call in proc.calls_since(mark, command)]
            for proc, mark in zip(self.everyone, marks, strict=True)
        ]

    def commands_seen(self, marks: list[int]) -> set[str]:
        """Every RC command any rclone's log mentions after ``marks``."""
        seen: set[str] = set()
        for proc, mark in zip(self.everyone, marks, strict=True):
            seen.update(proc.commands_seen_since(mark))
        return seen

    def settings(self, **overrides: Any) -> Settings:
        base = Settings(
            backend=URL("http://127.0.0.1:9"),
            shard_map=SHARD_MAP,
            shard_rc={n: proc.rc_url for n, proc in enumerate(self.shards)},
            rc_fallback=(self.fallback.rc_url,),
            rc_timeout=5.0,
        )
        return replace(base, **overrides)


@contextmanager
def running_stack(binary: str, proxy: URL) -> Iterator[Stack]:
    """Shard N's rclone serves ``/.ids-sN``; shard 3's RC wants a password."""
    with tempfile.TemporaryDirectory(prefix="rc-") as tmp:
        base = Path(tmp)
        shards = [
            make_rclone(
                binary,
                base,
                f"shard{n}",
                remote=webdav_remote(proxy / f".ids-s{n}"),
                extra=("--vfs-cache-mode", "full"),
                user=AUTH_USER if n == 3 else None,
                password=AUTH_PASS if n == 3 else None,
            )
            for n in range(SHARD_MAP.count)
        ]
        fallback = make_rclone(binary, base, "fallback", remote=webdav_remote(proxy))
        start_all([*shards, fallback])
        running = Stack(shards, fallback, rclone_version(binary))
        try:
            yield running
        finally:
            for proc in running.everyone:
                proc.stop()


async def post(
    client: Client,
    command: str,
    body: bytes | dict[str, Any] | None = None,
    *,
    content_type: str | None = "application/json",
    auth: tuple[str, str] | None = None,
) -> tuple[int, Any]:
    """POST to the proxy's RC endpoint; the reply's status and decoded JSON."""
    data = orjson.dumps(body) if isinstance(body, dict) else body
    headers = {"Content-Type": content_type} if content_type else {}
    if auth is not None:
        headers["Authorization"] = aiohttp.encode_basic_auth(*auth)
    async with client.post("/" + command, data=data, headers=headers) as response:
        raw = await response.read()
        try:
            return response.status, orjson.loads(raw)
        except orjson.JSONDecodeError:
            return response.status, raw.decode()


async def rc_client(aiohttp_client: AiohttpClient, settings: Settings) -> Client:
    return await aiohttp_client(make_rc_app(settings, backoff=FAST))


async def eventually(condition: Callable[[], bool]) -> None:
    """Poll ``condition`` until it holds (10 s at most), yielding to the event loop."""
    async with asyncio.timeout(10):
        while True:
            if condition():
                return
            await asyncio.sleep(0.02)
