"""``shardproxy relink``: walk a library and apply relink's plan to every symlink.

The walk never follows a link (a link to a folder outside the library is a link like
any other, never a way out of it). Each change is atomic: the new link is made beside
the old one and renamed over it, so a player never sees a missing file. A journal,
written before each rename, lets an interrupted run resume (run it again) or be undone
(``--undo``), and names the temporary links a kill may have left behind.
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from tqdm import tqdm

from shardproxy.core.shards import ShardMap
from shardproxy.tools.relink.plan import (
    JournalEntry,
    JournalHeader,
    JournalState,
    Outcome,
    decode_journal,
    encode_entry,
    encode_finished,
    encode_header,
    plan_link,
    resume_problem,
)

TMP_SUFFIX = ".shardproxy-relink"
JOURNAL_NAME = ".shardproxy-relink.journal"
PROGRESS_FROM = 1000  # links; below this a run is over before a bar says anything
_SYNC_EVERY = 1000
_EXAMPLES = 5


class RelinkError(RuntimeError):
    """The run cannot start; the message says why and what to do."""


@dataclass
class RelinkReport:
    """Counts per outcome, a few examples of the odd ones, and what a resumed run did."""

    counts: Counter[Outcome] = field(default_factory=Counter)
    examples: dict[Outcome, list[str]] = field(default_factory=dict)
    resumed_entries: int = 0
    dry_run: bool = False

    def summary(self) -> str:
        """Several lines for the terminal."""
        verb = "would change" if self.dry_run else "changed"
        total = sum(self.counts.values())
        lines = [
            f"{total} links: {self.counts[Outcome.CHANGE]} {verb}, "
            f"{self.counts[Outcome.RIGHT]} already right, {self.counts[Outcome.SKIP]} skipped, "
            f"{self.counts[Outcome.BROKEN]} broken"
        ]
        if self.resumed_entries:
            lines.append(f"resumed an interrupted run that had changed {self.resumed_entries}")
        for outcome, examples in self.examples.items():
            lines.append(f"{outcome.value}, e.g.:")
            lines.extend(f"  {example}" for example in examples)
        return "\n".join(lines)


def find_links(library: Path) -> Iterator[str]:
    """Every symlink under ``library``, as a path relative to it; no link is followed."""
    pending = [""]
    while pending:
        relative = pending.pop()
        with os.scandir(library / relative if relative else library) as entries:
            for entry in entries:
                path = f"{relative}/{entry.name}" if relative else entry.name
                if entry.is_symlink():
                    yield path
                elif entry.is_dir(follow_symlinks=False):
                    pending.append(path)


def _remove_tmp_link(path: Path) -> None:
    """Remove a temporary link a killed run left, if it is still a link."""
    if path.is_symlink():
        path.unlink()


def _tmp_path(link: Path) -> Path:
    return link.with_name(f".{link.name}{TMP_SUFFIX}")


class _Journal:
    """The append-only journal file of one run."""

    def __init__(self, path: Path, header: JournalHeader) -> None:
        self.path = path
        self._stream: TextIO = path.open("w", encoding="utf-8")
        self._stream.write(encode_header(header))
        self._unsynced = 0
        self.sync()

    def record(self, entry: JournalEntry) -> None:
        # Written (to the kernel) before the rename: a kill after it loses nothing.
        self._stream.write(encode_entry(entry))
        self._stream.flush()
        self._unsynced += 1
        if self._unsynced >= _SYNC_EVERY:
            self.sync()

    def sync(self) -> None:
        self._stream.flush()
        os.fsync(self._stream.fileno())
        self._unsynced = 0

    def finish(self, counts: Counter[Outcome]) -> None:
        self._stream.write(encode_finished({o.value: counts[o] for o in Outcome}))
        self.sync()
        self._stream.close()


def read_journal(path: Path) -> JournalState:
    """The journal at ``path``, or an empty state when there is none."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return JournalState(entries=[], finished=True)
    try:
        return decode_journal(text, str(path))
    except (ValueError, KeyError, TypeError) as exc:
        raise RelinkError(
            f"journal {path} cannot be read ({exc}); delete it to start over"
        ) from None


def relink_library(
    library: Path,
    mount: str,
    shard_map: ShardMap,
    *,
    undo: bool = False,
    dry_run: bool = False,
    journal_path: Path | None = None,
    progress: bool = True,
) -> RelinkReport:
    """Relink (or with ``undo`` unlink from the shard views) every link under ``library``."""
    if not library.is_dir():
        raise RelinkError(f"library {library} is not a directory")
    journal_path = journal_path or library / JOURNAL_NAME
    header = JournalHeader(mount, undo, shard_map.owner_of_char)
    previous = read_journal(journal_path)
    problem = resume_problem(previous, header)
    if problem:
        raise RelinkError(f"{journal_path}: {problem}")
    report = RelinkReport(dry_run=dry_run)
    if not previous.finished and previous.header == header:
        report.resumed_entries = len(previous.entries or [])
    links = [link for link in find_links(library) if not link.endswith(TMP_SUFFIX)]
    if dry_run:
        journal = None
    else:
        for entry in previous.entries or []:
            _remove_tmp_link(_tmp_path(library / entry.link))
        journal = _Journal(journal_path, header)
    bar = tqdm(
        links,
        desc="relink",
        unit="link",
        file=sys.stderr,
        disable=not progress or len(links) < PROGRESS_FROM or None,
    )
    for relative in bar:
        path = library / relative
        try:
            target = os.readlink(path)
        except OSError as exc:  # gone since the walk: nothing to do
            _count(report, Outcome.SKIP, f"{relative}: {exc.strerror}")
            continue
        plan = plan_link(target, mount, shard_map, undo=undo)
        _count(report, plan.outcome, f"{relative} -> {target}: {plan.reason}")
        if plan.outcome is Outcome.CHANGE and journal is not None:
            journal.record(JournalEntry(relative, target, plan.new_target))
            tmp = _tmp_path(path)
            _remove_tmp_link(tmp)
            os.symlink(plan.new_target, tmp)
            os.rename(tmp, path)
    if journal is not None:
        journal.finish(report.counts)
    return report


def _count(report: RelinkReport, outcome: Outcome, example: str) -> None:
    report.counts[outcome] += 1
    if outcome in (Outcome.SKIP, Outcome.BROKEN):
        examples = report.examples.setdefault(outcome, [])
        if len(examples) < _EXAMPLES:
            examples.append(example)
