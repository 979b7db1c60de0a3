"""`shardproxy demo --mount DIR`, as the README runs it: up, shown, torn down, always."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from shardproxy.tools.stack_runner import clear_stale_mounts, fuse_mounts_under
from tests.helpers.processes import fuse_problem

pytestmark = pytest.mark.skipif(fuse_problem() is not None, reason=str(fuse_problem()))


@pytest.fixture
def demo_dir() -> Iterator[Path]:
    """A folder for the demo; whatever a failed test left mounted there is cleared."""
    parent = Path(tempfile.mkdtemp(prefix="shardproxy-demo-"))
    try:
        yield parent / "demo"
    finally:
        clear_stale_mounts(parent)
        subprocess.run(["rm", "-rf", str(parent)], check=False)


def demo(mount: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "shardproxy.cli", "demo", "--mount", str(mount), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_for_line(process: subprocess.Popen[str], wanted: str) -> str:
    seen = []
    assert process.stdout is not None
    for line in process.stdout:
        seen.append(line)
        if wanted in line:
            return "".join(seen)
    raise AssertionError(f"the demo ended without printing {wanted!r}:\n{''.join(seen)}")


@pytest.mark.parametrize("layout", ["links-unchanged", "shard-links"])
def test_demo_once_fills_only_the_films_shard_and_cleans_up(demo_dir: Path, layout: str) -> None:
    process = demo(demo_dir, "--once", "--layout", layout)
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 0, output
    used = dict(re.findall(r"^  (shard\d|rest)\s+([0-9.]+) MiB", output, re.MULTILINE))
    assert float(used["shard2"]) >= 64, output  # the film read is shard 2's
    assert [used[m] for m in ("shard0", "shard1", "shard3", "rest")] == ["0.0"] * 4, output
    assert not demo_dir.exists(), "the demo left its folder behind"


def test_ctrl_c_tears_everything_down(demo_dir: Path) -> None:
    process = demo(demo_dir)
    wait_for_line(process, "Running until Ctrl-C")
    assert fuse_mounts_under(demo_dir)
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 0, output
    assert not demo_dir.exists()


def test_a_demo_after_a_crashed_one_clears_its_mounts_and_processes(demo_dir: Path) -> None:
    crashed = demo(demo_dir)
    wait_for_line(crashed, "Running until Ctrl-C")
    crashed.kill()  # no teardown at all: mounts and rclone processes are left behind
    crashed.communicate(timeout=30)
    assert fuse_mounts_under(demo_dir)
    again = demo(demo_dir, "--once")
    output, _ = again.communicate(timeout=300)
    assert again.returncode == 0, output
    assert not demo_dir.exists()
