"""Reshard with real rclone: files cached by one shard's rclone are read by another's
after ``shardproxy reshard`` without a single byte fetched from the backend again.

Shard A (old owner) is a real ``rclone serve webdav --vfs-cache-mode full`` reading
through the proxy's shard view with the old map; shard B (new owner) is another one
reading through a proxy with the new map. The stand-in's read log records every GET
body it serves, so "nothing read from the backend" is an empty log.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web

from nzbdav_standin import READ_LOG, Library, expected_bytes, make_standin_app, uuid_path
from shardproxy.cli import main
from shardproxy.config.settings import Settings
from shardproxy.core.shards import ShardMap
from shardproxy.process.app import make_proxy_server
from shardproxy.tools.reshard.run import rclones_answering
from tests.helpers.rclone_procs import (
    BackgroundApps,
    RcloneRc,
    current_rclone,
    debian_rclone,
    free_port,
    make_rclone,
)

OLD = ShardMap.from_prefixes({0: "0-7", 1: "8-f"})
NEW = OLD.rebalanced("1,1,2")  # shard 2 takes 4-7 from shard 0 and c-f from shard 1
MOVED = ["4a0c6c1e-1111-4c52-9b0e-d0a7a3a2b1c4", "5f00aa00-2222-4c52-9b0e-d0a7a3a2b1c4"]
UNCACHED = "6b00aa00-3333-4c52-9b0e-d0a7a3a2b1c4"
SIZE = 700_001


def binaries() -> list[str]:
    found = [b for b in (debian_rclone(), current_rclone()) if b is not None]
    if not found:
        pytest.skip("rclone is not installed: run ./scripts/setup.sh")
    return found


@pytest.fixture(scope="module")
def stack() -> Iterator[tuple[web.Application, str, str]]:
    """The stand-in (its app, for the read log) and proxies with the old and the new map."""
    library = Library()
    for number, uuid in enumerate([*MOVED, UNCACHED]):
        library.add(f"/content/movies/Film{number}/film{number}.mkv", SIZE, uuid=uuid)
    standin = make_standin_app(library, user=None, password=None)
    apps = BackgroundApps()
    try:
        backend = apps.serve(lambda: standin)
        old = apps.serve(lambda: make_proxy_server(Settings(backend=backend, shard_map=OLD)))
        new = apps.serve(lambda: make_proxy_server(Settings(backend=backend, shard_map=NEW)))
        yield standin, str(old), str(new)
    finally:
        apps.close()


def rclone_conf(path: Path, old: str, new: str) -> Path:
    remotes = [("shard0", f"{old}/.ids-s0"), ("shard2", f"{new}/.ids-s2")]
    path.write_text(
        "".join(
            f"[{name}]\ntype = webdav\nurl = {url}\nvendor = other\n\n" for name, url in remotes
        )
    )
    return path


def start_serving(rclone: RcloneRc) -> None:
    """Start an rclone and wait for its WebDAV port too (it may open after the RC one)."""
    rclone.start()
    rclone.wait_ready()
    deadline = time.monotonic() + 30
    while True:
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", rclone.http_port)),
        ):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"rclone serves nothing on {rclone.http_port}: {rclone.tail()}")
        time.sleep(0.02)


def get(port: int, uuid: str) -> bytes:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/{'/'.join(uuid[:5])}/{uuid}") as reply:
        data: bytes = reply.read()
        return data


def wait_until_recorded_whole(meta: Path) -> None:
    """Poll rclone's metadata file until it says the whole file is cached (30 s at most)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with contextlib.suppress(FileNotFoundError, ValueError):
            if json.loads(meta.read_text())["Rs"] == [{"Pos": 0, "Size": SIZE}]:
                return
        time.sleep(0.05)
    raise AssertionError(f"rclone did not record {meta.name} as cached whole")


