"""One check running at a time, its answer shared by every caller and kept a moment.

A load balancer, a container runtime and an operator's ``watch`` may all ask ``/readyz``
at once, many times a second; each asking every rclone afresh turned 255 requests a
second into over a thousand RC calls, sharing the pool with the background poll.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Coalesced(Generic[T]):
    """``check()`` run for all concurrent callers at once; its result reused for ``ttl`` s."""

    def __init__(
        self,
        check: Callable[[], Awaitable[T]],
        ttl: float,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.check = check
        self.ttl = ttl
        self.clock = clock
        self._running: asyncio.Future[T] | None = None
        self._last: tuple[float, T] | None = None

    async def get(self) -> T:
        """The fresh result: the last one if under ``ttl`` old, else the running check's."""
        last = self._last
        if last is not None and self.clock() - last[0] < self.ttl:
            return last[1]
        running = self._running
        if running is None:
            running = self._running = asyncio.ensure_future(self._run())
        # A caller that goes away (its client hung up) must not cancel everyone's check.
        return await asyncio.shield(running)

    async def _run(self) -> T:
        try:
            result = await self.check()
        finally:
            self._running = None
        self._last = (self.clock(), result)
        return result
