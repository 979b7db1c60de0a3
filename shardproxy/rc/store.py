"""The durable copy of the RC retry queue: one SQLite file (the standard library's).

NzbDav ignores the reply to a forget, so a forget lost in a restart means a file that
never shows up in the mount. Every change of the queue is written here before the
caller hears "will retry", and a new run reloads what is left. Calls block: the RC
listener runs them on one thread of their own, which also keeps them in order.

The file gives back what it no longer needs (incremental auto-vacuum, a bounded WAL).
A file that is not SQLite, is damaged, or belongs to another program is refused at
start with one message naming it and what to do; a row that cannot be read is dropped
and logged, never passed on.
"""

from __future__ import annotations

import contextlib
import logging
import math
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from shardproxy.rc.calls import FORGET, REFRESH
from shardproxy.rc.pending import Pending, PendingChanges
from shardproxy.rc.targets import Delivery, Target

log = logging.getLogger("shardproxy.rc")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS pending (
    target TEXT NOT NULL,
    command TEXT NOT NULL,
    kind TEXT NOT NULL,
    key_path TEXT NOT NULL,
    path TEXT NOT NULL,
    recursive INTEGER NOT NULL,
    since REAL NOT NULL,
    PRIMARY KEY (target, command, kind, key_path)
)
"""
_COLUMNS = ("target", "command", "kind", "key_path", "path", "recursive", "since")
# The table and the index of its primary key are all a store of ours holds.
_OURS = frozenset({"pending", "sqlite_autoindex_pending_1"})
_UPSERT = "INSERT OR REPLACE INTO pending VALUES (?, ?, ?, ?, ?, ?, ?)"
_DELETE = "DELETE FROM pending WHERE target = ? AND command = ? AND kind = ? AND key_path = ?"
_KINDS = frozenset({"dir", "file", "all"})
_COMMANDS = frozenset({FORGET, REFRESH})
# Free pages (of 4 KiB) at which the file is shrunk after a write.
VACUUM_FREE_PAGES = 256
# Bytes the write-ahead log is cut back to after a checkpoint.
WAL_LIMIT_BYTES = 4 << 20


class PendingStoreError(Exception):
    """The store file cannot be opened or is not ours; the message says which file."""


class PendingStore:
    """Pending RC deliveries in a SQLite file; ages are kept in wall-clock time."""

    def __init__(
        self,
        path: Path,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self._clock = clock
        self._wall = wall
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # One thread uses it at a time (the listener's own executor), not always the
            # one that opened it.
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        except (OSError, sqlite3.Error) as exc:
            raise self._unusable(exc) from None
        try:
            self._check_and_prepare()
        except sqlite3.Error as exc:
            self._db.close()
            raise self._unusable(exc) from None
        except PendingStoreError:
            self._db.close()
            raise

    def _check_and_prepare(self) -> None:
        """Refuse a file that is damaged or not ours; set the file up to give space back."""
        db = self._db
        problems = [row[0] for row in db.execute("PRAGMA quick_check")]
        if problems != ["ok"]:
            raise PendingStoreError(self._damaged("; ".join(map(str, problems[:3]))))
        names = {name for (name,) in db.execute("SELECT name FROM sqlite_master")}
        if names - _OURS:
            raise PendingStoreError(
                f"{self.path} (rc_pending_file) holds tables shardproxy did not make "
                f"({', '.join(sorted(names - _OURS))}): it is another program's database. "
                "Point rc_pending_file at a file of its own"
            )
        if "pending" in names:
            columns = tuple(row[1] for row in db.execute("PRAGMA table_info(pending)"))
            if columns != _COLUMNS:
                raise PendingStoreError(
                    f"{self.path} (rc_pending_file) has a pending table with the columns "
                    f"{', '.join(columns)}, not shardproxy's ({', '.join(_COLUMNS)}). "
                    f"Move it aside (mv {self.path} {self.path}.old) and start again; the "
                    "paths it held are not delivered"
                )
        if db.execute("PRAGMA auto_vacuum").fetchone()[0] != 2:
            # Set before the table exists, or made to hold by one VACUUM of an old file.
            db.execute("PRAGMA auto_vacuum=INCREMENTAL")
            if names:
                db.execute("VACUUM")
        db.execute("PRAGMA journal_mode=WAL")
        # A power cut may lose the last commits, never corrupt the file; a crash of the
        # process loses nothing.
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute(f"PRAGMA journal_size_limit={WAL_LIMIT_BYTES}")
        db.execute(_SCHEMA)

    def _damaged(self, problem: str) -> str:
        return (
            f"{self.path} (rc_pending_file) is damaged (SQLite says: {problem}). Move it "
            f"aside (mv {self.path} {self.path}.damaged) and start again: a new queue is "
            "made, and the undelivered RC paths the old one held are not delivered"
        )

    def _unusable(self, exc: BaseException) -> PendingStoreError:
        """The one message for an error opening or reading the file: what and what to do."""
        text = str(exc)
        if "file is not a database" in text:
            return PendingStoreError(
                f"{self.path} (rc_pending_file) is not an SQLite file. If it is not "
                "shardproxy's, point rc_pending_file elsewhere; if it is, it is damaged: "
                f"move it aside (mv {self.path} {self.path}.damaged) and start again"
            )
        if "malformed" in text or "corrupt" in text:
            return PendingStoreError(self._damaged(text))
        if "locked" in text or "busy" in text:
            return PendingStoreError(
                f"{self.path} (rc_pending_file) is in use by another process ({text}): is "
                "another shardproxy running with the same rc_pending_file? Stop it, or give "
                "this one a file of its own"
            )
        return PendingStoreError(
            f"cannot use {self.path} for the RC retry queue (rc_pending_file): {text}; "
            "point rc_pending_file at a writable file"
        )

    def load(self, known: frozenset[Target]) -> list[Pending]:
        """The saved deliveries for rclones still configured, oldest first.

        Deliveries for an rclone no longer in the settings, and rows that cannot be read,
        are deleted with one log line per rclone or reason: nobody could ever take them.
        """
        try:
            return self._load(known)
        except sqlite3.Error as exc:
            raise self._unusable(exc) from None

    def _load(self, known: frozenset[Target]) -> list[Pending]:
        offset = self._wall() - self._clock()
        by_name = {t.name: t for t in known}
        found: list[Pending] = []
        orphans: dict[str, int] = {}
        unreadable: dict[str, tuple[int, tuple[Any, ...]]] = {}
        rows = self._db.execute(
            "SELECT rowid, target, command, kind, path, recursive, since FROM pending "
            "ORDER BY since"
        ).fetchall()
        bad_rows: list[int] = []
        for rowid, name, command, kind, path, recursive, since in rows:
            why = _unreadable(command, kind, path, recursive, since)
            if why is not None:
                count, example = unreadable.get(why, (0, (name, command, kind, path)))
                unreadable[why] = (count + 1, example)
                bad_rows.append(rowid)
                continue
            target = by_name.get(name)
            if target is None:
                orphans[name] = orphans.get(name, 0) + 1
                continue
            delivery = Delivery(target, command, kind, path, bool(recursive))
            found.append(Pending(delivery, float(since) - offset))
        for name, count in sorted(orphans.items(), key=lambda item: str(item[0])):
            log.error(
                "dropped %d saved RC path(s) for %s from %s: no such rclone in the settings "
                "any more (shard_rc, rc_fallback)",
                count,
                name,
                self.path,
            )
            self._db.execute("DELETE FROM pending WHERE target = ?", (name,))
        for why, (count, example) in sorted(unreadable.items()):
            log.error(
                "dropped %d saved RC row(s) from %s that cannot be read: %s, e.g. %r",
                count,
                self.path,
                why,
                example,
            )
        self._db.executemany("DELETE FROM pending WHERE rowid = ?", ((r,) for r in bad_rows))
        self._give_space_back()
        return found

    def apply(self, changes: PendingChanges) -> None:
        """Write one batch of changes in one transaction."""
        if not changes:
            return
        offset = self._wall() - self._clock()
        with self._transaction():
            self._db.executemany(
                _UPSERT,
                (
                    (
                        *_key_row(p.delivery.key),
                        p.delivery.path,
                        int(p.delivery.recursive),
                        p.since + offset,
                    )
                    for p in changes.kept
                ),
            )
            self._db.executemany(_DELETE, (_key_row(key) for key in changes.settled))
        self._give_space_back()

    def _give_space_back(self) -> None:
        """Shrink the file once enough of it is free (settled deliveries leave pages)."""
        free = self._db.execute("PRAGMA freelist_count").fetchone()[0]
        if free >= VACUUM_FREE_PAGES:
            # As a script: a plain execute steps it once, which frees a single page.
            self._db.executescript("PRAGMA incremental_vacuum;")

    def close(self) -> None:
        """Close the file."""
        self._db.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")


def _unreadable(command: Any, kind: Any, path: Any, recursive: Any, since: Any) -> str | None:
    """Why a saved row cannot be a delivery, or None when it can."""
    if command not in _COMMANDS:
        return f"command {command!r} is neither {FORGET} nor {REFRESH}"
    if kind not in _KINDS:
        return f"kind {kind!r} is not one of {', '.join(sorted(_KINDS))}"
    if not isinstance(path, str):
        return f"path {path!r} is not text"
    if recursive not in (0, 1) or isinstance(recursive, float):
        return f"recursive {recursive!r} is not 0 or 1"
    if not isinstance(since, int | float) or math.isnan(since) or isinstance(since, bool):
        return f"time {since!r} is not a number"
    return None


def _key_row(key: tuple[Target, str, str, str]) -> tuple[str, str, str, str]:
    target, command, kind, key_path = key
    return (target.name, command, kind, key_path)
