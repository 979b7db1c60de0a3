"""``shardproxy reshard``: move cached files between rclone caches after a map change.

Reads the caches, plans with ``reshard.plan_reshard``, refuses while a process uses an
affected cache (``busy``) or its rclone answers on the RC, then moves each file's data
and metadata together. On one filesystem a move is a rename; across filesystems the
data is copied extent by extent (SEEK_DATA/SEEK_HOLE) so the holes of rclone's sparse
cache files stay holes, after checking the target has room, and a copy a full disk cuts
short is removed. A journal line is written before and after each move, so a killed or
stopped run finishes the move it was in when it runs again. Folders a move empties in
the old cache are removed.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from stat import S_ISREG
from typing import TextIO

from tqdm import tqdm
from yarl import URL

from shardproxy.core.shards import ShardMap
from shardproxy.tools.nofollow import UnsafeFileError, append_plain, read_plain
from shardproxy.tools.reshard.busy import processes_using
from shardproxy.tools.reshard.plan import (
    CachedFile,
    CacheDir,
    Move,
    ReshardJournal,
    ReshardPlan,
    decode_reshard_journal,
    encode_move,
    encode_start,
    journal_key,
    plan_reshard,
)

JOURNAL_NAME = "shardproxy-reshard.journal"
_TMP_SUFFIX = ".shardproxy-reshard"
_CHUNK = 1 << 20
# Room kept free beyond a file's own blocks: folders and rclone's metadata JSON.
_ROOM_MARGIN = 1 << 20


class ReshardError(RuntimeError):
    """The run cannot go on; the message says why and what to do."""


@dataclass
class ReshardReport:
    """What a run did."""

    moved: int = 0
    resumed: int = 0
    conflicts: int = 0


def scan_cache(shard: int, cache: CacheDir) -> Iterator[CachedFile]:
    """Every data file in one shard's cache, with its length and bytes on disk."""
    root = Path(cache.data(""))
    if not root.is_dir():
        return
    for folder, _, names in os.walk(root):
        for name in names:
            if name.endswith(_TMP_SUFFIX):
                continue
            stat = os.lstat(os.path.join(folder, name))
            if not S_ISREG(stat.st_mode):
                continue  # rclone keeps regular files only; never move a link's target
            relative = os.path.relpath(os.path.join(folder, name), root)
            yield CachedFile(shard, relative, stat.st_size, stat.st_blocks * 512)


def discover_remote(cache_dir: str, shard: int) -> str:
    """The remote name inside a cache dir: the only one there, else ``shard<N>``."""
    try:
        names = sorted(entry.name for entry in os.scandir(f"{cache_dir}/vfs") if entry.is_dir())
    except FileNotFoundError:
        names = []
    if len(names) > 1:
        raise ReshardError(
            f"{cache_dir}/vfs holds several remotes ({', '.join(names)}): say which is shard "
            f"{shard}'s with --remotes, one name per cache dir"
        )
    return names[0] if names else f"shard{shard}"


