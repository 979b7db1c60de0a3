"""Small real filesystems for tests of a full disk: a tmpfs of a given size (root only)."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def small_tmpfs(where: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` (``1M``) mounted at ``where``; unmounted afterwards, always."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    where.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(where)], check=True
    )
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=False)
        if os.path.ismount(where):
            subprocess.run(["umount", "-l", str(where)], check=True)


def resize_tmpfs(where: Path, size: str) -> None:
    """Give a mounted tmpfs a new size (``remount``): room made without touching its files."""
    subprocess.run(["mount", "-o", f"remount,size={size}", str(where)], check=True)


def free_bytes(where: Path) -> int:
    """Bytes free on the filesystem holding ``where``."""
    stat = os.statvfs(where)
    return stat.f_bavail * stat.f_frsize
