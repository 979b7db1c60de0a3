"""rclone 1.75.2 mounting the proxy with ``--links`` shows NzbDav's .rclonelink files as
symlinks into the owning shard's view when ``rewrite_rclonelinks`` is on.

This is how new imports land in the right shard: Sonarr/Radarr copy the symlink they
see on the mount into the library.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from nzbdav_standin import Library, make_standin_app
from shardproxy.config.settings import Settings
from shardproxy.core.shards import ShardMap
from shardproxy.process.app import make_proxy_server
from tests.helpers.rclone_procs import BackgroundApps, current_rclone

SHARD_MAP = ShardMap.even(4)
UUIDS = ["961b00d8-0f1e-4c52-9b0e-d0a7a3a2b1c4", "0a0c6c1e-1111-4c52-9b0e-d0a7a3a2b1c4"]

pytestmark = pytest.mark.skipif(
    not (os.path.exists("/dev/fuse") and os.geteuid() == 0),
    reason="rclone mount needs /dev/fuse and root",
)


@pytest.fixture(scope="module")
def proxy_url() -> Iterator[str]:
    library = Library()
    for number, uuid in enumerate(UUIDS):
        library.add(f"/content/movies/Film{number}/Film{number}.mkv", 5000, uuid=uuid)
    apps = BackgroundApps()
    try:
        backend = apps.serve(lambda: make_standin_app(library, user=None, password=None))
        settings = Settings(backend=backend, shard_map=SHARD_MAP, rewrite_rclonelinks=True)
        yield str(apps.serve(lambda: make_proxy_server(settings)))
    finally:
        apps.close()


def wait_until_mounted(mountpoint: Path, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while not os.path.ismount(mountpoint):
        if process.poll() is not None:
            raise RuntimeError(f"rclone mount exited: {log.read_text()[-2000:]}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{mountpoint} was not mounted after 30 s")
        time.sleep(0.05)


@pytest.fixture
def mounted(proxy_url: str, tmp_path: Path) -> Iterator[Path]:
    binary = current_rclone()
    if binary is None:
        pytest.skip("no current rclone: run ./scripts/setup.sh")
    mountpoint, log = tmp_path / "nzbdav", tmp_path / "mount.log"
    mountpoint.mkdir()
    remote = f":webdav,url='{proxy_url}',vendor=other:"
    command = [binary, "mount", remote, str(mountpoint), "--config", os.devnull, "--links"]
    command += ["--read-only", "--cache-dir", str(tmp_path / "cache"), "--log-file", str(log)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until_mounted(mountpoint, process, log)
        yield mountpoint
    finally:
        subprocess.run(["fusermount3", "-u", "-z", str(mountpoint)], check=False)
        process.terminate()
        process.wait(timeout=15)


def test_links_on_the_mount_point_into_the_owning_shards_view(mounted: Path) -> None:
    for number, uuid in enumerate(UUIDS):
        link = mounted / "completed-symlinks" / "movies" / f"Film{number}" / f"Film{number}.mkv"
        shard = SHARD_MAP.shard_of(uuid)
        expected = f"/mnt/nzbdav/.ids-s{shard}/{'/'.join(uuid[:5])}/{uuid}"
        assert link.is_symlink()
        assert os.readlink(link) == expected
        # The size the listing gave is the length of the target rclone then read.
        assert os.lstat(link).st_size == len(expected)
