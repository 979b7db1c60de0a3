"""RC deliveries an rclone has not confirmed yet: merged, bounded, aged, due for retry.

No I/O and an injected clock: the RC listener feeds it each call's outcome and asks it
what to resend when. Every change is also kept in a journal (``take_changes``) that the
listener writes to the durable store before it answers, so a restart loses nothing.
Drops are collected and logged by ``report_drops`` as one line per rclone, command and
reason with a count, never one line per path: one huge call to a dead rclone must not
flood the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from shardproxy.rc.replies import Failure, RcloneAnswer, delivered_by
from shardproxy.rc.route import TargetCall, unmap
from shardproxy.rc.targets import Delivery, Target

log = logging.getLogger("shardproxy.rc")

DeliveryKey = tuple[Target, str, str, str]
# What a waiting delivery costs besides its path, in memory and as a row of the store.
ROW_OVERHEAD = 64


def delivery_size(delivery: Delivery) -> int:
    """Bytes a waiting delivery takes: its path twice (as sent, and in its key), and a row."""
    return 2 * len(delivery.path.encode("utf-8", "surrogatepass")) + ROW_OVERHEAD


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with jitter: ``base * 2**(n-1)``, capped, times 0.5..1."""

    base: float = 1.0
    cap: float = 60.0

    def delay(self, failures: int, rand: Callable[[], float] = random.random) -> float:
        """Seconds to wait after the ``failures``-th failure in a row."""
        ceiling = min(self.cap, self.base * 2.0 ** min(max(failures - 1, 0), 32))
        return ceiling * (0.5 + 0.5 * rand())


@dataclass(frozen=True)
class Pending:
    """One waiting delivery and when (on the injected clock) it first failed."""

    delivery: Delivery
    since: float


@dataclass(frozen=True)
class PendingChanges:
    """What changed since the last ``take_changes``: deliveries kept, keys settled."""

    kept: tuple[Pending, ...] = ()
    settled: tuple[DeliveryKey, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.kept or self.settled)


@dataclass
class _TargetHealth:
    failures: int = 0
    next_try: float = 0.0
    reason: str = ""


@dataclass
class _Drops:
    """Paths dropped for one (rclone, command, reason), summarised in one log line."""

    count: int = 0
    first: Delivery | None = None


