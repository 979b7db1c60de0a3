"""The durable RC queue file: what is written comes back, ages carried over a restart."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from shardproxy.rc.calls import FORGET, REFRESH
from shardproxy.rc.pending import Pending, PendingChanges
from shardproxy.rc.store import PendingStore, PendingStoreError
from shardproxy.rc.targets import Delivery, Target

S0, S2, F0 = Target("shard", 0), Target("shard", 2), Target("fallback", 0)


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
