"""``shardproxy relink``: walk a library and apply relink's plan to every symlink.

Everything happens through directory descriptors: the library is opened once, and each
folder below it is opened from its parent with ``O_NOFOLLOW``, one name at a time. A
folder swapped for a link (after the walk, or during it) is therefore never entered, and
a link is never followed out of the library. Each change is atomic: the new link is made
beside the old one, under a temporary name that fits NAME_MAX, and renamed over it, so a
player never sees a missing file. A journal, appended to by every run and opened without
following a link, records each change before the rename: an interrupted run resumes
(run it again), ``--undo`` restores exactly the targets it recorded, and a resumed run
removes the temporary links a kill left behind.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from stat import S_ISLNK

from tqdm import tqdm

from shardproxy.core.shards import ShardMap
from shardproxy.tools.nofollow import UnsafeFileError, open_plain, read_plain
from shardproxy.tools.relink.plan import (
    NOT_RELINKS,
    TMP_SUFFIX,
    JournalEntry,
    JournalHeader,
    JournalState,
    LinkPlan,
    Outcome,
    decode_journal,
    encode_entry,
    encode_finished,
    encode_header,
    legacy_temporary_name,
    plan_link,
    plan_undo,
    resume_problem,
    temporary_name,
)

JOURNAL_NAME = ".shardproxy-relink.journal"
PROGRESS_FROM = 1000  # links; below this a run is over before a bar says anything
_SYNC_EVERY = 1000
_EXAMPLES = 5
_TRIES = 8  # temporary names tried before a link is given up
# Errors that every further link would meet too: the run stops instead of skipping each.
_STOPPING = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)
_FOLDER = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class RelinkError(RuntimeError):
    """The run cannot start; the message says why and what to do."""


@dataclass
class RelinkReport:
    """Counts per outcome, a few examples of the odd ones, and what a resumed run did."""

    counts: Counter[Outcome] = field(default_factory=Counter)
    examples: dict[Outcome, list[str]] = field(default_factory=dict)
    resumed: bool = False  # an interrupted run with the same settings went on
    resumed_entries: int = 0  # links it had changed
    dry_run: bool = False
    not_relinks: int = 0  # --undo: shard-view links the journal does not know
    problems: list[str] = field(default_factory=list)  # journal lines, folders not entered

    def summary(self) -> str:
        """Several lines for the terminal."""
        verb = "would change" if self.dry_run else "changed"
        total = sum(self.counts.values())
        lines = [
            f"{total} links: {self.counts[Outcome.CHANGE]} {verb}, "
            f"{self.counts[Outcome.RIGHT]} already right, {self.counts[Outcome.SKIP]} skipped, "
            f"{self.counts[Outcome.BROKEN]} broken"
        ]
        if self.resumed:
            lines.append(f"resumed an interrupted run that had changed {self.resumed_entries}")
        if self.not_relinks:
            lines.append(
                f"{self.not_relinks} links in shard views were not put there by relink (there "
                "before its first run, or imported that way) and were left; --undo --all "
                "points them at .ids too"
            )
        for outcome, examples in self.examples.items():
            lines.append(f"{outcome.value}, e.g.:")
            lines.extend(f"  {example}" for example in examples)
        if self.problems:
            lines.append(f"{len(self.problems)} problems, e.g.:")
            lines.extend(f"  {problem}" for problem in self.problems[:_EXAMPLES])
        return "\n".join(lines)


def open_folder(root: int, relative: str) -> int:
    """A descriptor of the folder ``relative`` below ``root``, never through a link.

    Raises OSError (ELOOP, ENOTDIR) when any part of it is no longer a folder.
    """
    fd = os.dup(root)
    for part in relative.split("/") if relative else []:
        try:
            child = os.open(part, _FOLDER, dir_fd=fd)
        finally:
            os.close(fd)
        fd = child
    return fd


def find_links(root: int, problems: list[str]) -> Iterator[str]:
    """Every symlink below the folder ``root``, as a path relative to it.

    No link is followed, and each folder is opened from its parent (``open_folder``): a
    folder that cannot be entered is named in ``problems`` and its links left alone.
    """
    pending = [""]
    while pending:
        relative = pending.pop()
        try:
            fd = open_folder(root, relative)
        except OSError as exc:
            problems.append(f"folder {relative}: not entered ({exc.strerror}); its links left")
            continue
        try:
            with os.scandir(fd) as entries:
                listed = [
                    (e.name, e.is_symlink(), e.is_dir(follow_symlinks=False)) for e in entries
                ]
        finally:
            os.close(fd)
        for name, is_link, is_folder in listed:
            path = f"{relative}/{name}" if relative else name
            if is_link:
                yield path
            elif is_folder:
                pending.append(path)


class _Folders:
    """The folder of the link at hand, kept open while the next link is in it too."""

    def __init__(self, root: int) -> None:
        self.root = root
        self.relative: str | None = None
        self.fd = -1

    def open(self, relative: str) -> int:
        if relative != self.relative:
            self.close()
            self.fd = open_folder(self.root, relative)
            self.relative = relative
        return self.fd

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
        self.fd, self.relative = -1, None


class _Journal:
    """The journal file: appended to by every run, never truncated, never through a link.

    Each line is one ``write`` to the descriptor, done before the rename it announces,
    so a kill after it loses nothing. A journal that cannot be written (a full disk)
    stops the run before another link changes.
    """

    def __init__(self, fd: int, shown: str, header: JournalHeader) -> None:
        self._fd, self._shown = fd, shown
        self._unsynced = 0
        self._write(encode_header(header))
        self.sync()

    def _write(self, line: str) -> None:
        data = line.encode("utf-8", "surrogateescape")
        try:
            while data:
                data = data[os.write(self._fd, data) :]
        except OSError as exc:
            raise RelinkError(
                f"cannot write {self._shown} ({exc.strerror}); the run stopped before changing "
                "another link. Make room, then run the same command again: it resumes"
            ) from None

    def record(self, entry: JournalEntry) -> None:
        self._write(encode_entry(entry))
        self._unsynced += 1
        if self._unsynced >= _SYNC_EVERY:
            self.sync()

    def sync(self) -> None:
        try:
            os.fsync(self._fd)
        except OSError as exc:
            raise RelinkError(f"cannot write {self._shown} ({exc.strerror})") from None
        self._unsynced = 0

    def finish(self, counts: Counter[Outcome]) -> None:
        self._write(encode_finished({o.value: counts[o] for o in Outcome}))
        self.sync()

    def close(self) -> None:
        os.close(self._fd)


@dataclass(frozen=True)
class _JournalFile:
    """Where the journal is: a name in the library (its descriptor) or a path given."""

    name: str
    dir_fd: int | None
    shown: str

    def read(self) -> JournalState:
        """The journal's state; an empty one when there is none."""
        try:
            text = read_plain(self.name, dir_fd=self.dir_fd, shown=self.shown)
            return decode_journal(text or "", self.shown)
        except (UnsafeFileError, ValueError) as exc:
            raise RelinkError(f"{exc}; move the journal away to start over") from None
        except OSError as exc:
            raise RelinkError(f"cannot read {self.shown} ({exc.strerror})") from None

    def append(self) -> int:
        """The journal's descriptor to append to, a line cut short by a kill removed first."""
        try:
            flags = os.O_RDWR | os.O_APPEND | os.O_CREAT
            fd = open_plain(self.name, flags, dir_fd=self.dir_fd, shown=self.shown)
        except UnsafeFileError as exc:
            raise RelinkError(str(exc)) from None
        except OSError as exc:
            raise RelinkError(
                f"cannot write {self.shown} ({exc.strerror}): give --journal FILE in a folder "
                "that can be written"
            ) from None
        size = os.fstat(fd).st_size
        if size:
            tail = os.pread(fd, min(size, 1 << 16), max(0, size - (1 << 16)))
            if not tail.endswith(b"\n"):
                cut = tail.rfind(b"\n")
                os.ftruncate(fd, size - len(tail) + cut + 1 if cut >= 0 else 0)
        return fd


