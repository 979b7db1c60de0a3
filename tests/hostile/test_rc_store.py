"""The RC retry queue against calls and files meant to break it: paths no file system
has, and store files that are damaged or belong to something else."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import orjson
from aiohttp.pytest_plugin import AiohttpClient
from yarl import URL

from shardproxy.config.settings import HostPort, Settings
from shardproxy.core.shards import ShardMap
from shardproxy.rc.calls import FORGET
from shardproxy.rc.pending import Pending, PendingChanges
from shardproxy.rc.server import RC_DELIVERY, make_rc_app
from shardproxy.rc.store import PendingStore
from shardproxy.rc.targets import Delivery, Target
from shardproxy.tools.ports import free_port


async def test_a_path_longer_than_path_max_is_400_and_never_kept(
    aiohttp_client: AiohttpClient,
) -> None:
    # Shard 0's rclone is down: a path it should get would be kept for retry.
    dead = URL(f"http://127.0.0.1:{free_port()}")
    settings = Settings(
        backend=URL("http://127.0.0.1:9"),
        shard_map=ShardMap.even(4),
        shard_rc={0: dead},
        rc_listen=HostPort("127.0.0.1", 0),
        rc_timeout=1.0,
    )
    app = make_rc_app(settings)
    client = await aiohttp_client(app)
    reply = await client.post("/vfs/forget", json={"dir": ".ids/0/" + "a" * 8000})
    body = orjson.loads(await reply.read())
    assert reply.status == 400
    assert "PATH_MAX" in body["error"]
    assert app[RC_DELIVERY].pending_count == 0


def serve_with_store(store: Path) -> subprocess.CompletedProcess[str]:
    """``shardproxy serve`` with its RC endpoint keeping its queue in ``store``."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "shardproxy.cli",
            "serve",
            "--backend",
            "http://127.0.0.1:9",
            "--listen",
            f"127.0.0.1:{free_port()}",
            "--rc-listen",
            f"127.0.0.1:{free_port()}",
            "--rc-pending-file",
            str(store),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_damaged_store_stops_the_start_with_one_message(tmp_path: Path) -> None:
    store_path = tmp_path / "pending.sqlite3"
    store = PendingStore(store_path)
    store.apply(
        PendingChanges(
            kept=tuple(
                Pending(Delivery(Target("shard", 0), FORGET, "dir", f"0/{n}" + "x" * 200), 0.0)
                for n in range(500)
            )
        )
    )
    store.close()
    data = bytearray(store_path.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 8192] = b"\xa5" * 8192
    store_path.write_bytes(bytes(data))
    done = serve_with_store(store_path)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert f"{store_path} (rc_pending_file) is damaged" in done.stderr
    assert f"mv {store_path} {store_path}.damaged" in done.stderr


def test_another_programs_database_stops_the_start_with_one_message(tmp_path: Path) -> None:
    store_path = tmp_path / "app.db"
    with sqlite3.connect(store_path) as db:
        db.execute("CREATE TABLE users (name TEXT)")
    done = serve_with_store(store_path)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert "holds tables shardproxy did not make (users)" in done.stderr
