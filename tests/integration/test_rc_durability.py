"""A reply that says "will retry" is given only once the retry is on disk.

The handler runs here without its retry loop (which also saves, now and then), so the
only save that can have happened when the reply comes back is the one the promise
depends on; the store is then read from another SQLite connection, as a restarted
proxy would read it.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import aiohttp
from yarl import URL

from shardproxy.config.settings import Settings
from shardproxy.core.shards import ShardMap
from shardproxy.rc.pending import Backoff, PendingDeliveries
from shardproxy.rc.queue import RetryQueue
from shardproxy.rc.send import RcForwarder, endpoints_of
from shardproxy.rc.server import RcHandler
from shardproxy.rc.store import PendingStore
from shardproxy.tools.ports import free_port

IDS = ".ids/9/6/1/b/0"  # owned by shard 2 of 4


def saved_rows(path: Path) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as db:
        tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return [row for table in tables for row in db.execute(f"SELECT * FROM {table}")]


async def test_an_undelivered_forget_is_saved_before_the_reply(tmp_path: Path) -> None:
    dead = URL(f"http://127.0.0.1:{free_port()}")  # nothing listens: it fails at once
    settings = Settings(
        backend=URL("http://127.0.0.1:9"),
        shard_map=ShardMap.even(4),
        shard_rc={n: dead for n in range(4)},
        rc_timeout=2.0,
    )
    store_path = tmp_path / "pending.sqlite"
    pending = PendingDeliveries(max_count=100, max_age=3600.0, backoff=Backoff())
    queue = RetryQueue(pending, PendingStore(store_path))
    handler = RcHandler(settings, queue)
    try:
        async with aiohttp.ClientSession() as session:
            forwarder = RcForwarder(session, endpoints_of(settings), settings.rc_timeout)
            reply = await handler.path_call(forwarder, "vfs/forget", {"dir": IDS}, False)
            rows = saved_rows(store_path)
    finally:
        await queue.close()
    assert reply["forgotten"] == []
    assert "will retry" in reply["notForgotten"][IDS]
    assert len(rows) == 1
    assert any("9/6/1/b/0" in str(value) for value in rows[0])
