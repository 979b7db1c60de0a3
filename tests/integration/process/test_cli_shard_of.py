"""``shardproxy shard-of`` as a user runs it: UUIDs, ``.ids`` paths at any depth, symlinks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers.cli import run_cli

UUID = "961b00d8-0f1e-4c52-9b0e-d0a7a3a2b1c4"
FILE = f"/mnt/nzbdav/.ids/9/6/1/b/0/{UUID}"


async def shard_of(*items: str) -> tuple[int, list[list[str]]]:
    """Run ``shard-of`` with 4 shards; its exit code and output lines split at tabs."""
    code, out = await run_cli("shard-of", "--shards", "4", *items)
    return code, [line.split("\t") for line in out.splitlines()]


async def test_a_folder_path_is_owned_by_its_first_level_not_its_last() -> None:
    # 9 belongs to shard 2; the last segment, 0, would say shard 0.
    code, lines = await shard_of(".ids/9/6/1/b/0/")
    assert code == 0, lines
    assert lines == [[".ids/9/6/1/b/0/", "shard 2", "/.ids-s2/9/6/1/b/0/"]]


async def test_every_depth_of_an_ids_path_has_the_same_owner() -> None:
    paths = ["/mnt/nzbdav/.ids/9", "/mnt/nzbdav/.ids/9/6/1", FILE]
    code, lines = await shard_of(*paths)
    assert code == 0, lines
    assert [line[1] for line in lines] == ["shard 2"] * 3
    assert lines[2][2] == f"/.ids-s2/9/6/1/b/0/{UUID}"


async def test_a_path_outside_ids_is_not_sharded() -> None:
    code, lines = await shard_of("/content/foo")
    assert code == 0, lines
    assert lines[0][:2] == ["/content/foo", "not sharded"]


async def test_a_shard_view_path_names_its_shard() -> None:
    code, lines = await shard_of("/mnt/nzbdav/.ids-s3/f/0")
    assert code == 0, lines
    assert lines == [["/mnt/nzbdav/.ids-s3/f/0", "shard 3", "/.ids-s3/f/0"]]


async def test_a_shard_view_path_with_another_shards_prefix_is_an_error() -> None:
    code, out = await run_cli("shard-of", "--shards", "4", "/mnt/nzbdav/.ids-s0/9/6")
    assert code == 2
    assert "prefix '9' belongs to shard 2" in out
    assert "under .ids-s2" in out


async def test_a_symlink_chain_is_followed_to_the_ids_file(tmp_path: Path) -> None:
    # A Plex-style library link to another link into the mount, which need not exist here.
    hop = tmp_path / "hop.mkv"
    hop.symlink_to(FILE)
    link = tmp_path / "Movie (2020).mkv"
    link.symlink_to("hop.mkv")
    code, lines = await shard_of(str(link))
    assert code == 0, lines
    assert lines == [[f"{link} -> {hop} -> {FILE}", "shard 2", f"/.ids-s2/9/6/1/b/0/{UUID}"]]


async def test_a_symlink_out_of_ids_is_not_sharded(tmp_path: Path) -> None:
    link = tmp_path / "show.mkv"
    link.symlink_to("/mnt/nzbdav/content/tv/show.mkv")
    code, lines = await shard_of(str(link))
    assert code == 0, lines
    assert lines[0][1] == "not sharded"


async def test_a_symlink_loop_is_reported(tmp_path: Path) -> None:
    os.symlink("b", tmp_path / "a")
    os.symlink("a", tmp_path / "b")
    code, out = await run_cli("shard-of", str(tmp_path / "a"))
    assert code == 2
    assert "symlinks in a row; is there a loop?" in out


@pytest.mark.parametrize(
    ("item", "says"),
    [
        ("foo", "'foo' is not a UUID and not a path"),
        (".ids/G/1", "level 1 'G' is not one lowercase hex character"),
        (f".ids/9/6/1/b/1/{UUID}", "NzbDav stores it under 9/6/1/b/0"),
        (".ids/9/6/1/b/0/movie.mkv", "file name 'movie.mkv' is not a UUID"),
        (".ids-s7/9", "no shard view '.ids-s7': shards are .ids-s0 to .ids-s3"),
    ],
)
async def test_an_item_that_cannot_be_placed_says_why(item: str, says: str) -> None:
    code, out = await run_cli("shard-of", "--shards", "4", item)
    assert code == 2
    assert says in out


async def test_good_items_are_answered_even_when_one_is_bad() -> None:
    code, out = await run_cli("shard-of", "--shards", "4", "nope", UUID)
    assert code == 2
    assert f"{UUID}\tshard 2\t" in out
