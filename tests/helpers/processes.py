"""Running real programs (rclone, litmus, nginx, ...) from tests: free ports, readiness."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def require_program(name: str) -> str:
    """The path of an installed program; skip the test (saying how to get it) if absent."""
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed: run ./scripts/setup.sh")
    return path


def current_rclone() -> str | None:
    """The current rclone that scripts/setup.sh installs next to Debian's, if there."""
    path = REPO / ".tools" / "rclone-current" / "bin" / "rclone"
    return str(path) if path.exists() else None


def rclone_binaries() -> list[object]:
    """pytest params: Debian's rclone 1.60.1 and the current one (skipped if not installed)."""
    current = current_rclone()
    return [
        pytest.param("rclone", id="rclone-1.60"),
        pytest.param(
            current,
            id="rclone-current",
            marks=pytest.mark.skipif(current is None, reason="run ./scripts/setup.sh"),
        ),
    ]


async def run_rclone(binary: str, config: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    """rclone with ``config``, one low-level retry and one retry, for at most 120 s; its
    exit code and output."""
    process = await asyncio.create_subprocess_exec(
        binary,
        "--config",
        str(config),
        "--low-level-retries",
        "1",
        "--retries",
        "1",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode is not None
    return subprocess.CompletedProcess(list(args), process.returncode, out, err)


async def wait_for_port(port: int, process: asyncio.subprocess.Process, log: Path) -> None:
    """Poll until something accepts on ``port``; fail with the log if the process died."""
    for _ in range(600):
        if process.returncode is not None:
            raise RuntimeError(f"process exited with {process.returncode}:\n{log.read_text()}")
        with contextlib.suppress(OSError):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        await asyncio.sleep(0.05)
    raise RuntimeError(f"nothing listened on port {port} after 30 s:\n{log.read_text()}")


@contextlib.asynccontextmanager
async def running(
    argv: Sequence[str], *, port: int, log: Path, cwd: Path | None = None
) -> AsyncIterator[asyncio.subprocess.Process]:
    """Run ``argv`` with output to ``log`` until the block ends; wait for ``port`` first."""
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            *argv, stdout=out, stderr=subprocess.STDOUT, cwd=cwd
        )
    try:
        await wait_for_port(port, process, log)
        yield process
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()


def serve_argv(backend: str, port: int, tmp_path: Path, *extra: str) -> list[str]:
    """``shardproxy serve`` on ``port`` in front of ``backend``, its RC queue in tmp_path."""
    return [
        sys.executable,
        "-m",
        "shardproxy.cli",
        "serve",
        "--backend",
        backend,
        "--listen",
        f"127.0.0.1:{port}",
        "--rc-pending-file",
        str(tmp_path / "pending.sqlite3"),
        *extra,
    ]


def fuse_problem() -> str | None:
    """Why FUSE mounts cannot run here (for a skip reason), or None when they can."""
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse is missing"
    if os.geteuid() != 0:
        return "mounting with allow_other needs root"
    for program in ("rclone", "mergerfs", "fusermount3"):
        if shutil.which(program) is None:
            return f"{program} is not installed: run ./scripts/setup.sh"
    return None


def listening_pids(port: int) -> set[int]:
    """The processes holding a listening TCP socket on ``port`` (IPv4, this namespace)."""
    inodes: set[str] = set()
    with open("/proc/net/tcp", encoding="ascii") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and int(local.split(":")[1], 16) == port:  # 0A: LISTEN
                inodes.add(f"socket:[{inode}]")
    pids: set[int] = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            links = {os.readlink(fd) for fd in (proc / "fd").iterdir()}
        except OSError:  # gone, or not ours to read
            continue
        if links & inodes:
            pids.add(int(proc.name))
    return pids
