"""The RC retry queue at work: saved before a reply promises a retry, retried forever.

``PendingDeliveries`` decides what waits and when it is due; ``PendingStore`` keeps it
on disk. This glue writes each batch of changes on a thread of its own (SQLite blocks),
reloads the queue at start, and resends what is due with backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from shardproxy.rc.inflight import InFlight
from shardproxy.rc.pending import PendingDeliveries
from shardproxy.rc.route import plan_calls
from shardproxy.rc.send import RcForwarder
from shardproxy.rc.store import PendingStore
from shardproxy.rc.targets import Target, Topology

log = logging.getLogger("shardproxy.rc")
T = TypeVar("T")

# The retry loop wakes at least this often to drop deliveries past their age.
IDLE_WAKE_SECONDS = 30.0
# How often the retry loop looks again while what is due is still on its way.
IN_FLIGHT_POLL_SECONDS = 0.5


class RetryQueue:
    """Pending deliveries and their durable copy (none: kept in memory only)."""

    def __init__(self, pending: PendingDeliveries, store: PendingStore | None) -> None:
        self.pending = pending
        self.store = store
        # One thread: SQLite calls stay off the event loop and in the order they were made.
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rc-store")

    async def load(self, known: frozenset[Target]) -> None:
        """Take back what an earlier run left undelivered; it is retried at once."""
        if self.store is None:
            return
        saved = await self._run(self.store.load, known)
        if saved:
            self.pending.restore(saved)
            log.info(
                "reloaded %d undelivered RC path(s) from %s; retrying them now",
                len(saved),
                self.store.path,
            )

    async def save(self) -> None:
        """Write the queue's changes since the last save (before a reply says "will retry")."""
        self.pending.report_drops()
        changes = self.pending.take_changes()
        if not changes or self.store is None:
            return
        try:
            await self._run(self.store.apply, changes)
        except sqlite3.Error as exc:
            log.error(
                "could not save %d RC queue change(s) to %s (rc_pending_file): %s; they are "
                "kept in memory and lost if shardproxy stops",
                len(changes.kept) + len(changes.settled),
                self.store.path,
                exc,
            )

    async def close(self) -> None:
        """Save what is left and close the store (memory-only: say what is lost)."""
        if self.store is None:
            self.pending.drop_all()
        else:
            await self.save()
            await self._run(self.store.close)
        self._writer.shutdown(wait=True)

    async def _run(self, function: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._writer, function, *args)


async def retry_forever(
    queue: RetryQueue, forwarder: RcForwarder, topology: Topology, in_flight: InFlight
) -> None:
    """Resend waiting deliveries to each rclone whose backoff has run out, forever."""
    pending = queue.pending
    while True:
        pending.changed.clear()
        pending.expire()
        due = pending.due_targets()
        sent = False
        if due:
            try:
                sent = await _retry_targets(pending, forwarder, topology, due, in_flight)
            except Exception:
                # A bug here must not end retries for good: log it and carry on.
                log.exception("RC retry round failed")
                await asyncio.sleep(1.0)
                continue
            finally:
                await queue.save()
        if sent:
            continue
        await queue.save()
        # Nothing due, or all of it still on its way in a caller's call: wait for news.
        wait = pending.seconds_until_due() if not due else IN_FLIGHT_POLL_SECONDS
        timeout = IDLE_WAKE_SECONDS if wait is None else min(wait, IDLE_WAKE_SECONDS)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(pending.changed.wait(), timeout)


async def _retry_targets(
    pending: PendingDeliveries,
    forwarder: RcForwarder,
    topology: Topology,
    due: list[Target],
    in_flight: InFlight,
) -> bool:
    """Resend what waits for the due rclones, except what is on its way; False if nothing."""
    waiting = [d for t in due for d in pending.pending_for(t) if not in_flight.is_running(d)]
    free, _ = in_flight.split(waiting)
    calls = plan_calls(free, topology)
    delivered: dict[Target, int] = {}
    async for call, outcome in in_flight.send_each(forwarder.as_done, calls):
        confirmed = pending.record(call, outcome)
        if confirmed:
            delivered[call.target] = delivered.get(call.target, 0) + len(confirmed)
    for target, count in sorted(delivered.items()):
        log.info("delivered %d waiting RC path(s) to %s", count, target)
    return bool(calls)
