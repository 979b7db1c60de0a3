"""The rclone installed on this machine and its version (``gen`` and ``check`` ask)."""

from __future__ import annotations

import shutil
import subprocess


def rclone_version(binary: str) -> tuple[int, int]:
    """``(1, 60)`` for rclone v1.60.1-DEV."""
    out = subprocess.run([binary, "version"], capture_output=True, text=True, check=True).stdout
    major, minor = out.split()[1].lstrip("v").split(".")[:2]
    return int(major), int(minor)


def installed_rclone() -> tuple[str, tuple[int, int]] | None:
    """The rclone on PATH and its version, or None when there is none (or it fails)."""
    binary = shutil.which("rclone")
    if binary is None:
        return None
    try:
        return binary, rclone_version(binary)
    except (OSError, subprocess.CalledProcessError, ValueError, IndexError):
        return None
