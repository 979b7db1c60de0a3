"""The RC retry queue's bookkeeping, fed values and a clock of its own (no I/O)."""

from __future__ import annotations

import logging

import pytest

from shardproxy.rc.calls import FORGET, REFRESH
from shardproxy.rc.pending import Backoff, Pending, PendingDeliveries, delivery_size
from shardproxy.rc.replies import Failure, Reply
from shardproxy.rc.route import TargetCall
from shardproxy.rc.targets import Delivery, Target

FAST = Backoff(base=0.05, cap=0.3)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


S2 = Target("shard", 2)


def forget_call(*paths: str) -> TargetCall:
    deliveries = tuple(Delivery(S2, FORGET, "dir", p) for p in paths)
    return TargetCall(S2, FORGET, {"dir": paths[0]}, deliveries)


def test_pending_paths_merge_and_age() -> None:
    clock = Clock()
    pending = PendingDeliveries(max_count=10, max_age=60, backoff=FAST, clock=clock)
    pending.record(forget_call("9/6", "9/7"), Failure("down"))
    clock.now += 5
    pending.record(forget_call("9/6/", "/9/7"), Failure("down"))
    assert pending.pending_count == 2
    assert pending.oldest_pending_age == 5.0
    pending.record(forget_call("9/6"), Reply({"forgotten": ["9/6"]}))
    assert pending.pending_count == 1


def test_pending_paths_past_their_age_are_dropped_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    pending = PendingDeliveries(max_count=10, max_age=60, backoff=FAST, clock=clock)
    pending.record(forget_call("9/6/1/b/0"), Failure("down"))
    clock.now += 61
    with caplog.at_level(logging.ERROR, "shardproxy.rc"):
        pending.expire()
        pending.report_drops()
    assert pending.pending_count == 0
    assert "'.ids/9/6/1/b/0'" in caplog.text and "rc_pending_max_age" in caplog.text


def test_pending_paths_over_the_count_drop_the_oldest_and_log_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    pending = PendingDeliveries(max_count=2, max_age=60, backoff=FAST, clock=clock)
    with caplog.at_level(logging.ERROR, "shardproxy.rc"):
        for path in ("9/0", "9/1", "9/2"):
            clock.now += 1
            pending.record(forget_call(path), Failure("down"))
        pending.report_drops()
    assert [d.path for d in pending.pending_for(S2)] == ["9/1", "9/2"]
    assert "'.ids/9/0'" in caplog.text and "rc_pending_max" in caplog.text


def test_a_plain_refresh_does_not_settle_a_recursive_one() -> None:
    pending = PendingDeliveries(max_count=10, max_age=60, backoff=FAST, clock=Clock())
    recursive = Delivery(S2, REFRESH, "dir", "9", recursive=True)
    pending.record(TargetCall(S2, REFRESH, {}, (recursive,)), Failure("down"))
    plain = Delivery(S2, REFRESH, "dir", "9")
    pending.record(TargetCall(S2, REFRESH, {}, (plain,)), Reply({"result": {"9": "OK"}}))
    assert pending.pending_for(S2) == [recursive]


def test_backoff_grows_with_jitter_up_to_its_cap() -> None:
    backoff = Backoff(base=1.0, cap=8.0)
    assert [backoff.delay(n, lambda: 1.0) for n in range(1, 7)] == [1, 2, 4, 8, 8, 8]
    assert [backoff.delay(n, lambda: 0.0) for n in (1, 4)] == [0.5, 4.0]


def test_retry_waits_for_the_backoff() -> None:
    clock = Clock()
    pending = PendingDeliveries(
        max_count=10, max_age=60, backoff=Backoff(base=1.0, cap=8.0), clock=clock
    )
    pending.record(forget_call("9"), Failure("down"))
    assert pending.due_targets() == []
    wait = pending.seconds_until_due()
    assert wait is not None and 0.5 <= wait <= 1.0
    clock.now += 1.0
    assert pending.due_targets() == [S2]


