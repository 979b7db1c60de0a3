"""``shardproxy relink`` on real directories: atomic, idempotent, resumable, undoable."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from shardproxy.cli import main
from shardproxy.core.shards import ShardMap
from shardproxy.tools.relink.plan import Outcome
from shardproxy.tools.relink.run import JOURNAL_NAME, TMP_SUFFIX, RelinkError, relink_library
from tests.helpers.kills import kill_after
from tests.helpers.library_links import (
    MOUNT,
    ids_target,
    make_library,
    memory_folder,
    targets,
)

MAP = ShardMap.even(4)


def test_relink_moves_links_into_shard_views_and_undo_moves_them_back(tmp_path: Path) -> None:
    links = make_library(tmp_path, 40)
    report = relink_library(tmp_path, MOUNT, MAP, progress=False)
    assert report.counts[Outcome.CHANGE] == 40
    assert targets(tmp_path, links) == {
        name: ids_target(uuid, MAP.shard_of(uuid)) for name, uuid in links.items()
    }
    again = relink_library(tmp_path, MOUNT, MAP, progress=False)
    assert (again.counts[Outcome.CHANGE], again.counts[Outcome.RIGHT]) == (0, 40)
    relink_library(tmp_path, MOUNT, MAP, undo=True, progress=False)
    assert targets(tmp_path, links) == {name: ids_target(uuid) for name, uuid in links.items()}


def test_dry_run_changes_nothing_and_writes_no_journal(tmp_path: Path) -> None:
    links = make_library(tmp_path, 10)
    report = relink_library(tmp_path, MOUNT, MAP, dry_run=True, progress=False)
    assert report.counts[Outcome.CHANGE] == 10
    assert "10 would change" in report.summary()
    assert targets(tmp_path, links) == {name: ids_target(uuid) for name, uuid in links.items()}
    assert not (tmp_path / JOURNAL_NAME).exists()


def test_other_links_files_and_linked_folders_are_left_alone(tmp_path: Path) -> None:
    library, outside = tmp_path / "library", tmp_path / "outside"
    library.mkdir()
    outside.mkdir()
    # A link to a folder outside the library holding a link relink would change: the
    # walk must not follow it there.
    os.symlink(ids_target("961b00d8-0f1e-4c52-9b0e-d0a7a3a2b1c4"), outside / "bait.mkv")
    os.symlink(outside, library / "elsewhere")
    os.symlink("/media/other/film.mkv", library / "other.mkv")
    os.symlink(f"{MOUNT}/.ids/9/6/1/b/1/961b00d8-0f1e-4c52-9b0e-d0a7a3a2b1c4", library / "bad.mkv")
    (library / "plain.nfo").write_text("not a link")
    report = relink_library(library, MOUNT, MAP, progress=False)
    assert report.counts == {Outcome.SKIP: 2, Outcome.BROKEN: 1}
    assert os.readlink(outside / "bait.mkv") == ids_target("961b00d8-0f1e-4c52-9b0e-d0a7a3a2b1c4")
    assert os.readlink(library / "elsewhere") == str(outside)
    assert "bad.mkv" in report.summary()


def test_a_temporary_link_left_by_a_kill_is_cleaned_up_on_resume(tmp_path: Path) -> None:
    links = make_library(tmp_path, 3)
    first = next(iter(links))
    journal = tmp_path / JOURNAL_NAME
    # What a run killed between making the new link and renaming it leaves behind.
    header = (
        '{"header": {"mount": "/mnt/nzbdav", "undo": false, '
        f'"owners": {list(MAP.owner_of_char)}, "version": 1}}}}\n'
    )
    new = ids_target(links[first], MAP.shard_of(links[first]))
    entry = f'{{"link": "{first}", "old": "{ids_target(links[first])}", "new": "{new}"}}\n'
    journal.write_text(header + entry)
    tmp = tmp_path / first
    tmp = tmp.with_name(f".{tmp.name}{TMP_SUFFIX}")
    os.symlink(new, tmp)
    report = relink_library(tmp_path, MOUNT, MAP, progress=False)
    assert report.resumed
    assert not tmp.is_symlink()
    assert report.counts[Outcome.CHANGE] == 3


def test_an_unfinished_run_with_another_map_is_refused(tmp_path: Path) -> None:
    make_library(tmp_path, 3)
    (tmp_path / JOURNAL_NAME).write_text(
        '{"header": {"mount": "/mnt/nzbdav", "undo": false, '
        f'"owners": {list(ShardMap.even(2).owner_of_char)}, "version": 1}}}}\n'
    )
    with pytest.raises(RelinkError, match="interrupted run"):
        relink_library(tmp_path, MOUNT, MAP, progress=False)


def test_the_command_prints_counts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_library(tmp_path, 5)
    assert main(["relink", str(tmp_path), "--mount-dir", "/mnt/nzbdav/", "--shards", "2"]) == 0
    assert "5 links: 5 changed, 0 already right, 0 skipped, 0 broken" in capsys.readouterr().out


@pytest.fixture
def memory_dir() -> Iterator[Path]:
    """A folder in RAM: 150,000 renames on a shared test machine's disk take minutes."""
    with memory_folder() as path:
        yield path


def test_fifty_thousand_links_killed_midway_then_resumed_then_undone(memory_dir: Path) -> None:
    library = memory_dir / "library"
    links = make_library(library, 50_000)
    journal = library / JOURNAL_NAME
    command = [sys.executable, "-m", "shardproxy.cli", "relink", str(library)]
    command += ["--mount-dir", MOUNT, "--shards", "4"]
    kill_after(command, journal, 5_000)
    halfway = targets(library, links)
    moved = sum(1 for name, uuid in links.items() if halfway[name] != ids_target(uuid))
    assert 0 < moved < 50_000
    # Every link is either still the original or already its shard's: never anything else.
    for name, uuid in links.items():
        assert halfway[name] in (ids_target(uuid), ids_target(uuid, MAP.shard_of(uuid)))

    resumed = subprocess.run(command, capture_output=True, text=True, check=True)
    assert f"{50_000 - moved} changed, {moved} already right" in resumed.stdout
    assert "resumed an interrupted run" in resumed.stdout
    assert targets(library, links) == {
        name: ids_target(uuid, MAP.shard_of(uuid)) for name, uuid in links.items()
    }
    assert not [
        name for _, _, names in os.walk(library) for name in names if name.endswith(TMP_SUFFIX)
    ]

    undone = subprocess.run([*command, "--undo"], capture_output=True, text=True, check=True)
    assert "50000 links: 50000 changed" in undone.stdout
    assert targets(library, links) == {name: ids_target(uuid) for name, uuid in links.items()}
