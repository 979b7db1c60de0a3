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
    """Tracks every request being handled: the WebDAV listener calls ``enter``/``leave``
    around its handler, the other listeners go through ``middleware``.

    Tracking is on every request's path, so it is two set operations and nothing else;
    the "all done" event exists only while ``drain`` waits for it.
    """

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[object]] = set()
        self._idle: asyncio.Event | None = None

    def __len__(self) -> int:
        return len(self._tasks)

    def enter(self, task: asyncio.Task[object]) -> None:
        """``task`` started handling a request."""
        self._tasks.add(task)

    def leave(self, task: asyncio.Task[object]) -> None:
        """``task`` finished its request (however it ended)."""
        self._tasks.discard(task)
        if not self._tasks and self._idle is not None:
            self._idle.set()

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Count the request while its handler runs."""
        task = asyncio.current_task()
        if task is None:  # pragma: no cover - aiohttp always runs handlers in a task
            return await handler(request)
        self.enter(task)
        try:
            return await handler(request)
        finally:
            self.leave(task)

    async def drain(self, grace: float, hurry: asyncio.Event) -> int:
        """Wait up to ``grace`` seconds (or until ``hurry``) for all requests; cut the rest.

        Returns how many requests were cut.
        """
        idle = self._idle = asyncio.Event()
        if not self._tasks:
            idle.set()
        waiters = [asyncio.ensure_future(idle.wait()), asyncio.ensure_future(hurry.wait())]
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
                await asyncio.wait_for(idle.wait(), 5.0)
        return len(cut)