def map_file(path: Path, shard_map: ShardMap) -> str:
    lines = [f'{s} = "{shard_map.prefixes_of(s)}"' for s in range(shard_map.count)]
    path.write_text("[shard]\n" + "\n".join(lines) + "\n")
    return str(path)


@pytest.mark.rclone
@pytest.mark.parametrize("which", ["debian", "current"])
def test_files_cached_by_the_old_owner_are_read_by_the_new_one_from_its_cache(
    which: str,
    stack: tuple[web.Application, str, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    binary = dict(zip(["debian", "current"], [debian_rclone(), current_rclone()], strict=True))[
        which
    ]
    if binary is None:
        pytest.skip(f"no {which} rclone: run ./scripts/setup.sh")
    standin, old_proxy, new_proxy = stack
    conf = rclone_conf(tmp_path / "rclone.conf", old_proxy, new_proxy)
    common = ("--config", str(conf), "--vfs-cache-mode", "full", "--dir-cache-time", "1s")
    shard_a = make_rclone(binary, tmp_path, "a", remote="shard0:", extra=common, protocol="webdav")
    shard_b = make_rclone(binary, tmp_path, "b", remote="shard2:", extra=common, protocol="webdav")
    caches = [str(shard_a.cache_dir), str(tmp_path / "unused.cache"), str(shard_b.cache_dir)]
    command = ["reshard", "--from", map_file(tmp_path / "old.toml", OLD)]
    command += ["--to", map_file(tmp_path / "new.toml", NEW), "--cache-dirs", *caches]

    try:
        start_serving(shard_a)
        for uuid in MOVED:
            assert get(shard_a.http_port, uuid) == expected_bytes(uuid_path(uuid), SIZE, 0, SIZE)
        # While shard A's rclone runs, its cache must not change under it.
        assert main(command) == 2
        assert "is using a cache that would change" in capsys.readouterr().err
        # rclone records what it cached a few seconds after the file is closed.
        for uuid in MOVED:
            wait_until_recorded_whole(shard_a.cache_dir / "vfsMeta/shard0" / uuid_path(uuid)[6:])
    finally:
        shard_a.stop()

    assert main([*command, "--dry-run"]) == 0
    plan = capsys.readouterr().out
    assert "shard 0 -> shard 2: 2 files" in plan
    assert not (shard_b.cache_dir / "vfs").exists()

    assert main(command) == 0
    assert "moved 2 files" in capsys.readouterr().out
    for uuid in MOVED:
        relative = uuid_path(uuid)[len("/.ids/") :]
        assert not (shard_a.cache_dir / "vfs/shard0" / relative).exists()
        assert (shard_b.cache_dir / "vfsMeta/shard2" / relative).exists()

    standin[READ_LOG].clear()
    try:
        start_serving(shard_b)
        for uuid in MOVED:
            assert get(shard_b.http_port, uuid) == expected_bytes(uuid_path(uuid), SIZE, 0, SIZE)
        assert standin[READ_LOG] == [], "shard B fetched moved files from the backend again"
        # The log does see reads: a file nobody cached is fetched.
        assert get(shard_b.http_port, UNCACHED) == expected_bytes(
            uuid_path(UNCACHED), SIZE, 0, SIZE
        )
        assert standin[READ_LOG]
    finally:
        shard_b.stop()


@pytest.mark.rclone
def test_an_rclone_answering_on_its_rc_counts_as_running(tmp_path: Path) -> None:
    binary = debian_rclone() or current_rclone()
    if binary is None:
        pytest.skip("rclone is not installed: run ./scripts/setup.sh")
    # An rclone in another container is invisible in /proc; its RC still answers.
    running = make_rclone(binary, tmp_path, "elsewhere", user="rc", password="secret")
    running.start()
    try:
        running.wait_ready()
        found = rclones_answering([str(running.rc_url), f"http://127.0.0.1:{free_port()}/"])
    finally:
        running.stop()
    assert found == [f"RC http://127.0.0.1:{running.rc_port}/ answers"]
