"""The requests in progress, so that a shutdown can let them finish, then cut the rest.

systemd kills a service 90 s after SIGTERM; a stream to a slow reader may last hours.
So a shutdown waits a bounded grace for what is running and then cancels it, which
closes the client's connection and the upstream one (NzbDav stops fetching).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ActiveRequests:
    """Tracks every request being handled, through an aiohttp middleware."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[object]] = set()
        self._idle = asyncio.Event()
        self._idle.set()

    def __len__(self) -> int:
        return len(self._tasks)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Count the request while its handler runs."""
        task = asyncio.current_task()
        if task is None:  # pragma: no cover - aiohttp always runs handlers in a task
            return await handler(request)
        self._tasks.add(task)
        self._idle.clear()
        try:
            return await handler(request)
        finally:
            self._tasks.discard(task)
            if not self._tasks:
                self._idle.set()

    async def drain(self, grace: float, hurry: asyncio.Event) -> int:
        """Wait up to ``grace`` seconds (or until ``hurry``) for all requests; cut the rest.

        Returns how many requests were cut.
        """
        waiters = [asyncio.ensure_future(self._idle.wait()), asyncio.ensure_future(hurry.wait())]
        try:
            await asyncio.wait(waiters, timeout=grace, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
        cut = list(self._tasks)
        for task in cut:
            task.cancel()
        if cut:
            # Give the cancelled handlers a moment to close their connections.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), 5.0)
        return len(cut)