@dataclass
class PendingDeliveries:
    """Forgets and refreshes an rclone has not confirmed yet, merged per rclone and path.

    Bounded by count and by bytes (the oldest is dropped first) and by age; drops are
    logged with a count and an example path. ``pending_count`` and
    ``oldest_pending_age`` are for metrics.
    """

    max_count: int
    max_age: float
    backoff: Backoff = field(default_factory=Backoff)
    max_bytes: int = 16 << 20
    clock: Callable[[], float] = time.monotonic
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    _items: dict[DeliveryKey, Pending] = field(default_factory=dict)
    _health: dict[Target, _TargetHealth] = field(default_factory=dict)
    # Per key, the latest change not yet taken: the Pending kept, or None when settled.
    _journal: dict[DeliveryKey, Pending | None] = field(default_factory=dict)
    # Drops not yet logged, per (rclone, command, reason): one line each in report_drops.
    _drops: dict[tuple[Target, str, str], _Drops] = field(default_factory=dict)
    _open_batches: int = 0
    _bytes: int = 0  # delivery_size of everything in _items

    @property
    def pending_bytes(self) -> int:
        """Bytes the waiting deliveries take (``delivery_size``), bounded by ``max_bytes``."""
        return self._bytes

    @property
    def pending_count(self) -> int:
        """How many (rclone, path) deliveries wait for a retry."""
        return len(self._items)

    @property
    def oldest_pending_age(self) -> float:
        """Seconds since the oldest waiting delivery first failed (0 when none waits)."""
        if not self._items:
            return 0.0
        return max(0.0, self.clock() - min(p.since for p in self._items.values()))

    @property
    def failing_targets(self) -> dict[str, str]:
        """Rclones whose last call failed, by name, with the reason (for status pages)."""
        return {t.name: h.reason for t, h in sorted(self._health.items()) if h.failures}

    def pending_for(self, target: Target) -> list[Delivery]:
        """The deliveries waiting for ``target``, oldest first."""
        return [p.delivery for p in self._items.values() if p.delivery.target == target]

    def waiting(self) -> list[Pending]:
        """Every waiting delivery with its age stamp, oldest first."""
        return list(self._items.values())

    def record(self, call: TargetCall, outcome: RcloneAnswer) -> dict[DeliveryKey, str]:
        """Take in one call's outcome: settle what it confirmed, keep the rest for retry."""
        confirmed = delivered_by(call, outcome)
        for delivery in call.deliveries:
            if delivery.key in confirmed:
                self._settle(delivery)
        missing = [d for d in call.deliveries if d.key not in confirmed]
        if isinstance(outcome, Failure):
            self._failed(call.target, outcome.reason)
        elif missing:
            self._failed(call.target, "its reply did not confirm every path")
        else:
            self._answered(call.target)
        self._keep(missing)
        return confirmed

    def restore(self, kept: Iterable[Pending]) -> None:
        """Take back deliveries saved by an earlier run (not journaled: they are saved)."""
        restored = False
        for pending in kept:
            if pending.delivery.key not in self._items:
                self._items[pending.delivery.key] = pending
                self._bytes += delivery_size(pending.delivery)
            restored = True
        # Bounds lowered since the store was written: the oldest go, and say so.
        self._make_room(0)
        if restored:
            self.changed.set()

    def take_changes(self) -> PendingChanges:
        """The changes since the last call, for the durable store; the journal empties."""
        kept = tuple(p for p in self._journal.values() if p is not None)
        settled = tuple(k for k, p in self._journal.items() if p is None)
        self._journal.clear()
        return PendingChanges(kept, settled)

    def reason_for(self, target: Target) -> str:
        """Why ``target`` failed last, or ''."""
        health = self._health.get(target)
        return health.reason if health else ""

    def due_targets(self) -> list[Target]:
        """Rclones with waiting deliveries whose backoff has run out."""
        now = self.clock()
        targets = {p.delivery.target for p in self._items.values()}
        return sorted(t for t in targets if self._health_of(t).next_try <= now)

    def seconds_until_due(self) -> float | None:
        """How long until the next retry is due, or None when nothing waits."""
        targets = {p.delivery.target for p in self._items.values()}
        if not targets:
            return None
        soonest = min(self._health_of(t).next_try for t in targets)
        return max(0.0, soonest - self.clock())

    def expire(self) -> None:
        """Drop deliveries that have waited longer than ``max_age``, logging a summary."""
        now = self.clock()
        why = f"it waited over {self.max_age:g} s (rc_pending_max_age)"
        for key, pending in list(self._items.items()):
            if now - pending.since > self.max_age:
                self._remove(key)
                self._count_drop(pending.delivery, why)

    def drop_all(self) -> None:
        """Forget everything at shutdown (memory-only mode), saying how much was lost."""
        for pending in self._items.values():
            self._count_drop(
                pending.delivery, "shardproxy stopped and no rc_pending_file keeps them"
            )
        self._items.clear()
        self._bytes = 0
        self.report_drops()

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Hold drop reports while one caller's call is recorded reply by reply."""
        self._open_batches += 1
        try:
            yield
        finally:
            self._open_batches -= 1

    def report_drops(self) -> None:
        """Log the drops since the last report: one line per rclone, command and reason.

        While a batch is open nothing is logged yet, so that one huge call gives one
        line per rclone however many replies it took.
        """
        if self._open_batches:
            return
        drops, self._drops = self._drops, {}
        for (target, command, why), dropped in sorted(drops.items()):
            first = dropped.first
            assert first is not None
            log.error(
                "dropped %d undelivered %s path(s) for %s, e.g. %r (%r as that rclone sees "
                "it): %s; last error: %s",
                dropped.count,
                command,
                target,
                unmap(target, first.path),
                first.path,
                why,
                self.reason_for(target) or "none",
            )

    def _health_of(self, target: Target) -> _TargetHealth:
        return self._health.setdefault(target, _TargetHealth())

    def _remove(self, key: DeliveryKey) -> None:
        self._bytes -= delivery_size(self._items.pop(key).delivery)
        self._journal[key] = None

    def _put(self, pending: Pending) -> None:
        old = self._items.get(pending.delivery.key)
        if old is not None:
            self._bytes -= delivery_size(old.delivery)
        self._items[pending.delivery.key] = pending
        self._bytes += delivery_size(pending.delivery)
        self._journal[pending.delivery.key] = pending

    def _make_room(self, size: int) -> None:
        """Drop the oldest deliveries until one more of ``size`` bytes fits both bounds."""
        count = 1 if size else 0
        while self._items and (
            len(self._items) + count > self.max_count or self._bytes + size > self.max_bytes
        ):
            if len(self._items) + count > self.max_count:
                why = f"{self.max_count} paths already wait (rc_pending_max)"
            else:
                why = f"waiting paths take over {self.max_bytes} bytes (rc_pending_max_bytes)"
            oldest_key = next(iter(self._items))
            self._count_drop(self._items[oldest_key].delivery, why)
            self._remove(oldest_key)

    def _settle(self, delivery: Delivery) -> None:
        pending = self._items.get(delivery.key)
        # A plain refresh does not settle a waiting recursive one.
        if pending and (delivery.recursive or not pending.delivery.recursive):
            self._remove(delivery.key)

    def _keep(self, deliveries: Iterable[Delivery]) -> None:
        added = False
        for delivery in deliveries:
            pending = self._items.get(delivery.key)
            if pending is not None:
                if delivery.recursive and not pending.delivery.recursive:
                    self._put(Pending(delivery, pending.since))
                continue
            self._make_room(delivery_size(delivery))
            self._put(Pending(delivery, self.clock()))
            added = True
        if added:
            self.changed.set()

    def _failed(self, target: Target, reason: str) -> None:
        health = self._health_of(target)
        health.failures += 1
        health.next_try = self.clock() + self.backoff.delay(health.failures)
        if health.failures == 1:
            log.warning("RC calls to %s fail, retrying with backoff: %s", target, reason)
        else:
            log.debug("RC call to %s failed again (%d): %s", target, health.failures, reason)
        health.reason = reason

    def _answered(self, target: Target) -> None:
        health = self._health_of(target)
        if health.failures:
            log.info("%s answers RC calls again after %d failure(s)", target, health.failures)
            health.failures = 0
            health.reason = ""
        health.next_try = 0.0
        if any(p.delivery.target == target for p in self._items.values()):
            self.changed.set()

    def _count_drop(self, delivery: Delivery, why: str) -> None:
        dropped = self._drops.setdefault((delivery.target, delivery.command, why), _Drops())
        dropped.count += 1
        if dropped.first is None:
            dropped.first = delivery
