"""The rclone installed here, and whether it can show NzbDav's links as symlinks.

``gen`` writes `--vfs-links` on the mount that shows ``/completed-symlinks`` only for an
rclone that has it, and both ``gen`` and ``check`` say when the one installed is older.
"""

from __future__ import annotations

import shutil
import subprocess

LINKS_SINCE = (1, 69)
"""rclone shows ``.rclonelink`` files as symlinks (``--vfs-links``) from 1.69 on; 1.60.1
(Debian 12) accepts the flag and ignores it (README, "Which rclone")."""


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


def links_warning(binary: str, version: tuple[int, int], why: str) -> str | None:
    """A warning when ``binary`` is too old to show ``.rclonelink`` files as symlinks."""
    if version >= LINKS_SINCE:
        return None
    shown = ".".join(map(str, version))
    wanted = ".".join(map(str, LINKS_SINCE))
    return (
        f"warning: {binary} is rclone {shown}, older than {wanted}: its mounts show NzbDav's "
        f".rclonelink files as small files, not symlinks, so Sonarr and Radarr cannot import "
        f"new items through them ({why}); install rclone {wanted} or later from rclone's own "
        "releases"
    )