def _open_library(library: Path) -> int:
    try:
        return os.open(library, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise RelinkError(f"library {library} does not exist") from None
    except NotADirectoryError:
        raise RelinkError(f"library {library} is not a directory") from None
    except OSError as exc:
        raise RelinkError(f"library {library} cannot be opened: {exc.strerror}") from None


def relink_library(
    library: Path,
    mount: str,
    shard_map: ShardMap,
    *,
    undo: bool = False,
    every: bool = False,
    dry_run: bool = False,
    journal_path: Path | None = None,
    progress: bool = True,
) -> RelinkReport:
    """Relink (or with ``undo`` unlink from the shard views) every link under ``library``.

    ``every`` (``--all``, with ``undo``) also points at ``.ids`` the shard-view links the
    journal does not know.
    """
    root = _open_library(library)
    try:
        journal_file = (
            _JournalFile(str(journal_path), None, f"journal {journal_path}")
            if journal_path
            else _JournalFile(JOURNAL_NAME, root, f"journal {library / JOURNAL_NAME}")
        )
        job = _Job(mount, shard_map, undo=undo, every=every, dry_run=dry_run, progress=progress)
        return _relink(root, job, journal_file)
    finally:
        os.close(root)


@dataclass(frozen=True)
class _Job:
    """What a run was asked to do."""

    mount: str
    shard_map: ShardMap
    undo: bool
    every: bool
    dry_run: bool
    progress: bool


def _relink(root: int, job: _Job, journal_file: _JournalFile) -> RelinkReport:
    mount, shard_map, undo = job.mount, job.shard_map, job.undo
    header = JournalHeader(mount, undo, shard_map.owner_of_char)
    previous = journal_file.read()
    problem = resume_problem(previous, header)
    if problem:
        raise RelinkError(f"{journal_file.shown}: {problem}")
    report = RelinkReport(dry_run=job.dry_run)
    report.problems += [f"{journal_file.shown}: {p}" for p in previous.problems]
    resuming = not previous.finished and previous.header == header
    pending = {entry.link for entry in previous.pending} if resuming else set()
    report.resumed = resuming
    if not job.dry_run:
        _remove_temporary_links(root, previous.pending, report.problems)
    links = list(find_links(root, report.problems))
    journal = None
    if not job.dry_run:
        journal = _Journal(journal_file.append(), journal_file.shown, header)
    folders = _Folders(root)
    bar = tqdm(
        links,
        desc="relink",
        unit="link",
        file=sys.stderr,
        disable=not job.progress or len(links) < PROGRESS_FROM or None,
    )
    try:
        for relative in bar:
            folder, _, name = relative.rpartition("/")
            try:
                fd = folders.open(folder)
            except OSError as exc:
                _count(report, Outcome.SKIP, f"{relative}: {_folder_gone(folder, exc)}")
                continue
            try:
                target = os.readlink(name, dir_fd=fd)
            except OSError as exc:
                _count(report, Outcome.SKIP, f"{relative}: {exc.strerror} since the walk")
                continue
            if name.endswith(TMP_SUFFIX):
                _count(report, Outcome.SKIP, f"{relative}: named like relink's temporary links")
                continue
            if undo:
                plan = plan_undo(
                    target, previous.links.get(relative), mount, shard_map, every=job.every
                )
                report.not_relinks += plan.reason == NOT_RELINKS
            else:
                plan = plan_link(target, mount, shard_map, undo=False)
            if plan.outcome is Outcome.RIGHT and relative in pending:
                report.resumed_entries += 1
            if plan.outcome is Outcome.CHANGE and journal is not None:
                plan = _replace(fd, name, JournalEntry(relative, target, plan.new_target), journal)
            _count(report, plan.outcome, f"{relative} -> {target}: {plan.reason}")
        if journal is not None:
            journal.finish(report.counts)
    finally:
        folders.close()
        if journal is not None:
            journal.close()
    return report


def _folder_gone(folder: str, exc: OSError) -> str:
    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
        return f"folder {folder} was replaced by a link or a file since the walk: left alone"
    return f"folder {folder}: {exc.strerror} since the walk"


def _replace(fd: int, name: str, entry: JournalEntry, journal: _Journal) -> LinkPlan:
    """Point the link ``name`` in folder ``fd`` at ``entry.new``: a new link renamed over it."""
    for _ in range(_TRIES):
        tmp = temporary_name(name, secrets.token_hex(4))
        journal.record(JournalEntry(entry.link, entry.old, entry.new, tmp))
        try:
            os.symlink(entry.new, tmp, dir_fd=fd)
            break
        except FileExistsError:
            continue  # a name someone else made: never touched, another one tried
        except OSError as exc:
            if exc.errno in _STOPPING:
                raise RelinkError(
                    f"cannot make a link in the library ({exc.strerror}); the run stopped. "
                    "Make room, then run the same command again: it resumes"
                ) from None
            return LinkPlan(Outcome.SKIP, reason=f"cannot make a link here: {exc.strerror}")
    else:
        return LinkPlan(Outcome.SKIP, reason="every temporary name tried was taken")
    try:
        os.rename(tmp, name, src_dir_fd=fd, dst_dir_fd=fd)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=fd)
        return LinkPlan(Outcome.SKIP, reason=f"cannot replace it: {exc.strerror}")
    return LinkPlan(Outcome.CHANGE, new_target=entry.new)


