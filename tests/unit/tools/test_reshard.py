"""reshard's plan (fed values), its sparse copy and resumable moves (on real files)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from shardproxy.cli import main
from shardproxy.config.layers import load_settings
from shardproxy.config.settings import ConfigError
from shardproxy.core.shards import ShardMap
from shardproxy.tools.reshard.plan import (
    CachedFile,
    CacheDir,
    Move,
    check_cache_dirs,
    decode_reshard_journal,
    encode_move,
    encode_start,
    plan_reshard,
)
from shardproxy.tools.reshard.run import copy_sparse, move_cached, reshard_caches, scan_cache

OLD = ShardMap.even(2)
NEW = OLD.rebalanced("1,1,2")
UUID4 = "4a0c6c1e-1111-4c52-9b0e-d0a7a3a2b1c4"
UUID0 = "0a0c6c1e-1111-4c52-9b0e-d0a7a3a2b1c4"


def rel(uuid: str) -> str:
    return "/".join(uuid[:5]) + "/" + uuid


def test_plan_moves_files_whose_character_changed_owner_and_keeps_the_rest() -> None:
    cached = [
        CachedFile(0, rel(UUID4), 1000, 512),
        CachedFile(0, rel(UUID0), 1000, 512),
        CachedFile(0, "readme.txt", 5, 4096),
    ]
    plan = plan_reshard(OLD, NEW, cached)
    assert plan.moves == [Move(rel(UUID4), 0, 2, 1000, 512)]
    assert (plan.staying, plan.foreign) == (1, ["shard 0: readme.txt"])
    assert plan.affected_shards() == {0, 2}
    text = plan.describe(OLD, NEW)
    assert "characters changing owner: 8 of 16 (50.0% of the library)" in text
    assert "shard 0 -> shard 2: 1 files, 512 B cached of 1000 B" in text


def test_a_file_in_its_owners_cache_stays_so_a_second_run_moves_nothing() -> None:
    plan = plan_reshard(OLD, NEW, [CachedFile(2, rel(UUID4), 10, 10)])
    assert (plan.moves, plan.staying) == ([], 1)


def test_cache_dirs_must_be_one_per_shard_and_distinct() -> None:
    assert "3 shards" in check_cache_dirs([CacheDir("/a", "s0")], OLD, NEW)
    same = [CacheDir("/a", "s0"), CacheDir("/a", "s1"), CacheDir("/c", "s2")]
    assert "same cache dir" in check_cache_dirs(same, OLD, NEW)


def test_journal_lists_moves_begun_and_not_finished() -> None:
    caches = [CacheDir("/a", "shard0")]
    first, second = Move(rel(UUID4), 0, 2, 0, 0), Move(rel(UUID0), 1, 2, 0, 0)
    text = encode_start(OLD, NEW, caches) + encode_move(first, done=False)
    text += encode_move(first, done=True) + encode_move(second, done=False) + '{"do'
    journal = decode_reshard_journal(text, "j")
    assert journal.unfinished == [second]


def test_sparse_copy_keeps_holes_and_bytes(tmp_path: Path) -> None:
    source, target = tmp_path / "source", tmp_path / "target"
    with source.open("wb") as stream:
        stream.seek(4 << 20)
        stream.write(b"x" * 4096)
        stream.truncate(16 << 20)
    copy_sparse(str(source), str(target))
    assert target.read_bytes() == source.read_bytes()
    assert os.stat(target).st_blocks * 512 <= 64 * 1024, "the holes were filled in"
    assert os.stat(target).st_mtime_ns == os.stat(source).st_mtime_ns


def make_cached(cache: CacheDir, relative: str, data: bytes) -> None:
    for path, content in ((cache.data(relative), data), (cache.meta(relative), b"{}")):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        Path(path).write_bytes(content)


def test_a_move_interrupted_between_data_and_metadata_finishes_when_run_again(
    tmp_path: Path,
) -> None:
    source, target = CacheDir(str(tmp_path / "a"), "shard0"), CacheDir(str(tmp_path / "b"), "s2")
    caches = [source, CacheDir(str(tmp_path / "c"), "shard1"), target]
    make_cached(source, rel(UUID4), b"data")
    # Where a kill after moving the data leaves things: data moved, metadata not.
    os.makedirs(os.path.dirname(target.data(rel(UUID4))))
    os.rename(source.data(rel(UUID4)), target.data(rel(UUID4)))
    move_cached(Move(rel(UUID4), 0, 2, 4, 4), caches)
    assert Path(target.data(rel(UUID4))).read_bytes() == b"data"
    assert Path(target.meta(rel(UUID4))).read_bytes() == b"{}"
    assert not os.path.exists(source.meta(rel(UUID4)))


def test_reshard_resumes_the_move_its_journal_left_unfinished(tmp_path: Path) -> None:
    caches = [CacheDir(str(tmp_path / name), f"shard{n}") for n, name in enumerate("abc")]
    make_cached(caches[0], rel(UUID4), b"data")
    journal = tmp_path / "journal"
    os.makedirs(os.path.dirname(caches[2].data(rel(UUID4))))
    os.rename(caches[0].data(rel(UUID4)), caches[2].data(rel(UUID4)))
    move = Move(rel(UUID4), 0, 2, 0, 0)
    journal.write_text(encode_start(OLD, NEW, caches) + encode_move(move, done=False))
    _, report = reshard_caches(OLD, NEW, caches, journal_path=journal, progress=False)
    assert (report.resumed, report.moved) == (1, 0)
    assert [f.relative for f in scan_cache(2, caches[2])] == [rel(UUID4)]
    assert os.path.exists(caches[2].meta(rel(UUID4)))


def test_shard_weights_setting_builds_a_weighted_map() -> None:
    settings = load_settings({"shard_weights": ["4T,8T,12T"]}, environ={}, need_backend=False)
    assert [settings.shard_map.prefixes_of(s) for s in range(3)] == ["0-2", "3-7", "8-f"]
    env = {"SHARDPROXY_SHARD_WEIGHTS": "1 1 2"}
    assert load_settings({}, environ=env, need_backend=False).shard_map.count == 3


def test_shard_weights_and_a_hand_made_map_in_one_place_is_an_error() -> None:
    with pytest.raises(ConfigError, match="not both"):
        load_settings(
            {"shard_weights": ["1,1"], "shard": ["0=0-7", "1=8-f"]}, environ={}, need_backend=False
        )


def test_seventeen_weights_say_there_are_only_sixteen_characters() -> None:
    with pytest.raises(ConfigError, match=r"--shard-weights.*17 shards but only 16"):
        load_settings({"shard_weights": [",".join("1" * 17)]}, environ={}, need_backend=False)


def test_rebalance_prints_a_map_to_paste_and_how_much_moves(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = tmp_path / "old.toml"
    old.write_text('[shard]\n0 = "0-7"\n1 = "8-f"\n')
    assert main(["rebalance", "--from", str(old), "--weights", "1,1,2"]) == 0
    out = capsys.readouterr().out
    new = tmp_path / "new.toml"
    new.write_text(out)
    assert load_settings({}, config_file=str(new), environ={}, need_backend=False).shard_map == NEW
    assert "8 of 16 first characters change owner (50.0% of the library" in out


def test_a_move_to_another_filesystem_copies_the_data_with_its_holes(tmp_path: Path) -> None:
    if not os.path.isdir("/dev/shm") or os.stat("/dev/shm").st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("needs /dev/shm on a filesystem of its own")
    with tempfile.TemporaryDirectory(dir="/dev/shm") as other:
        source = CacheDir(other, "shard0")
        target = CacheDir(str(tmp_path / "b"), "shard2")
        caches = [source, CacheDir(str(tmp_path / "c"), "shard1"), target]
        make_cached(source, rel(UUID4), b"")
        with open(source.data(rel(UUID4)), "r+b") as stream:
            stream.seek(8 << 20)
            stream.write(b"cached range")
            stream.truncate(32 << 20)
        expected = Path(source.data(rel(UUID4))).read_bytes()
        move_cached(Move(rel(UUID4), 0, 2, 32 << 20, 4096), caches)
        moved = Path(target.data(rel(UUID4)))
        assert moved.read_bytes() == expected
        assert moved.stat().st_blocks * 512 <= 1 << 20, "the copy filled the holes in"
        assert Path(target.meta(rel(UUID4))).read_bytes() == b"{}"
        assert not os.path.exists(source.data(rel(UUID4)))
        assert not os.path.exists(source.meta(rel(UUID4)))
