"""Killing a tool with SIGKILL partway, at a point its journal shows."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path


def journal_lines(path: Path) -> int:
    """Lines in a journal so far (0 while there is none)."""
    try:
        with path.open("rb") as stream:
            return sum(1 for _ in stream)
    except FileNotFoundError:
        return 0


def kill_after(command: list[str], journal: Path, lines: int) -> None:
    """Run ``command`` and SIGKILL it once ``journal`` has ``lines`` lines.

    Fails when the command ends on its own first: then nothing was interrupted.
    """
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while journal_lines(journal) < lines and process.poll() is None:
            time.sleep(0.001)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait()
    assert process.returncode == -signal.SIGKILL, f"{command[3]} ended before it was killed"
