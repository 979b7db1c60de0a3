"""Opening the tools' own files (journals, generated files) without following links.

A journal or a generated file lives where another person may write too: a library
folder, a config folder. The last part of the path is opened with ``O_NOFOLLOW`` (a link
there is refused, never followed) and must be a regular file with no other name (a hard
link to a file elsewhere is refused too). ``O_NONBLOCK`` keeps a planted FIFO from
hanging the open.
"""

from __future__ import annotations

import errno
import os
from stat import S_ISREG
from typing import TextIO


class UnsafeFileError(ValueError):
    """The path is not a plain file of its own; the message says what it is and what to do."""


def open_plain(path: str, flags: int, *, dir_fd: int | None = None, shown: str = "") -> int:
    """``os.open`` of ``path`` (mode 600 when created) that refuses links and non-files."""
    shown = shown or path
    try:
        fd = os.open(
            path,
            flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
            0o600,
            dir_fd=dir_fd,
        )
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafeFileError(
                f"{shown} is a symlink; it is never followed: remove it, or name another file"
            ) from None
        raise
    stat = os.fstat(fd)
    problem = ""
    if not S_ISREG(stat.st_mode):
        problem = "is not a regular file"
    elif stat.st_nlink > 1:
        problem = f"has {stat.st_nlink - 1} other hard link(s), so writing it would change them"
    if problem:
        os.close(fd)
        raise UnsafeFileError(f"{shown} {problem}: remove it, or name another file")
    return fd


def read_plain(path: str, *, dir_fd: int | None = None, shown: str = "") -> str | None:
    """The text of ``path`` (a plain file, see ``open_plain``), or None when there is none."""
    try:
        fd = open_plain(path, os.O_RDONLY, dir_fd=dir_fd, shown=shown)
    except FileNotFoundError:
        return None
    with os.fdopen(fd, "r", encoding="utf-8", errors="surrogateescape") as stream:
        return stream.read()


def append_plain(path: str, *, dir_fd: int | None = None, shown: str = "") -> TextIO:
    """``path`` opened to append text, created (mode 600) when missing."""
    fd = open_plain(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, dir_fd=dir_fd, shown=shown)
    return os.fdopen(fd, "a", encoding="utf-8", errors="surrogateescape")
