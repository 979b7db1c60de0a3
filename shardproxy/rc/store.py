"""The durable copy of the RC retry queue: one SQLite file (the standard library's).

NzbDav ignores the reply to a forget, so a forget lost in a restart means a file that
never shows up in the mount. Every change of the queue is written here before the
caller hears "will retry", and a new run reloads what is left. Calls block: the RC
listener runs them on one thread of their own, which also keeps them in order.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path

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
_UPSERT = "INSERT OR REPLACE INTO pending VALUES (?, ?, ?, ?, ?, ?, ?)"
_DELETE = "DELETE FROM pending WHERE target = ? AND command = ? AND kind = ? AND key_path = ?"
_KINDS = frozenset({"dir", "file", "all"})


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
            self._db.execute("PRAGMA journal_mode=WAL")
            # A power cut may lose the last commits, never corrupt the file; a crash of
            # the process loses nothing.
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise PendingStoreError(
                f"cannot use {path} for the RC retry queue (rc_pending_file): {exc}; "
                "point rc_pending_file at a writable file"
            ) from None

    def load(self, known: frozenset[Target]) -> list[Pending]:
        """The saved deliveries for rclones still configured, oldest first.

        Deliveries for an rclone no longer in the settings are deleted with one log line
        per rclone: nobody could ever take them.
        """
        offset = self._wall() - self._clock()
        by_name = {t.name: t for t in known}
        found: list[Pending] = []
        orphans: dict[str, int] = {}
        rows = self._db.execute(
            "SELECT target, command, kind, path, recursive, since FROM pending ORDER BY since"
        )
        for name, command, kind, path, recursive, since in rows:
            target = by_name.get(name)
            if target is None or kind not in _KINDS:
                orphans[name] = orphans.get(name, 0) + 1
                continue
            delivery = Delivery(target, command, kind, path, bool(recursive))
            found.append(Pending(delivery, since - offset))
        for name, count in sorted(orphans.items()):
            log.error(
                "dropped %d saved RC path(s) for %s from %s: no such rclone in the settings "
                "any more (shard_rc, rc_fallback)",
                count,
                name,
                self.path,
            )
            self._db.execute("DELETE FROM pending WHERE target = ?", (name,))
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


def _key_row(key: tuple[Target, str, str, str]) -> tuple[str, str, str, str]:
    target, command, kind, key_path = key
    return (target.name, command, kind, key_path)
