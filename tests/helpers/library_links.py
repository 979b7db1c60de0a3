"""Libraries of real symlinks into NzbDav's ``.ids`` tree, for relink's tests."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid as uuidlib
from collections.abc import Iterator
from pathlib import Path

import pytest

MOUNT = "/mnt/nzbdav"


def ids_target(uuid: str, shard: int | None = None) -> str:
    """``{mount}/.ids/h/h/h/h/h/<uuid>``, or the same in shard ``shard``'s view."""
    root = ".ids" if shard is None else f".ids-s{shard}"
    return f"{MOUNT}/{root}/{'/'.join(uuid[:5])}/{uuid}"


def spread_uuid(index: int) -> str:
    """The ``index``-th of a sequence of UUIDs spread over every first character."""
    return str(uuidlib.UUID(int=index * 0x9E3779B97F4A7C15 % (1 << 128)))


def make_library(root: Path, count: int, per_folder: int = 500) -> dict[str, str]:
    """``count`` links to ``{mount}/.ids/...`` in folders of ``per_folder``; name -> uuid."""
    made: dict[str, str] = {}
    for index in range(count):
        uuid = spread_uuid(index)
        relative = f"show{index // per_folder}/episode{index}.mkv"
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(ids_target(uuid), path)
        made[relative] = uuid
    return made


def targets(root: Path, links: dict[str, str]) -> dict[str, str]:
    """Each link's target, by its path relative to ``root``."""
    return {relative: os.readlink(root / relative) for relative in links}


@contextlib.contextmanager
def memory_folder() -> Iterator[Path]:
    """A folder in RAM (/dev/shm), removed afterwards: tens of thousands of renames on a
    shared test machine's disk take minutes."""
    if not os.path.isdir("/dev/shm"):
        pytest.skip("no /dev/shm to hold a large library")
    path = Path(tempfile.mkdtemp(prefix="relink-", dir="/dev/shm"))
    try:
        yield path
    finally:
        shutil.rmtree(path)
