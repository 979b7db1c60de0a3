"""``shardproxy reshard`` against what a real machine throws at it: rclones it cannot see by
their command line, programs holding cache files open, a full disk, links in a cache and
a planted journal link. Real processes, real files, real small filesystems (tmpfs)."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from shardproxy.cli import main
from shardproxy.core.shards import ShardMap
from shardproxy.tools.reshard.plan import CacheDir
from shardproxy.tools.reshard.run import JOURNAL_NAME, transfer
from tests.helpers.filesystems import resize_tmpfs, small_tmpfs
from tests.helpers.kills import kill_after
from tests.helpers.rclone_procs import current_rclone, debian_rclone, free_port

OLD = ShardMap.even(2)
NEW = OLD.rebalanced("1,1,2")  # shard 2 takes 4-7 from shard 0 and c-f from shard 1
MOVING = [f"{c}a0c6c1e-1111-4c52-9b0e-d0a7a3a2b1c4" for c in "4567"]
STAYING = "0a0c6c1e-1111-4c52-9b0e-d0a7a3a2b1c4"
MiB = 1 << 20


def rel(uuid: str) -> str:
    return "/".join(uuid[:5]) + "/" + uuid


def payload(uuid: str, size: int) -> bytes:
    """Bytes that differ per file and per position, so a mixed-up copy shows."""
    seed = uuid.encode() * (size // len(uuid) + 1)
    return bytes((b + i) % 251 for i, b in enumerate(seed[:size]))


def cache_file(cache: CacheDir, uuid: str, size: int) -> bytes:
    data = payload(uuid, size)
    for path, content in ((cache.data(rel(uuid)), data), (cache.meta(rel(uuid)), b"{}")):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        Path(path).write_bytes(content)
    return data


def map_file(path: Path, shard_map: ShardMap) -> str:
    lines = [f'{s} = "{shard_map.prefixes_of(s)}"' for s in range(shard_map.count)]
    path.write_text("[shard]\n" + "\n".join(lines) + "\n")
    return str(path)


def command(tmp_path: Path, caches: list[CacheDir], *extra: str) -> list[str]:
    argv = ["reshard", "--from", map_file(tmp_path / "old.toml", OLD)]
    argv += ["--to", map_file(tmp_path / "new.toml", NEW)]
    argv += ["--cache-dirs", *(c.path for c in caches), "--remotes", *(c.remote for c in caches)]
    return [*argv, "--journal", str(tmp_path / "journal"), *extra]


def three_caches(base: Path, target: Path | None = None) -> list[CacheDir]:
    return [
        CacheDir(str(base / "a"), "shard0"),
        CacheDir(str(base / "b"), "shard1"),
        CacheDir(str(target or base / "c"), "shard2"),
    ]


def leftovers(root: str) -> list[str]:
    return [n for _, _, names in os.walk(root) for n in names if n.endswith(".shardproxy-reshard")]


# --- who uses a cache ---------------------------------------------------------------------


@contextlib.contextmanager
def running(argv: list[str], **kwargs: object) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kwargs)  # type: ignore[call-overload]
    try:
        yield process
    finally:
        process.kill()
        process.wait()


def wait_for_port(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, "the process ended before it listened"
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)):
            return
        time.sleep(0.02)
    raise AssertionError(f"nothing listens on {port}")


def test_an_rclone_under_another_name_with_its_cache_dir_in_the_environment_stops_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    binary = current_rclone() or debian_rclone()
    if binary is None:
        pytest.skip("rclone is not installed: run ./scripts/setup.sh")
    caches = three_caches(tmp_path)
    data = cache_file(caches[0], MOVING[0], 1000)
    renamed = tmp_path / "bin" / "media-server"  # no "rclone" in its name or argv
    renamed.parent.mkdir()
    shutil.copy(binary, renamed)
    served = tmp_path / "served"
    served.mkdir()
    port = free_port()
    argv = [str(renamed), "serve", "http", str(served), "--addr", f"127.0.0.1:{port}"]
    argv += ["--vfs-cache-mode", "full", "--config", os.devnull]
    environ = {**os.environ, "RCLONE_CACHE_DIR": caches[0].path}
    with running(argv, env=environ) as process:
        wait_for_port(port, process)
        # It does use that cache: its VFS cache for the served folder is there.
        assert len(os.listdir(f"{caches[0].path}/vfs")) == 2
        assert main(command(tmp_path, caches)) == 2
    error = capsys.readouterr().err
    assert f"{process.pid}: {renamed} serve http" in error
    assert "RCLONE_CACHE_DIR" in error
    assert Path(caches[0].data(rel(MOVING[0]))).read_bytes() == data


def test_a_program_holding_a_cache_file_open_stops_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    caches = three_caches(tmp_path)
    data = cache_file(caches[0], MOVING[0], 1000)
    with (
        open(caches[0].data(rel(MOVING[0])), "rb") as held,
        running(["sleep", "600"], stdin=held) as process,
    ):
        assert main(command(tmp_path, caches)) == 2
    error = capsys.readouterr().err
    assert f"{process.pid}: sleep 600 (has {caches[0].data(rel(MOVING[0]))} open)" in error
    assert Path(caches[0].data(rel(MOVING[0]))).read_bytes() == data
    assert not os.path.exists(caches[2].data(rel(MOVING[0])))


# --- a full disk --------------------------------------------------------------------------


def test_a_target_disk_without_room_stops_it_before_copying_and_a_rerun_finishes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with small_tmpfs(tmp_path / "small", "3M") as small:
        caches = three_caches(tmp_path, small)
        files = {uuid: cache_file(caches[0], uuid, MiB) for uuid in MOVING}
        assert main(command(tmp_path, caches)) == 2
        error = capsys.readouterr().err
        assert f"not enough room in {small} (shard 2)" in error
        assert "run the same command again" in error
        assert "Traceback" not in error
        moved = [u for u in MOVING if os.path.exists(caches[2].data(rel(u)))]
        assert 0 < len(moved) < len(MOVING)
        assert leftovers(str(small)) == []
        for uuid in set(MOVING) - set(moved):
            assert Path(caches[0].data(rel(uuid))).read_bytes() == files[uuid]

        resize_tmpfs(small, "16M")
        assert main(command(tmp_path, caches)) == 0
        assert f"moved {len(MOVING) - len(moved)} files" in capsys.readouterr().out
        for uuid, data in files.items():
            assert Path(caches[2].data(rel(uuid))).read_bytes() == data
            assert Path(caches[2].meta(rel(uuid))).read_bytes() == b"{}"
            assert not os.path.exists(caches[0].data(rel(uuid)))


def test_a_disk_that_fills_midway_ends_with_a_clear_message_and_a_rerun_finishes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Out of inodes: the bytes fit, but the disk cannot take another file or folder.
    with small_tmpfs(tmp_path / "small", "16M,nr_inodes=20") as small:
        caches = three_caches(tmp_path, small)
        files = {uuid: cache_file(caches[0], uuid, 64 * 1024) for uuid in MOVING}
        assert main(command(tmp_path, caches)) == 2
        error = capsys.readouterr().err
        assert "the disk is full" in error
        assert "run the same command again" in error
        assert "Traceback" not in error
        assert leftovers(str(small)) == []
        resize_tmpfs(small, "16M,nr_inodes=1000")
        assert main(command(tmp_path, caches)) == 0
        for uuid, data in files.items():
            assert Path(caches[2].data(rel(uuid))).read_bytes() == data
            assert Path(caches[2].meta(rel(uuid))).read_bytes() == b"{}"


def test_a_copy_cut_short_by_a_full_disk_leaves_no_partial_file(tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.write_bytes(payload(MOVING[0], 3 * MiB))
    with small_tmpfs(tmp_path / "small", "1M") as small:
        target = small / "4" / MOVING[0]
        with pytest.raises(OSError, match="No space left"):
            transfer(str(source), str(target))
        assert os.listdir(small / "4") == []
    assert source.read_bytes() == payload(MOVING[0], 3 * MiB)


# --- links it did not make ----------------------------------------------------------------


def test_a_link_in_a_cache_is_not_followed_to_copy_what_it_points_at(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(b"not a cache file")
    with small_tmpfs(tmp_path / "small", "4M") as small:
        caches = three_caches(tmp_path, small)
        planted = Path(caches[0].data(rel(MOVING[0])))
        planted.parent.mkdir(parents=True)
        planted.symlink_to(secret)
        assert main(command(tmp_path, caches)) == 0
        assert not os.path.lexists(caches[2].data(rel(MOVING[0])))
    assert planted.is_symlink()
    assert secret.read_bytes() == b"not a cache file"


def test_a_planted_journal_link_is_refused_and_its_target_left_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    caches = three_caches(tmp_path)
    cache_file(caches[0], MOVING[0], 1000)
    outside = tmp_path / "outside.conf"
    outside.write_text("a person's file\n")
    os.makedirs(caches[0].path, exist_ok=True)
    os.symlink(outside, Path(caches[0].path) / JOURNAL_NAME)
    argv = [a for a in command(tmp_path, caches) if a != "--journal"]
    argv.remove(str(tmp_path / "journal"))
    assert main(argv) == 2
    assert "is a symlink" in capsys.readouterr().err
    assert outside.read_text() == "a person's file\n"
    assert os.path.exists(caches[0].data(rel(MOVING[0])))


# --- kill -9 ------------------------------------------------------------------------------


def test_a_run_killed_midway_is_finished_by_the_next_with_no_partial_file_left(
    tmp_path: Path,
) -> None:
    uuids = [f"{c}{n}0c6c1e-1111-4c52-9b0e-d0a7a3a2b1c4" for c in "4567" for n in "ab"]
    with small_tmpfs(tmp_path / "other", "96M") as other:
        caches = three_caches(tmp_path, other)
        files = {uuid: cache_file(caches[0], uuid, 8 * MiB) for uuid in uuids}
        argv = [sys.executable, "-m", "shardproxy.cli", *command(tmp_path, caches)]
        # The start line, a finished move, and the next one begun: killed mid-copy.
        kill_after(argv, tmp_path / "journal", 4)
        subprocess.run(argv, check=True, capture_output=True)
        assert leftovers(str(other)) == []
        for uuid, data in files.items():
            assert Path(caches[2].data(rel(uuid))).read_bytes() == data
            assert Path(caches[2].meta(rel(uuid))).read_bytes() == b"{}"
        assert os.listdir(caches[0].data("")) == []
