"""Which local processes use a cache dir, seen in ``/proc``.

A process counts when its command line or environment gives rclone that cache dir
(``rclone_args.cache_dir_of``; the program may be installed under any name), or when it
has any file under the dir open. The open files catch what a command line cannot show:
a wrapper that passes the dir on, a copy or backup of the cache in progress.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from shardproxy.tools.reshard.rclone_args import ENV, FLAG, cache_dir_flag, cache_dir_of


@dataclass
class CacheUsers:
    """The processes found using the dirs, and how many could not be looked at."""

    found: list[str] = field(default_factory=list)
    unreadable: int = 0


def _inside(path: str, roots: Iterable[str]) -> bool:
    return any(path == root or path.startswith(root.rstrip("/") + "/") for root in roots)


def _read(path: str) -> bytes:
    with open(path, "rb") as stream:
        return stream.read()


def _environ(pid: str) -> dict[str, str]:
    pairs = _read(f"/proc/{pid}/environ").decode(errors="surrogateescape").split("\0")
    return dict(pair.partition("=")[::2] for pair in pairs if "=" in pair)


def _describe(pid: str, argv: Sequence[str], reason: str) -> str:
    return f"{pid}: {' '.join(argv).strip() or '?'} ({reason})"


def _why_using(pid: str, wanted: Sequence[str], users: CacheUsers) -> str | None:
    """Why process ``pid`` uses one of ``wanted`` (real paths), or None.

    What may not be read (another user's environment or open files, without root) is
    counted in ``users.unreadable``. Raises FileNotFoundError when the process is gone.
    """
    argv = _read(f"/proc/{pid}/cmdline").decode(errors="surrogateescape").split("\0")
    argv = argv[:-1] if argv and argv[-1] == "" else argv
    hidden = False
    try:
        environ = _environ(pid)
        cwd = os.readlink(f"/proc/{pid}/cwd")
        program = os.readlink(f"/proc/{pid}/exe")
    except PermissionError:
        environ, cwd, program, hidden = {}, "/", "", True
    except FileNotFoundError:
        raise
    except OSError:  # a kernel thread has no program file
        environ, cwd, program = {}, "/", ""
    is_rclone = any("rclone" in os.path.basename(name) for name in (program, *argv[:1]))
    named = cache_dir_of(argv, environ, cwd, rclone=is_rclone)
    if named is not None and os.path.realpath(named) in wanted:
        how = FLAG if cache_dir_flag(argv) is not None else ENV if ENV in environ else "default"
        return _describe(pid, argv, f"cache dir {named} by {how}")
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except PermissionError:
        fds, hidden = [], True
    users.unreadable += hidden
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if _inside(target, wanted):
            return _describe(pid, argv, f"has {target} open")
    return None


def processes_using(cache_dirs: Sequence[str]) -> CacheUsers:
    """Every process but this one that uses one of ``cache_dirs``, as ``pid: argv (why)``."""
    wanted = [os.path.realpath(d) for d in cache_dirs]
    users = CacheUsers()
    for pid in sorted(filter(str.isdigit, os.listdir("/proc")), key=int):
        if int(pid) == os.getpid():
            continue
        try:
            why = _why_using(pid, wanted, users)
        except OSError:
            continue  # gone meanwhile
        if why is not None:
            users.found.append(why)
    return users
