"""The durable RC queue file: what is written comes back, ages carried over a restart."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest

from shardproxy.rc.calls import FORGET, REFRESH
from shardproxy.rc.pending import Pending, PendingChanges
from shardproxy.rc.store import PendingStore, PendingStoreError
from shardproxy.rc.targets import Delivery, Target

S0, S2, F0 = Target("shard", 0), Target("shard", 2), Target("fallback", 0)
# The table as a store written before auto-vacuum was set had it.
STORE_SCHEMA = (
    "CREATE TABLE pending (target TEXT NOT NULL, command TEXT NOT NULL, kind TEXT NOT NULL, "
    "key_path TEXT NOT NULL, path TEXT NOT NULL, recursive INTEGER NOT NULL, since REAL NOT "
    "NULL, PRIMARY KEY (target, command, kind, key_path))"
)


class Clocks:
    """A monotonic and a wall clock that move together, like a process's."""

    def __init__(self, mono: float, wall: float) -> None:
        self.mono, self.wall = mono, wall

    def store(self, path: Path) -> PendingStore:
        return PendingStore(path, clock=lambda: self.mono, wall=lambda: self.wall)


def test_kept_deliveries_come_back_with_their_age(tmp_path: Path) -> None:
    before = Clocks(mono=100.0, wall=1_000_000.0)
    store = before.store(tmp_path / "q.sqlite3")
    forget = Delivery(S2, FORGET, "dir", "9/6/1/b/0")
    refresh = Delivery(F0, REFRESH, "dir", "content/tv", recursive=True)
    store.apply(PendingChanges(kept=(Pending(forget, 90.0), Pending(refresh, 95.0))))
    store.close()
    # A new process: its monotonic clock starts elsewhere, 30 s of wall time later.
    after = Clocks(mono=5.0, wall=1_000_030.0)
    loaded = after.store(tmp_path / "q.sqlite3").load(frozenset({S2, F0}))
    assert loaded == [Pending(forget, 5.0 - 40.0), Pending(refresh, 5.0 - 35.0)]


def test_settled_deliveries_are_gone(tmp_path: Path) -> None:
    clocks = Clocks(0.0, 0.0)
    store = clocks.store(tmp_path / "q.sqlite3")
    kept = Delivery(S2, FORGET, "dir", "9/6")
    settled = Delivery(S2, FORGET, "dir", "9/7")
    store.apply(PendingChanges(kept=(Pending(kept, 0.0), Pending(settled, 0.0))))
    store.apply(PendingChanges(settled=(settled.key,)))
    assert [p.delivery for p in store.load(frozenset({S2}))] == [kept]


def test_deliveries_for_an_rclone_no_longer_configured_are_dropped_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = Clocks(0.0, 0.0).store(tmp_path / "q.sqlite3")
    gone = Delivery(S0, FORGET, "dir", "0/1")
    store.apply(PendingChanges(kept=(Pending(gone, 0.0),)))
    with caplog.at_level(logging.ERROR, "shardproxy.rc"):
        assert store.load(frozenset({S2})) == []
    assert "dropped 1 saved RC path(s) for shard0" in caplog.text
    assert store.load(frozenset({S0})) == []


def test_an_unusable_file_is_an_error_naming_the_setting(tmp_path: Path) -> None:
    (tmp_path / "not-a-db").write_text("hello, this is no SQLite file at all" * 100)
    with pytest.raises(PendingStoreError, match="rc_pending_file"):
        PendingStore(tmp_path / "not-a-db")


def fill(store: PendingStore, count: int, size: int) -> list[Delivery]:
    kept = [Delivery(S2, FORGET, "dir", f"{n:06d}" + "x" * size) for n in range(count)]
    store.apply(PendingChanges(kept=tuple(Pending(d, 0.0) for d in kept)))
    return kept


def test_the_file_gives_back_the_space_of_settled_deliveries(tmp_path: Path) -> None:
    path = tmp_path / "q.sqlite3"
    store = Clocks(0.0, 0.0).store(path)
    kept = fill(store, 2000, 2000)
    store.close()
    full = path.stat().st_size
    store = Clocks(0.0, 0.0).store(path)
    store.apply(PendingChanges(settled=tuple(d.key for d in kept)))
    store.close()
    assert full > 8 << 20
    assert path.stat().st_size < full // 8


def test_a_file_written_without_auto_vacuum_is_converted_and_shrinks(tmp_path: Path) -> None:
    path = tmp_path / "q.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute(STORE_SCHEMA)
    store = Clocks(0.0, 0.0).store(path)
    kept = fill(store, 1000, 2000)
    store.apply(PendingChanges(settled=tuple(d.key for d in kept)))
    store.close()
    assert path.stat().st_size < 1 << 20


def damage(path: Path) -> None:
    """Overwrite the middle of an SQLite file with garbage."""
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 8192] = b"\xa5" * 8192
    path.write_bytes(bytes(data))


def test_a_damaged_file_is_refused_naming_it_and_how_to_move_it_aside(tmp_path: Path) -> None:
    path = tmp_path / "q.sqlite3"
    store = Clocks(0.0, 0.0).store(path)
    fill(store, 500, 200)
    store.close()
    damage(path)
    with pytest.raises(PendingStoreError) as refused:
        PendingStore(path).load(frozenset({S2}))
    message = str(refused.value)
    assert f"{path} (rc_pending_file) is damaged" in message
    assert f"mv {path} {path}.damaged" in message


def test_another_programs_database_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE users (name TEXT)")
    before = path.read_bytes()
    with pytest.raises(PendingStoreError, match=r"holds tables shardproxy did not make \(users\)"):
        PendingStore(path)
    assert path.read_bytes() == before


def test_a_pending_table_of_other_columns_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "q.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE pending (path TEXT)")
    with pytest.raises(PendingStoreError, match="has a pending table with the columns path"):
        PendingStore(path)


def test_rows_that_cannot_be_read_are_dropped_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "q.sqlite3"
    store = Clocks(0.0, 0.0).store(path)
    good = Delivery(S2, FORGET, "dir", "9/6")
    store.apply(PendingChanges(kept=(Pending(good, 0.0),)))
    store.close()
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO pending VALUES ('shard2', 'vfs/forget', 'dir', 'a', 'a', 0, 'x')")
        db.execute("INSERT INTO pending VALUES ('shard2', 'core/quit', 'dir', 'b', 'b', 0, 1)")
    with caplog.at_level(logging.ERROR, "shardproxy.rc"):
        loaded = Clocks(0.0, 0.0).store(path).load(frozenset({S2}))
    assert [p.delivery for p in loaded] == [good]
    assert "time 'x' is not a number" in caplog.text
    assert "command 'core/quit' is neither vfs/forget nor vfs/refresh" in caplog.text
    assert [p.delivery for p in Clocks(0.0, 0.0).store(path).load(frozenset({S2}))] == [good]
