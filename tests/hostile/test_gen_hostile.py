"""``shardproxy gen --out`` where files, links and folders are already there: it never
writes through a link, never replaces a person's text without --force, creates its
files at mode 600 from the first byte, and says clearly when --out cannot be used."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from shardproxy.cli import main
from tests.helpers.filesystems import resize_tmpfs, small_tmpfs

SETTINGS = ["--backend", "http://127.0.0.1:3000", "--rclone-rc-pass", "rcpw-secret"]
SETTINGS += ["--nzbdav-pass", "nzbdav-secret", "--shards", "2"]


def gen(out: Path, *extra: str) -> list[str]:
    return ["gen", "--out", str(out), *SETTINGS, *extra]


def snapshot(root: Path) -> dict[str, bytes]:
    files = sorted(p for p in root.rglob("*") if p.is_file())
    return {str(p.relative_to(root)): p.read_bytes() for p in files}


def test_a_symlinked_rclone_conf_is_never_written_through(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, precious = tmp_path / "out", tmp_path / "precious.conf"
    out.mkdir()
    precious.write_text("[mine]\ntype = local\n")
    os.symlink(precious, out / "rclone.conf")
    assert main(gen(out)) == 2
    assert f"{out / 'rclone.conf'} is a symlink (to {precious}); it is never followed" in (
        capsys.readouterr().err
    )
    assert precious.read_text() == "[mine]\ntype = local\n"
    assert sorted(os.listdir(out)) == ["rclone.conf"], "something was written anyway"


def test_force_replaces_the_link_itself_and_not_what_it_points_at(tmp_path: Path) -> None:
    out, precious = tmp_path / "out", tmp_path / "precious.conf"
    out.mkdir()
    precious.write_text("[mine]\ntype = local\n")
    os.symlink(precious, out / "rclone.conf")
    assert main(gen(out, "--force")) == 0
    assert not (out / "rclone.conf").is_symlink()
    assert "[shard0]" in (out / "rclone.conf").read_text()
    assert precious.read_text() == "[mine]\ntype = local\n"


def test_a_changed_rclone_conf_is_kept_and_the_difference_shown_without_passwords(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert main(gen(out)) == 0
    conf = out / "rclone.conf"
    obscured = next(line for line in conf.read_text().splitlines() if line.startswith("pass"))
    edited = conf.read_text() + "\n[myremote]\ntype = s3\nsecret_access_key = abc\n"
    conf.write_text(edited)
    before = snapshot(out)
    capsys.readouterr()
    assert main(gen(out)) == 2
    error = capsys.readouterr().err
    assert f"{conf} has other text:" in error
    assert "-[myremote]" in error
    assert "--force" in error
    assert snapshot(out) == before
    for secret in ("rcpw-secret", "nzbdav-secret", obscured.partition("=")[2].strip(), "abc"):
        assert secret not in error


def test_running_it_again_with_the_same_settings_changes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert main(gen(out)) == 0
    before = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in out.rglob("*") if p.is_file()}
    texts = snapshot(out)
    assert main(gen(out)) == 0
    assert snapshot(out) == texts
    assert {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in before} == before


def test_force_replaces_only_the_name_and_not_a_file_hard_linked_to_it(tmp_path: Path) -> None:
    out, backup = tmp_path / "out", tmp_path / "backup.conf"
    out.mkdir()
    backup.write_text("[mine]\ntype = local\n")
    os.link(backup, out / "rclone.conf")
    assert main(gen(out, "--force")) == 0
    assert backup.read_text() == "[mine]\ntype = local\n"
    assert "[shard0]" in (out / "rclone.conf").read_text()
    assert (out / "rclone.conf").stat().st_mode & 0o777 == 0o600


def test_a_layout_folder_that_is_a_link_is_never_written_through(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    os.symlink(elsewhere, out / "shard-links")
    assert main(gen(out)) == 2
    assert "is a link or a file, not a folder" in capsys.readouterr().err
    assert os.listdir(elsewhere) == []


def test_files_are_created_at_mode_600_never_wider_for_a_moment(tmp_path: Path) -> None:
    strace = shutil.which("strace")
    if strace is None:
        pytest.skip("strace is not installed")
    log, out = tmp_path / "strace.log", tmp_path / "out"
    command = [strace, "-f", "-e", "trace=openat,open,creat,chmod,fchmod,fchmodat", "-o", str(log)]
    command += [sys.executable, "-m", "shardproxy.cli", *gen(out)]
    subprocess.run(command, check=True, capture_output=True)
    # One rclone.conf for the units, one in each layout's compose folder.
    calls = [line for line in log.read_text().splitlines() if '"rclone.conf"' in line]
    assert len(calls) == 3, calls
    for call in calls:
        assert "O_CREAT|O_EXCL|O_NOFOLLOW" in call, call
        assert call.rstrip().split(", ")[-1].startswith("0600)"), call


def test_out_naming_a_file_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "file").write_text("x")
    for out in (tmp_path / "file", tmp_path / "file" / "below"):
        assert main(gen(out)) == 2
        error = capsys.readouterr().err
        assert f"--out {out}: it (or a folder above it) is a file, not a folder" in error
        assert "Traceback" not in error
    assert (tmp_path / "file").read_text() == "x"


def test_out_on_a_read_only_filesystem_says_so_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with small_tmpfs(tmp_path / "ro", "1M") as where:
        subprocess.run(["mount", "-o", "remount,ro", str(where)], check=True)
        assert main(gen(where)) == 2
        assert f"--out {where}: cannot write in it (Read-only file system)" in (
            capsys.readouterr().err
        )
        assert os.listdir(where) == []


def test_a_full_disk_leaves_no_half_file_and_a_rerun_finishes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with small_tmpfs(tmp_path / "small", "12k") as small:
        assert main(gen(small)) == 2
        error = capsys.readouterr().err
        assert "No space left on device" in error and "run again" in error
        # Every file there is whole: what a later run finds is what gen makes.
        written = snapshot(small)
        resize_tmpfs(small, "1M")
        assert main(gen(small)) == 0
        final = snapshot(small)
        assert set(written) < set(final)
        assert {name: final[name] for name in written} == written