def test_changes_name_what_was_kept_and_what_settled_once() -> None:
    clock = Clock()
    pending = PendingDeliveries(max_count=10, max_age=60, backoff=FAST, clock=clock)
    pending.record(forget_call("9/6", "9/7"), Failure("down"))
    changes = pending.take_changes()
    assert [(p.delivery.path, p.since) for p in changes.kept] == [("9/6", 1000.0), ("9/7", 1000.0)]
    assert changes.settled == ()
    assert not pending.take_changes()
    pending.record(forget_call("9/6"), Reply({"forgotten": ["9/6"]}))
    changes = pending.take_changes()
    assert changes.kept == () and changes.settled == (Delivery(S2, FORGET, "dir", "9/6").key,)


def test_a_path_kept_and_dropped_in_one_batch_is_only_settled() -> None:
    pending = PendingDeliveries(max_count=1, max_age=60, backoff=FAST, clock=Clock())
    pending.record(forget_call("9/0", "9/1"), Failure("down"))
    changes = pending.take_changes()
    assert [p.delivery.path for p in changes.kept] == ["9/1"]
    assert changes.settled == (Delivery(S2, FORGET, "dir", "9/0").key,)


def test_restored_deliveries_are_due_at_once_and_not_saved_again() -> None:
    clock = Clock()
    pending = PendingDeliveries(max_count=10, max_age=60, backoff=FAST, clock=clock)
    pending.restore([Pending(Delivery(S2, FORGET, "dir", "9/6"), 990.0)])
    assert pending.due_targets() == [S2]
    assert pending.oldest_pending_age == 10.0
    assert pending.changed.is_set()
    assert not pending.take_changes()


def test_many_drops_are_one_log_line_with_their_count(caplog: pytest.LogCaptureFixture) -> None:
    pending = PendingDeliveries(max_count=10, max_age=60, backoff=FAST, clock=Clock())
    with caplog.at_level(logging.ERROR, "shardproxy.rc"):
        for start in range(0, 1000, 100):
            paths = [f"9/{n}" for n in range(start, start + 100)]
            pending.record(forget_call(*paths), Failure("down"))
        pending.report_drops()
    assert len(caplog.records) == 1
    assert "dropped 990 undelivered vfs/forget path(s) for shard2, e.g. '.ids/9/0'" in caplog.text


def test_drops_inside_a_batch_wait_for_its_end(caplog: pytest.LogCaptureFixture) -> None:
    pending = PendingDeliveries(max_count=1, max_age=60, backoff=FAST, clock=Clock())
    with caplog.at_level(logging.ERROR, "shardproxy.rc"):
        with pending.batch():
            pending.record(forget_call("9/0", "9/1"), Failure("down"))
            pending.report_drops()  # e.g. the retry loop, while a huge call is recorded
            assert caplog.records == []
            pending.record(forget_call("9/2"), Failure("down"))
        pending.report_drops()
    assert len(caplog.records) == 1 and "dropped 2 undelivered" in caplog.text


def test_the_oldest_go_when_the_waiting_paths_pass_max_bytes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    size = delivery_size(Delivery(Target("shard", 0), FORGET, "dir", "a" * 1000))
    pending = PendingDeliveries(max_count=100, max_age=3600.0, max_bytes=3 * size)
    paths = [c * 1000 for c in "abcd"]
    call = TargetCall(
        Target("shard", 0),
        FORGET,
        {},
        tuple(Delivery(Target("shard", 0), FORGET, "dir", p) for p in paths),
    )
    with caplog.at_level(logging.ERROR, "shardproxy.rc"):
        pending.record(call, Failure("down"))
        pending.report_drops()
    assert [d.path for d in pending.pending_for(Target("shard", 0))] == paths[1:]
    assert pending.pending_bytes == 3 * size
    assert "dropped 1 undelivered vfs/forget path(s)" in caplog.text
    assert "rc_pending_max_bytes" in caplog.text
