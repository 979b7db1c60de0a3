"""Real rclone (Debian's 1.60.1 and a current 1.75.2) reading shard views through the proxy.

Each shard's remote is what a user configures: `type = webdav`, `url = .../.ids-s<N>`,
`vendor = other`, Basic auth. The NzbDav stand-in behind the proxy reproduces NzbDav's
quirks (full-URL hrefs, folders without trailing slash, the Range oddities).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer
from yarl import URL

from nzbdav_standin import Library, expected_bytes, make_standin_app, uuid_path
from shardproxy.core.shards import ShardMap
from shardproxy.tools.deploy.files import obscure, webdav_remotes
from tests.helpers.processes import rclone_binaries, require_program, run_rclone
from tests.helpers.proxies import running_proxy

USER, PASSWORD = "admin", "secret"
SHARDS = 4
SHARD_MAP = ShardMap.even(SHARDS)


@dataclass
class Remotes:
    """rclone, its config file with one remote per shard plus `root`, and the library."""

    rclone: str
    config: Path
    catalog: Library
    proxy_url: URL

    async def run(self, *args: str) -> subprocess.CompletedProcess[bytes]:
        """Run rclone with the test config; returns exit code, stdout and stderr."""
        return await run_rclone(self.rclone, self.config, *args)

    async def ok(self, *args: str) -> bytes:
        """Run rclone and insist it succeeds; its stdout."""
        done = await self.run(*args)
        assert done.returncode == 0, done.stderr.decode(errors="replace")
        return done.stdout


@dataclass(frozen=True, order=True)
class IdFile:
    """A file as a shard sees it: its UUID, /.ids path and size."""

    uuid: str
    size: int

    @property
    def ids_path(self) -> str:
        return uuid_path(self.uuid)

    @property
    def folder(self) -> str:
        return "/".join(self.uuid[:5])

    @property
    def shard(self) -> int:
        return SHARD_MAP.shard_of(self.uuid)

    @property
    def view_path(self) -> str:
        return f"shard{self.shard}:{self.folder}/{self.uuid}"

    def bytes(self, start: int, end_inclusive: int) -> bytes:
        return expected_bytes(self.ids_path, self.size, start, end_inclusive)


def ids_files(library: Library) -> list[IdFile]:
    return sorted(IdFile(uuid, file.size) for uuid, file in library.ids.items())


@pytest.fixture(params=rclone_binaries())
async def remotes(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Remotes]:
    rclone = require_program(request.param) if request.param == "rclone" else request.param
    library = Library.sample(n_ids=48, seed=11)
    backend = TestServer(make_standin_app(library, user=USER, password=PASSWORD))
    await backend.start_server()
    try:
        async with running_proxy(backend.make_url("/").origin()) as proxy_url:
            obscured = obscure(PASSWORD, os.urandom(16))
            config = tmp_path / "rclone.conf"
            config.write_text(webdav_remotes(proxy_url, SHARDS, USER, obscured, rest="root"))
            yield Remotes(rclone, config, library, proxy_url)
    finally:
        await backend.close()


async def test_shard_root_lists_only_its_own_prefixes(remotes: Remotes) -> None:
    for shard in range(SHARDS):
        listed = (await remotes.ok("lsf", f"shard{shard}:")).decode().split()
        expected = sorted(f"{c}/" for c in SHARD_MAP.chars_of(shard))
        assert sorted(listed) == expected


async def test_every_file_is_listed_in_its_shard_with_its_size(remotes: Remotes) -> None:
    files = ids_files(remotes.catalog)
    assert {f.shard for f in files} == set(range(SHARDS))
    for folder in sorted({f.folder for f in files}):
        shard = SHARD_MAP.shard_of(folder)
        listed = await remotes.ok(
            "lsf", "--format", "ps", "--separator", " ", f"shard{shard}:{folder}"
        )
        expected = sorted(f"{f.uuid} {f.size}" for f in files if f.folder == folder)
        assert sorted(listed.decode().splitlines()) == expected


async def test_other_shards_do_not_see_a_file(remotes: Remotes) -> None:
    file = ids_files(remotes.catalog)[0]
    for shard in set(range(SHARDS)) - {file.shard}:
        done = await remotes.run("lsf", f"shard{shard}:{file.folder}")
        assert done.returncode != 0
        assert done.stdout == b""


async def test_ranged_cat_gives_the_backends_exact_bytes(remotes: Remotes) -> None:
    file = max(ids_files(remotes.catalog), key=lambda f: f.size)
    spans = [(0, 1000), (1, 4096), (file.size // 2, 65537), (file.size - 10, 10), (0, file.size)]
    for offset, count in spans:
        got = await remotes.ok(
            "cat", "--offset", str(offset), "--count", str(count), file.view_path
        )
        assert got == file.bytes(offset, min(offset + count, file.size) - 1), (offset, count)


async def test_whole_file_copy_matches_the_backend(remotes: Remotes, tmp_path: Path) -> None:
    file = ids_files(remotes.catalog)[-1]
    target = tmp_path / "copy"
    await remotes.ok("copyto", file.view_path, str(target))
    assert target.read_bytes() == file.bytes(0, file.size - 1)


async def test_root_listing_shows_the_shard_folders(remotes: Remotes) -> None:
    listed = set((await remotes.ok("lsf", "root:")).decode().split())
    assert {f".ids-s{n}/" for n in range(SHARDS)} <= listed
    assert {".ids/", "content/", "completed-symlinks/", "nzbs/"} <= listed


async def test_shard_folder_reached_through_the_root_remote(remotes: Remotes) -> None:
    listed = (await remotes.ok("lsf", "root:.ids-s2")).decode().split()
    assert sorted(listed) == sorted(f"{c}/" for c in SHARD_MAP.chars_of(2))


async def test_content_passes_through_unchanged(remotes: Remotes) -> None:
    file = next(f for f in remotes.catalog.files() if f.path.startswith("/content/") and f.uuid)
    assert file.uuid is not None
    got = await remotes.ok("cat", "--offset", "5", "--count", "100", f"root:{file.path[1:]}")
    assert got == expected_bytes(uuid_path(file.uuid), file.size, 5, min(104, file.size - 1))
