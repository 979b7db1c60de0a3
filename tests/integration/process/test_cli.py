"""The `shardproxy` command as a user runs it: a real process, real flags, real signals."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import aiohttp
from aiohttp.test_utils import TestServer

from nzbdav_standin import Library, make_standin_app
from shardproxy.tools.ports import free_port
from tests.helpers.cli import SHARDPROXY, run_cli
from tests.helpers.processes import running
from tests.helpers.proxies import basic_auth


async def test_serve_without_a_backend_says_how_to_give_one() -> None:
    code, out = await run_cli("serve")
    assert code == 2
    assert "no backend given: pass --backend" in out
    assert "SHARDPROXY_BACKEND" in out


async def test_check_names_the_gap_in_the_shard_map() -> None:
    code, out = await run_cli("check", "--shard", "0=0-3", "--shard", "1=5-f")
    assert code == 2
    assert "characters 4 belong to no shard (gap)" in out
    assert "command line --shard" in out


async def test_unknown_environment_setting_is_refused_with_a_suggestion() -> None:
    code, out = await run_cli("check", env={"SHARDPROXY_BAKEND": "http://x"})
    assert code == 2
    assert "SHARDPROXY_BAKEND" in out
    assert "did you mean 'backend'" in out


async def test_check_prints_the_map_from_a_config_file(tmp_path: Path) -> None:
    config = tmp_path / "shardproxy.toml"
    config.write_text('backend = "http://127.0.0.1:3000"\n[shard]\n0 = "0-7"\n1 = "8-f"\n')
    code, out = await run_cli("check", "--config", str(config))
    assert code == 0, out
    assert "shard 0  /.ids-s0  prefixes 0-7" in out
    assert "shard 1  /.ids-s1  prefixes 8-f" in out


async def test_shard_of_names_the_shard_and_view_path() -> None:
    uuid = "961b00d8-0f1e-4c52-9b0e-d0a7a3a2b1c4"
    code, out = await run_cli("shard-of", "--shards", "4", uuid)
    assert code == 0, out
    assert out.split() == [uuid, "shard", "2", f"/.ids-s2/9/6/1/b/0/{uuid}"]


async def test_serve_with_two_workers_answers_and_stops_on_sigterm(tmp_path: Path) -> None:
    library = Library.sample(n_ids=8, seed=3)
    backend = TestServer(make_standin_app(library, user=None, password=None))
    await backend.start_server()
    port = free_port()
    argv = [
        *SHARDPROXY,
        "serve",
        "--backend",
        str(backend.make_url("/").origin()),
        "--listen",
        f"127.0.0.1:{port}",
        "--workers",
        "2",
    ]
    try:
        async with running(argv, port=port, log=tmp_path / "serve.log") as process:
            # A new connection per request lets the kernel spread them over both workers.
            connector = aiohttp.TCPConnector(force_close=True)
            async with aiohttp.ClientSession(connector=connector) as client:
                for _ in range(16):
                    async with client.request(
                        "PROPFIND",
                        f"http://127.0.0.1:{port}/.ids-s3/",
                        headers={"Depth": "1"},
                    ) as reply:
                        body = await reply.read()
                        assert reply.status == 207
                        assert b"/.ids-s3/f<" in body
            process.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(process.wait(), 30) == 0
    finally:
        await backend.close()
    log = (tmp_path / "serve.log").read_text()
    assert "2 worker(s)" in log


async def test_serve_starts_the_rc_endpoint_with_auth(tmp_path: Path) -> None:
    port, rc_port = free_port(), free_port()
    argv = [
        *SHARDPROXY,
        "serve",
        "--backend",
        "http://127.0.0.1:9",
        "--listen",
        f"127.0.0.1:{port}",
        "--rc-listen",
        f"127.0.0.1:{rc_port}",
        "--rc-user",
        "nzbdav",
        "--rc-pass",
        "pw",
        "--rc-pending-file",
        str(tmp_path / "pending.sqlite3"),
    ]
    async with running(argv, port=rc_port, log=tmp_path / "serve.log"):
        async with aiohttp.ClientSession() as client:
            rc = f"http://127.0.0.1:{rc_port}/rc/noop"
            async with client.post(rc, json={"x": "1"}) as reply:
                assert reply.status == 401
            auth = basic_auth("nzbdav", "pw")
            async with client.post(rc, json={"x": "1"}, headers=auth) as reply:
                # Authenticated and allowed, but no shard rclone is configured to answer.
                assert reply.status == 502
                answer = await reply.json(content_type=None)
                assert answer["path"] == "rc/noop"
                assert answer["error"]
            async with client.post(
                f"http://127.0.0.1:{rc_port}/operations/purge", json={}, headers=auth
            ) as reply:
                assert reply.status == 403