def rclones_answering(rc_urls: Sequence[str], timeout: float = 2.0) -> list[str]:
    """The RC URLs (credentials hidden) whose rclone answers ``rc/noop``: it is running.

    Catches rclones the process list cannot show, such as those in other containers.
    """
    answering: list[str] = []
    for text in rc_urls:
        url = URL(text)
        shown = url.with_user(None)
        request = urllib.request.Request(
            str(shown / "rc/noop"),
            data=b"{}",
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        if url.user is not None:
            token = base64.b64encode(f"{url.user}:{url.password or ''}".encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.urlopen(request, timeout=timeout):
                pass
        except urllib.error.HTTPError:
            pass  # an error reply (401, 404) still comes from a live rclone
        except (OSError, ValueError):
            continue
        answering.append(f"RC {shown} answers")
    return answering


def _no_follow(path: str, flags: int) -> int:
    return os.open(path, flags | os.O_NOFOLLOW)


def copy_sparse(source: str, target: str) -> None:
    """Copy ``source`` to the new file ``target``, writing only its data extents; holes
    stay holes. Neither name is followed if it is a link; ``target`` must not exist."""
    created = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with open(source, "rb", opener=_no_follow) as src, open(created, "wb") as dst:
        size = os.fstat(src.fileno()).st_size
        position = 0
        while position < size:
            try:
                start = os.lseek(src.fileno(), position, os.SEEK_DATA)
            except OSError as exc:
                if exc.errno == errno.ENXIO:  # only a hole is left
                    break
                raise
            end = os.lseek(src.fileno(), start, os.SEEK_HOLE)
            while start < end:
                chunk = os.pread(src.fileno(), min(_CHUNK, end - start), start)
                os.pwrite(dst.fileno(), chunk, start)
                start += len(chunk)
            position = end
        dst.truncate(size)
        dst.flush()
        os.fsync(dst.fileno())
    stat = os.stat(source)
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def _room(path: str) -> int:
    """Bytes an unprivileged writer may still use on the filesystem holding ``path``."""
    stat = os.statvfs(path)
    return stat.f_bavail * stat.f_frsize


def _existing_parent(path: str) -> str:
    while not os.path.isdir(path):
        path = os.path.dirname(path)
    return path


def room_problem(move: Move, caches: Sequence[CacheDir]) -> str:
    """Why the target's disk cannot take ``move``'s file (data and metadata), or ''.

    A move within one filesystem is a rename and needs no room.
    """
    source, target = caches[move.source], caches[move.target]
    landing = _existing_parent(target.data(move.relative))
    need = 0
    for path in (source.data(move.relative), source.meta(move.relative)):
        with contextlib.suppress(FileNotFoundError):
            stat = os.lstat(path)
            if stat.st_dev != os.stat(landing).st_dev:  # else a rename: no room needed
                need += stat.st_blocks * 512
    if not need:
        return ""
    room = _room(landing)
    if need + _ROOM_MARGIN <= room:
        return ""
    return (
        f"not enough room in {target.path} (shard {move.target}) for {move.relative}: it "
        f"needs {need + _ROOM_MARGIN} bytes, {room} are free"
    )


def _full(exc: OSError) -> bool:
    return exc.errno in (errno.ENOSPC, errno.EDQUOT)


def transfer(source: str, target: str) -> None:
    """Move one file: a rename on one filesystem, else a sparse copy renamed into place.

    A copy that fails (a full disk) leaves nothing at ``target``: the source stays whole.
    """
    os.makedirs(os.path.dirname(target), exist_ok=True)
    if os.stat(source).st_dev == os.stat(os.path.dirname(target)).st_dev:
        os.rename(source, target)
        return
    partial = target + _TMP_SUFFIX
    with contextlib.suppress(FileNotFoundError):
        os.unlink(partial)  # left by a kill: this move's, made again from the start
    try:
        copy_sparse(source, partial)
    except OSError:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(partial)
        raise
    os.rename(partial, target)
    os.unlink(source)


def remove_emptied(path: str, root: str) -> None:
    """Remove the folders above ``path`` that are now empty, up to (not) ``root``.

    ``rmdir`` removes only an empty folder, so one that still holds anything stays, and
    so do all above it.
    """
    folder = os.path.dirname(path)
    while folder.startswith(root.rstrip("/") + "/"):
        try:
            os.rmdir(folder)
        except OSError:
            return
        folder = os.path.dirname(folder)


def move_cached(move: Move, caches: Sequence[CacheDir]) -> None:
    """Move a file's data, then its metadata; again after a kill, it finishes the move.

    The folders the move emptied in the old cache go too.
    """
    source, target = caches[move.source], caches[move.target]
    for source_path, target_path, root in (
        (source.data(move.relative), target.data(move.relative), source.data("")),
        (source.meta(move.relative), target.meta(move.relative), source.meta("")),
    ):
        if os.path.exists(source_path):
            transfer(source_path, target_path)
        remove_emptied(source_path, root)


def reshard_caches(
    old: ShardMap,
    new: ShardMap,
    caches: Sequence[CacheDir],
    *,
    dry_run: bool = False,
    journal_path: Path | None = None,
    out: TextIO | None = None,
    progress: bool = True,
    rc_urls: Mapping[int, str] | None = None,
) -> tuple[ReshardPlan, ReshardReport]:
    """Plan, print the plan, and unless ``dry_run`` move every cached file to its new owner.

    ``rc_urls`` (shard -> RC URL, from the config files' ``shard_rc``) are asked whether
    their rclone runs, besides looking for local rclone processes using the caches.
    """
    rc_urls = rc_urls or {}
    cached = [item for shard, cache in enumerate(caches) for item in scan_cache(shard, cache)]
    plan = plan_reshard(old, new, cached)
    print(plan.describe(old, new), file=out or sys.stdout)
    report = ReshardReport()
    journal_path = journal_path or Path(caches[0].path) / JOURNAL_NAME
    previous = _read_journal(journal_path)
    if previous.key is not None and previous.key != journal_key(old, new, caches):
        if previous.unfinished:
            raise ReshardError(
                f"{journal_path}: an interrupted reshard with other maps or cache dirs is not "
                "finished: run it again with the same --from, --to and --cache-dirs first"
            )
        previous.unfinished = []
    if dry_run:
        return plan, report
    affected = plan.affected_shards() | {m.source for m in previous.unfinished}
    users = processes_using([caches[s].path for s in affected])
    busy = users.found + rclones_answering([rc_urls[s] for s in sorted(affected) if s in rc_urls])
    if busy:
        raise ReshardError(
            "a process is using a cache that would change (an rclone, or a program with files "
            "there open); stop it first (a running rclone would not see the moved files, or "
            "delete them):\n  " + "\n  ".join(busy)
        )
    if users.unreadable:
        hint = "" if os.geteuid() == 0 else "; run as root to see whether any of them uses a cache"
        print(
            f"note: the environment or open files of {users.unreadable} processes could not be "
            f"read{hint}",
            file=sys.stderr,
        )
    try:
        # Appended to, never truncated: a kill at any moment leaves the move on record.
        with open_journal(journal_path) as journal:
            journal.write(encode_start(old, new, caches))
            _move_all(
                plan, previous.unfinished, caches, journal=journal, report=report, progress=progress
            )
    except ReshardError as exc:
        raise ReshardError(f"{exc}\n{_stopped(report)}") from None
    except OSError as exc:
        what = "the disk is full" if _full(exc) else "a file could not be moved"
        raise ReshardError(
            f"{what}: {exc}; nothing of the file being moved was left half-written\n"
            + _stopped(report)
        ) from None
    return plan, report


def _stopped(report: ReshardReport) -> str:
    return (
        f"reshard stopped after moving {report.moved + report.resumed} files. Fix that, then "
        "run the same command again before starting the rclones: it finishes the "
        "interrupted move and the rest."
    )


def _move_all(
    plan: ReshardPlan,
    unfinished: Sequence[Move],
    caches: Sequence[CacheDir],
    *,
    journal: TextIO,
    report: ReshardReport,
    progress: bool,
) -> None:
    """Finish the journal's unfinished moves, then make the plan's, each journaled."""
    resumed = {move.relative for move in unfinished}
    for move in unfinished:
        _journaled(journal, move, caches)
        report.resumed += 1
    bar = tqdm(
        plan.moves, desc="reshard", unit="file", file=sys.stderr, disable=not progress or None
    )
    for move in bar:
        if move.relative in resumed:
            continue
        if os.path.lexists(caches[move.target].data(move.relative)):
            report.conflicts += 1  # the new owner has its own copy: leave both alone
            continue
        problem = room_problem(move, caches)
        if problem:
            raise ReshardError(problem)
        _journaled(journal, move, caches)
        report.moved += 1


def _journaled(journal: TextIO, move: Move, caches: Sequence[CacheDir]) -> None:
    journal.write(encode_move(move, done=False))
    journal.flush()
    os.fsync(journal.fileno())
    move_cached(move, caches)
    journal.write(encode_move(move, done=True))
    journal.flush()


def _read_journal(path: Path) -> ReshardJournal:
    try:
        text = read_plain(str(path), shown=f"journal {path}") or ""
    except UnsafeFileError as exc:
        raise ReshardError(str(exc)) from None
    try:
        return decode_reshard_journal(text, str(path))
    except (ValueError, KeyError, TypeError) as exc:
        raise ReshardError(f"journal {path} cannot be read ({exc})") from None


def open_journal(path: Path) -> TextIO:
    """The journal, to append to; never through a link."""
    try:
        return append_plain(str(path), shown=f"journal {path}")
    except UnsafeFileError as exc:
        raise ReshardError(str(exc)) from None