def _remove_temporary_links(root: int, entries: list[JournalEntry], problems: list[str]) -> None:
    """Remove the temporary links an interrupted run may have left: only relink's own.

    A name is removed only while it is a link to the target the journal recorded for it.
    """
    for entry in entries:
        folder, _, name = entry.link.rpartition("/")
        tmp = entry.tmp or legacy_temporary_name(name)
        if tmp is None:
            continue  # too long to have been made
        try:
            fd = open_folder(root, folder)
        except OSError:
            continue  # the folder is gone, or no longer a folder: nothing of ours there
        try:
            if (
                S_ISLNK(os.lstat(tmp, dir_fd=fd).st_mode)
                and os.readlink(tmp, dir_fd=fd) == entry.new
            ):
                os.unlink(tmp, dir_fd=fd)
        except FileNotFoundError:
            pass
        except OSError as exc:
            problems.append(f"{folder or '.'}/{tmp}: not removed ({exc.strerror})")
        finally:
            os.close(fd)


def _count(report: RelinkReport, outcome: Outcome, example: str) -> None:
    report.counts[outcome] += 1
    if outcome in (Outcome.SKIP, Outcome.BROKEN):
        examples = report.examples.setdefault(outcome, [])
        if len(examples) < _EXAMPLES:
            examples.append(example)
