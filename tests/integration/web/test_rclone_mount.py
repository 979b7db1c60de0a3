"""A real `rclone mount` (FUSE, VFS cache) of a shard view reads exact bytes through the proxy.

This is the deployment's read path: Plex opens a file on the mount, rclone's VFS reads it
in ranged chunks through the proxy and keeps it in that shard's own cache directory.
The proxy runs in this test's event loop, so every file-system call on the mount goes to
a thread: a blocking call on the loop would wait for a proxy that cannot answer.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

from nzbdav_standin import Library, expected_bytes, make_standin_app, uuid_path
from shardproxy.core.shards import ShardMap
from shardproxy.tools.deploy.files import obscure, webdav_remotes
from tests.helpers.processes import require_program
from tests.helpers.proxies import running_proxy

SHARD_MAP = ShardMap.even(4)
USER, PASSWORD = "admin", "secret"


def fuse_available() -> bool:
    return os.path.exists("/dev/fuse") and os.geteuid() == 0


pytestmark = pytest.mark.skipif(
    not fuse_available(), reason="rclone mount needs /dev/fuse and root"
)


async def wait_until_mounted(mountpoint: Path, process: asyncio.subprocess.Process) -> None:
    for _ in range(400):
        if process.returncode is not None:
            raise RuntimeError(f"rclone mount exited with {process.returncode}")
        if await asyncio.to_thread(os.path.ismount, mountpoint):
            return
        await asyncio.sleep(0.05)
    raise RuntimeError(f"{mountpoint} was not mounted after 20 s")


async def unmount(mountpoint: Path) -> None:
    process = await asyncio.create_subprocess_exec("fusermount3", "-u", "-z", str(mountpoint))
    await process.wait()


@asynccontextmanager
async def mounted_shard(
    tmp_path: Path, proxy_url: str, shard: int
) -> AsyncIterator[tuple[Path, Path]]:
    rclone = require_program("rclone")
    config = tmp_path / "rclone.conf"
    obscured = obscure(PASSWORD, os.urandom(16))
    config.write_text(webdav_remotes(proxy_url, 4, USER, obscured))
    mountpoint, cache = tmp_path / f"s{shard}" / ".ids", tmp_path / f"cache{shard}"
    mountpoint.mkdir(parents=True)
    process = await asyncio.create_subprocess_exec(
        rclone,
        "--config",
        str(config),
        "mount",
        f"shard{shard}:",
        str(mountpoint),
        "--read-only",
        "--vfs-cache-mode",
        "full",
        "--cache-dir",
        str(cache),
        "--vfs-read-chunk-size",
        "1M",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        await wait_until_mounted(mountpoint, process)
        yield mountpoint, cache
    finally:
        await unmount(mountpoint)
        if process.returncode is None:
            process.terminate()
        await process.wait()


@pytest.fixture
async def library_behind_proxy() -> AsyncIterator[tuple[Library, str]]:
    library = Library.sample(n_ids=24, seed=9)
    backend = TestServer(make_standin_app(library, user=USER, password=PASSWORD))
    await backend.start_server()
    try:
        async with running_proxy(backend.make_url("/").origin()) as url:
            yield library, str(url)
    finally:
        await backend.close()


def read_span(path: Path, offset: int, count: int) -> bytes:
    with path.open("rb") as stream:
        stream.seek(offset)
        return stream.read(count)


async def test_mounted_shard_reads_exact_bytes_and_caches_only_its_files(
    library_behind_proxy: tuple[Library, str], tmp_path: Path
) -> None:
    library, proxy_url = library_behind_proxy
    shard = 1
    mine = sorted(u for u in library.ids if SHARD_MAP.shard_of(u) == shard)
    async with mounted_shard(tmp_path, proxy_url, shard) as (mountpoint, cache):
        assert sorted(await asyncio.to_thread(os.listdir, mountpoint)) == ["4", "5", "6", "7"]
        for uuid in mine[:3]:
            size = library.ids[uuid].size
            path = mountpoint / uuid_path(uuid)[len("/.ids/") :]
            assert (await asyncio.to_thread(path.stat)).st_size == size
            for offset, count in ((0, 4096), (size // 3, 100_000), (size - 7, 7)):
                got = await asyncio.to_thread(read_span, path, offset, count)
                end = min(offset + count, size) - 1
                assert got == expected_bytes(uuid_path(uuid), size, offset, end)
        cached = {p.name for p in cache.rglob("*") if p.is_file() and "vfsMeta" not in p.parts}
        assert cached, "the VFS cache kept nothing"
        assert all(SHARD_MAP.shard_of(name) == shard for name in cached), cached
