"""reshard removes the folders it emptied in the old cache, data and vfsMeta alike, and
no folder that still holds something or that it did not empty."""

from __future__ import annotations

import os
from pathlib import Path

from shardproxy.core.shards import ShardMap
from shardproxy.tools.reshard.plan import CacheDir
from shardproxy.tools.reshard.run import reshard_caches

OLD = ShardMap.even(2)
NEW = OLD.rebalanced("1,1,2")  # shard 2 takes 4-7 from shard 0
MOVED = "4a0c6c1e-1111-4c52-9b0e-d0a7a3a2b1c4"
NEIGHBOUR = "4a0c6d00-1111-4c52-9b0e-d0a7a3a2b1c4"  # same 4/a/0/c/6 folder
STAYING = "0a0c6c1e-1111-4c52-9b0e-d0a7a3a2b1c4"


def rel(uuid: str) -> str:
    return "/".join(uuid[:5]) + "/" + uuid


def caches(base: Path) -> list[CacheDir]:
    return [CacheDir(str(base / name), f"shard{n}") for n, name in enumerate("abc")]


def cache_file(cache: CacheDir, uuid: str) -> None:
    for path in (cache.data(rel(uuid)), cache.meta(rel(uuid))):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        Path(path).write_bytes(b"x")


def folders(root: str) -> set[str]:
    return {os.path.relpath(folder, root) for folder, _, _ in os.walk(root)} - {"."}


def test_the_folders_a_move_emptied_are_removed_in_data_and_metadata(tmp_path: Path) -> None:
    dirs = caches(tmp_path)
    cache_file(dirs[0], MOVED)
    cache_file(dirs[0], STAYING)
    reshard_caches(OLD, NEW, dirs, journal_path=tmp_path / "journal", progress=False)
    for root in (dirs[0].data(""), dirs[0].meta("")):
        assert folders(root) == {"0", "0/a", "0/a/0", "0/a/0/c", "0/a/0/c/6"}


def test_a_folder_still_holding_a_file_stays(tmp_path: Path) -> None:
    dirs = caches(tmp_path)
    cache_file(dirs[0], MOVED)
    # Another file of shard 0's in the same folder, not moved (it is being written: rclone
    # names no such file, so reshard leaves it where it is).
    Path(dirs[0].data("4/a/0/c/6/partial.tmp")).write_bytes(b"y")
    reshard_caches(OLD, NEW, dirs, journal_path=tmp_path / "journal", progress=False)
    assert os.listdir(dirs[0].data("4/a/0/c/6")) == ["partial.tmp"]
    assert folders(dirs[0].meta("")) == set()


def test_an_empty_folder_it_did_not_empty_stays_and_so_do_those_above_it(tmp_path: Path) -> None:
    dirs = caches(tmp_path)
    cache_file(dirs[0], MOVED)
    os.makedirs(dirs[0].data("4/a/0/f/f"))  # empty before reshard ran
    reshard_caches(OLD, NEW, dirs, journal_path=tmp_path / "journal", progress=False)
    assert folders(dirs[0].data("")) == {"4", "4/a", "4/a/0", "4/a/0/f", "4/a/0/f/f"}


def test_the_remote_folder_itself_stays_when_everything_moved(tmp_path: Path) -> None:
    dirs = caches(tmp_path)
    cache_file(dirs[0], MOVED)
    cache_file(dirs[0], NEIGHBOUR)
    reshard_caches(OLD, NEW, dirs, journal_path=tmp_path / "journal", progress=False)
    assert os.listdir(dirs[0].data("")) == []
    assert os.listdir(dirs[0].meta("")) == []
    assert sorted(os.listdir(dirs[2].data("4/a/0/c/6"))) == sorted([MOVED, NEIGHBOUR])
