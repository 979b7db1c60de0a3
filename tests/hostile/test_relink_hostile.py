"""``shardproxy relink`` against a hostile or unlucky library: folders swapped for links
while it runs, planted journal links and temporary names, 255-byte names, bad journal
lines, repeated kills. Real folders, real symlinks, real processes killed with SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from shardproxy.cli import main
from shardproxy.core.shards import ShardMap
from shardproxy.tools.relink.run import JOURNAL_NAME, TMP_SUFFIX
from tests.helpers.filesystems import resize_tmpfs, small_tmpfs
from tests.helpers.kills import journal_lines, kill_after
from tests.helpers.library_links import (
    MOUNT,
    ids_target,
    make_library,
    memory_folder,
    spread_uuid,
    targets,
)

MAP = ShardMap.even(4)
UUID = "961b00d8-0f1e-4c52-9b0e-d0a7a3a2b1c4"


@pytest.fixture
def memory_dir() -> Iterator[Path]:
    with memory_folder() as path:
        yield path


def relink(library: Path, *extra: str) -> list[str]:
    return ["relink", str(library), "--mount-dir", MOUNT, "--shards", "4", *extra]


def in_process(library: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "shardproxy.cli", *relink(library, *extra)]


def temporary_leftovers(root: Path) -> list[str]:
    return [n for _, _, names in os.walk(root) for n in names if n.endswith(TMP_SUFFIX)]


def journal_links(path: Path) -> set[str]:
    """The links a journal has entries for so far (a torn last line is skipped)."""
    found = set()
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if "link" in record:
            found.add(record["link"])
    return found


# --- links and folders it did not make ---------------------------------------------------


def test_a_folder_swapped_for_a_link_after_the_walk_is_never_written_through(
    memory_dir: Path,
) -> None:
    library, outside = memory_dir / "library", memory_dir / "outside"
    links = make_library(library, 10_000, per_folder=100)
    process = subprocess.Popen(in_process(library), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        # The journal's first entry means the walk is over; stopped, the run changes
        # nothing more, so a folder with no entry yet is one it has listed, not touched.
        while journal_lines(library / JOURNAL_NAME) < 2:
            assert process.poll() is None, "relink ended before its first change"
            time.sleep(0.002)
        process.send_signal(signal.SIGSTOP)
        touched = {link.partition("/")[0] for link in journal_links(library / JOURNAL_NAME)}
        swapped = sorted({name.partition("/")[0] for name in links} - touched)[:20]
        for folder in swapped:
            # A copy outside the library with the same links, and the folder a link to it.
            (outside / folder).mkdir(parents=True)
            for name, uuid in links.items():
                if name.startswith(f"{folder}/"):
                    os.symlink(ids_target(uuid), outside / name)
            os.rename(library / folder, library / f"{folder}.moved")
            os.symlink(outside / folder, library / folder)
    finally:
        process.send_signal(signal.SIGCONT)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    assert len(swapped) == 20
    outside_links = {str(p.relative_to(outside)): os.readlink(p) for p in outside.rglob("*.mkv")}
    assert len(outside_links) == 20 * 100
    assert outside_links == {name: ids_target(links[name]) for name in outside_links}
    assert b"was replaced by a link or a file since the walk: left alone" in out


def test_a_planted_journal_link_is_refused_and_what_it_points_at_left_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    library, outside = tmp_path / "library", tmp_path / "precious.conf"
    links = make_library(library, 5)
    outside.write_text("a person's file\n")
    os.symlink(outside, library / JOURNAL_NAME)
    assert main(relink(library)) == 2
    assert "is a symlink; it is never followed" in capsys.readouterr().err
    assert outside.read_text() == "a person's file\n"
    assert targets(library, links) == {name: ids_target(uuid) for name, uuid in links.items()}


def test_a_journal_given_as_a_link_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    library, outside = tmp_path / "library", tmp_path / "precious.conf"
    make_library(library, 2)
    outside.write_text("a person's file\n")
    os.symlink(outside, tmp_path / "journal")
    assert main(relink(library, "--journal", str(tmp_path / "journal"))) == 2
    assert "is a symlink" in capsys.readouterr().err
    assert outside.read_text() == "a person's file\n"


def test_a_journal_hard_linked_to_another_file_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    library, outside = tmp_path / "library", tmp_path / "precious.conf"
    make_library(library, 2)
    outside.write_text("a person's file\n")
    os.link(outside, library / JOURNAL_NAME)
    assert main(relink(library)) == 2
    assert "other hard link" in capsys.readouterr().err
    assert outside.read_text() == "a person's file\n"


@pytest.mark.parametrize("kind", ["file", "link", "folder"])
def test_a_planted_temporary_name_is_left_alone_and_the_link_still_changed(
    tmp_path: Path, kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    links = make_library(tmp_path, 3)
    name = next(iter(links))
    planted = tmp_path / name
    planted = planted.with_name(f".{planted.name}{TMP_SUFFIX}")
    if kind == "file":
        planted.write_text("mine")
    elif kind == "link":
        os.symlink("/somewhere/else", planted)
    else:
        planted.mkdir()
    assert main(relink(tmp_path)) == 0
    assert "3 changed" in capsys.readouterr().out
    assert targets(tmp_path, links) == {
        name: ids_target(uuid, MAP.shard_of(uuid)) for name, uuid in links.items()
    }
    if kind == "file":
        assert planted.read_text() == "mine"
    elif kind == "link":
        assert os.readlink(planted) == "/somewhere/else"
    else:
        assert planted.is_dir()


# --- 255-byte names ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["e" * 251 + ".mkv", "é" * 125 + "x.mkv"])
def test_a_link_with_a_name_of_255_bytes_is_changed_and_undone(
    tmp_path: Path, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert len(name.encode()) == 255
    os.symlink(ids_target(UUID), tmp_path / name)
    assert main(relink(tmp_path)) == 0
    assert os.readlink(tmp_path / name) == ids_target(UUID, MAP.shard_of(UUID))
    assert main(relink(tmp_path, "--undo")) == 0
    assert os.readlink(tmp_path / name) == ids_target(UUID)
    assert temporary_leftovers(tmp_path) == []
    assert "1 changed" in capsys.readouterr().out


def test_a_journal_entry_for_a_long_name_left_by_an_older_version_does_not_jam_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # What the older version left when its too-long temporary name crashed it: the
    # journal entry, no temporary link.
    name = "e" * 240 + ".mkv"
    os.symlink(ids_target(UUID), tmp_path / name)
    header = {"mount": MOUNT, "undo": False, "owners": list(MAP.owner_of_char), "version": 1}
    entry = {"link": name, "old": ids_target(UUID), "new": ids_target(UUID, MAP.shard_of(UUID))}
    (tmp_path / JOURNAL_NAME).write_text(
        json.dumps({"header": header}) + "\n" + json.dumps(entry) + "\n"
    )
    assert main(relink(tmp_path, "--undo")) == 0
    assert main(relink(tmp_path)) == 0
    assert os.readlink(tmp_path / name) == ids_target(UUID, MAP.shard_of(UUID))
    assert "Traceback" not in capsys.readouterr().err


def test_a_bad_journal_entry_is_reported_and_skipped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    library, outside = tmp_path / "library", tmp_path / "outside"
    links = make_library(library, 3)
    outside.mkdir()
    bait = outside / f".x{TMP_SUFFIX}"
    os.symlink("/new", bait)
    header = {"mount": MOUNT, "undo": False, "owners": list(MAP.owner_of_char), "version": 1}
    lines = [
        json.dumps({"header": header}),
        json.dumps({"link": "../outside/x", "old": "/old", "new": "/new"}),
        json.dumps({"link": ["not", "text"], "old": "/old", "new": "/new"}),
    ]
    (library / JOURNAL_NAME).write_text("\n".join(lines) + "\n")
    assert main(relink(library)) == 0
    out = capsys.readouterr().out
    assert "line 2: link '../outside/x' is not a path inside the library, skipped" in out
    assert "line 3: not a link entry, skipped" in out
    assert os.readlink(bait) == "/new"
    assert targets(library, links) == {
        name: ids_target(uuid, MAP.shard_of(uuid)) for name, uuid in links.items()
    }


# --- undo is the exact inverse -----------------------------------------------------------


def test_undo_leaves_links_that_were_in_shard_views_before_the_first_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    uuids = [spread_uuid(n) for n in range(3)]
    right = ids_target(uuids[1], MAP.shard_of(uuids[1]))
    wrong_shard = (MAP.shard_of(uuids[2]) + 1) % 4
    stale = ids_target(uuids[2], wrong_shard)
    before = {"a.mkv": ids_target(uuids[0]), "b.mkv": right, "c.mkv": stale}
    for name, target in before.items():
        os.symlink(target, tmp_path / name)
    assert main(relink(tmp_path)) == 0
    assert os.readlink(tmp_path / "c.mkv") == ids_target(uuids[2], MAP.shard_of(uuids[2]))
    assert main(relink(tmp_path, "--undo")) == 0
    assert {name: os.readlink(tmp_path / name) for name in before} == before
    assert "1 links in shard views were not put there by relink" in capsys.readouterr().out


def test_undo_all_points_every_link_at_ids(tmp_path: Path) -> None:
    os.symlink(ids_target(UUID, MAP.shard_of(UUID)), tmp_path / "imported.mkv")
    assert main(relink(tmp_path, "--undo", "--all")) == 0
    assert os.readlink(tmp_path / "imported.mkv") == ids_target(UUID)


# --- kill -9, again and again ------------------------------------------------------------


def test_a_resume_counts_what_every_interrupted_run_changed(memory_dir: Path) -> None:
    library = memory_dir / "library"
    links = make_library(library, 20_000)
    journal = library / JOURNAL_NAME
    kill_after(in_process(library), journal, 2_000)
    kill_after(in_process(library), journal, journal_lines(journal) + 2_000)
    now = targets(library, links)
    moved = sum(1 for name, uuid in links.items() if now[name] != ids_target(uuid))
    resumed = subprocess.run(in_process(library), capture_output=True, text=True, check=True)
    assert f"resumed an interrupted run that had changed {moved}\n" in resumed.stdout
    assert temporary_leftovers(library) == []
    undone = subprocess.run(
        in_process(library, "--undo"), capture_output=True, text=True, check=True
    )
    assert "20000 links: 20000 changed" in undone.stdout
    assert targets(library, links) == {name: ids_target(uuid) for name, uuid in links.items()}


# --- a full disk ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("full", "room"),
    [
        ("8k", "1M"),  # the journal's bytes run out
        # 124 inodes: the root, two folders, 120 links and the journal; none for a new link
        ("1M,nr_inodes=124", "1M,nr_inodes=1000"),
    ],
)
def test_a_full_disk_stops_it_cleanly_and_a_rerun_finishes(
    tmp_path: Path, full: str, room: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with small_tmpfs(tmp_path / "small", full) as small:
        library = small / "library"
        links = make_library(library, 120, per_folder=120)
        assert main(relink(library)) == 2
        error = capsys.readouterr().err
        assert "No space left on device" in error and "run the same command again" in error
        assert "Traceback" not in error
        now = targets(library, links)
        for name, uuid in links.items():
            assert now[name] in (ids_target(uuid), ids_target(uuid, MAP.shard_of(uuid)))
        resize_tmpfs(small, room)
        assert main(relink(library)) == 0
        assert "resumed an interrupted run" in capsys.readouterr().out
        assert targets(library, links) == {
            name: ids_target(uuid, MAP.shard_of(uuid)) for name, uuid in links.items()
        }
        assert temporary_leftovers(library) == []
        assert main(relink(library, "--undo")) == 0
        assert targets(library, links) == {name: ids_target(uuid) for name, uuid in links.items()}


def test_a_read_only_library_gets_a_clear_error_and_is_left_as_it_was(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with small_tmpfs(tmp_path / "ro", "1M") as small:
        links = make_library(small, 5)
        subprocess.run(["mount", "-o", "remount,ro", str(small)], check=True)
        assert main(relink(small)) == 2
        assert "(Read-only file system): give --journal FILE" in capsys.readouterr().err
        assert main(relink(small, "--journal", str(tmp_path / "journal"))) == 2
        error = capsys.readouterr().err
        assert "cannot make a link in the library (Read-only file system)" in error
        assert "Traceback" not in error
        assert targets(small, links) == {name: ids_target(uuid) for name, uuid in links.items()}
