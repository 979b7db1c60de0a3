"""Every listener's limits on what a client may hold, and the WebDAV listener itself.

The WebDAV proxy has one handler, so it runs on aiohttp's low-level server
(``ProxyServer``) without an application or router; the RC and admin listeners are
applications. All three are served the same way (``site.GuardedSite``), and what
aiohttp does not bound by itself is bounded here, in a thin protocol wrapped around
each connection's RequestHandler (``Doorkeeper`` makes them, one per listener):

- the size of a request head (request line and headers together): past
  ``header_max_size`` the client gets 431 and the connection closes, so a connection
  that has not sent a whole head holds kilobytes, not megabytes;
- the time to send a head once it starts (``header_timeout``, and for the first one
  from the moment of connecting): then 408 and close, so slow heads cannot pile up;
- a client that reads nothing while a reply waits in its buffer (``send_timeout``):
  its connection is dropped (and logged), which also lets the backend connection go;
- a request body that stops arriving (``body_timeout``): 408 and close. The WebDAV
  handler streams bodies and times them where it reads them; the applications' bodies
  are watched here. aiohttp reads at most ``2 * READ_BUFSIZE`` of a body ahead of its
  handler, so a stalled body holds kilobytes;
- a method no listener serves (CONNECT): 405 and close.

Idle keep-alive is aiohttp's own ``keepalive_timeout``; the cap on open connections is
the acceptor's (``accept``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import cast

from aiohttp import StreamReader, web
from aiohttp.web_protocol import RequestHandler

from shardproxy.core.failover import FallbackReads
from shardproxy.listeners.drain import ActiveRequests
from shardproxy.telemetry.logs import AccessLogger

log = logging.getLogger("shardproxy.listeners.listener")

Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]
AppHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _refusal(status: int, reason: str, message: str) -> bytes:
    body = message.encode() + b"\n"
    return (
        b"HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"Content-Length: %d\r\nConnection: close\r\n\r\n%s"
        % (status, reason.encode(), len(body), body)
    )


# Bytes of a request body aiohttp reads ahead of its handler (it stops reading the
# socket at twice this): what a client that stalls mid-body can make a connection hold.
READ_BUFSIZE = 16 << 10
# Seconds a refused connection goes on reading (and dropping) what the client sends,
# so that the refusal reaches it before the close.
LINGER_SECONDS = 2.0
# Methods no listener serves: a CONNECT would make the proxy a tunnel to NzbDav's port.
REFUSED_METHODS = frozenset({"CONNECT"})


def refused_method(method: str) -> web.Response:
    """The 405 for a method in ``REFUSED_METHODS``; the connection closes after it."""
    response = web.Response(
        status=405,
        text=f"method {method} is not served here\n",
        headers={
            "Allow": "GET, HEAD, PUT, DELETE, OPTIONS, PROPFIND, PROPPATCH, MKCOL, "
            "COPY, MOVE, LOCK, UNLOCK, POST"
        },
    )
    # What follows a CONNECT's head is meant to be a tunnel, not another request.
    response.force_close()
    return response


class ClientLimits:
    """The limits one listener applies to each client connection.

    Every listener (WebDAV, RC, admin) gets the same head, keep-alive, body and send
    limits; each has its own cap on open connections (``max_connections``, named in the
    log by ``cap_setting``).
    """

    def __init__(
        self,
        header_max_size: int,
        header_timeout: float,
        send_timeout: float,
        *,
        keepalive_timeout: float = 75.0,
        body_timeout: float = 60.0,
        max_connections: int = 1024,
        cap_setting: str = "max_connections",
        name: str = "WebDAV",
    ) -> None:
        self.header_max_size = header_max_size
        self.header_timeout = header_timeout
        self.send_timeout = send_timeout
        self.keepalive_timeout = keepalive_timeout
        self.body_timeout = body_timeout
        self.max_connections = max_connections
        self.cap_setting = cap_setting
        self.name = name
        self.too_large = _refusal(
            431,
            "Request Header Fields Too Large",
            f"request head larger than {header_max_size} bytes (header_max_size)",
        )
        self.too_slow = _refusal(
            408,
            "Request Timeout",
            f"request head not received within {header_timeout:g}s (header_timeout)",
        )
        self.body_stalled = _refusal(
            408,
            "Request Timeout",
            f"request body: nothing arrived for {body_timeout:g}s (body_timeout)",
        )


class _ClientGuard(asyncio.Protocol):
    """One client connection: counts and times its request heads, watches its reading
    (and, for listeners that read bodies whole, its sending)."""

    def __init__(
        self, doors: Doorkeeper, inner: RequestHandler, closed: Callable[[], None]
    ) -> None:
        self.doors = doors
        self.limits = doors.limits
        self.inner = inner
        self.closed = closed
        self.transport: asyncio.Transport | None = None
        # Bytes of the request head seen so far; None while a request is being served.
        self.head_size: int | None = 0
        self.tail = b""
        self.head_timer: asyncio.TimerHandle | None = None
        self.send_timer: asyncio.TimerHandle | None = None
        self.body: StreamReader | None = None
        self.body_seen = 0
        self.body_timer: asyncio.TimerHandle | None = None
        # Set once a refusal (431, 408) is sent: the connection only drains and closes.
        self.refused = False
        self.linger_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.doors.guards[self.inner] = self
        self.inner.connection_made(transport)
        self._start_head_timer()

    def data_received(self, data: bytes) -> None:
        if self.refused:
            return  # answered and closing: what the client still sends is dropped
        if self.head_size == 0:
            # Nearly every head arrives whole in one read, and this is on every
            # request's path: settle that case here, the rest in _count_head.
            end = data.find(b"\r\n\r\n")
            if 0 <= end <= self.limits.header_max_size - 4:
                self._head_complete()
                self.inner.data_received(data)
                return
        if self.head_size is not None:
            self._count_head(data)
            if self.transport is None or self.transport.is_closing():
                return
        self.inner.data_received(data)

    def _count_head(self, data: bytes) -> None:
        assert self.head_size is not None
        # The blank line may straddle two reads: look at the end of the previous one too.
        seen = self.tail + data if self.tail else data
        end = seen.find(b"\r\n\r\n")
        if end < 0:
            self.head_size += len(data)
            self.tail = seen[-3:]
            if self.head_timer is None:
                # A head that comes in one read (nearly all) never needs the timer.
                self._start_head_timer()
        else:
            self.head_size += end + 4 - len(self.tail)
        if self.head_size > self.limits.header_max_size:
            self._refuse(self.limits.too_large)
        elif end >= 0:
            self._head_complete()

    def _head_complete(self) -> None:
        self.head_size = None
        self.tail = b""
        if self.head_timer is not None:
            self.head_timer.cancel()
            self.head_timer = None

    def request_done(self) -> None:
        """The handler finished: whatever comes next is the next request's head."""
        if self.head_size is None:
            self.head_size = 0
        self._stop_watching_body()

    def watch_body(self, body: StreamReader) -> None:
        """Drop the connection if ``body`` gets no byte for ``body_timeout`` before its end.

        For listeners whose handlers read a body whole (RC); the WebDAV handler streams
        bodies and times them where it reads them.
        """
        self.body, self.body_seen = body, body.total_bytes
        loop = asyncio.get_running_loop()
        self.body_timer = loop.call_later(self.limits.body_timeout, self._check_body)

    def _check_body(self) -> None:
        self.body_timer = None
        body = self.body
        if body is None or body.is_eof():
            return
        if body.total_bytes == self.body_seen:
            log.info(
                "%s listener: dropping %s, whose request body stalled for %gs (body_timeout)",
                self.limits.name,
                self._peer(),
                self.limits.body_timeout,
            )
            self._refuse(self.limits.body_stalled)
            return
        self.watch_body(body)

    def _stop_watching_body(self) -> None:
        self.body = None
        if self.body_timer is not None:
            self.body_timer.cancel()
            self.body_timer = None

    def _start_head_timer(self) -> None:
        loop = asyncio.get_running_loop()
        self.head_timer = loop.call_later(self.limits.header_timeout, self._head_timed_out)

    def _head_timed_out(self) -> None:
        self.head_timer = None
        if self.head_size is not None and self.head_size > 0:
            self._refuse(self.limits.too_slow)
        elif self.head_size == 0 and self.transport is not None:
            # Connected and sent nothing at all: close without a word, as nginx does.
            self.transport.close()

    def _refuse(self, reply: bytes) -> None:
        """Send ``reply`` and end the connection, reading (and dropping) a moment longer.

        A close with unread input sends a reset, which can make the client's kernel drop
        the reply it has not read yet: so the write side is shut first, and what the
        client still sends is dropped until it stops, or for ``LINGER_SECONDS``.
        """
        transport = self.transport
        if transport is None or transport.is_closing() or self.refused:
            return
        self.refused = True
        transport.write(reply)
        if not transport.can_write_eof():
            transport.close()
            return
        transport.write_eof()
        loop = asyncio.get_running_loop()
        self.linger_timer = loop.call_later(LINGER_SECONDS, transport.close)

    def _peer(self) -> str:
        peer = self.transport.get_extra_info("peername") if self.transport else None
        return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else "a client"

    def eof_received(self) -> bool | None:
        if self.refused and self.transport is not None:
            self.transport.close()  # the client has stopped sending: nothing to wait for
            return None
        self.inner.eof_received()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        for timer in (self.head_timer, self.send_timer, self.body_timer, self.linger_timer):
            if timer is not None:
                timer.cancel()
        self.body = None
        self.doors.guards.pop(self.inner, None)
        try:
            self.inner.connection_lost(exc)
        finally:
            self.closed()

    def pause_writing(self) -> None:
        self.inner.pause_writing()
        if self.send_timer is None:
            loop = asyncio.get_running_loop()
            self.send_timer = loop.call_later(self.limits.send_timeout, self._send_timed_out)

    def resume_writing(self) -> None:
        if self.send_timer is not None:
            self.send_timer.cancel()
            self.send_timer = None
        self.inner.resume_writing()

    def _send_timed_out(self) -> None:
        self.send_timer = None
        log.info(
            "%s listener: cutting %s, which read nothing of its reply for %gs (send_timeout)",
            self.limits.name,
            self._peer(),
            self.limits.send_timeout,
        )
        if self.transport is not None:
            self.transport.abort()


class Doorkeeper:
    """One listener's limits, applied to each of its connections.

    ``protocol_for(server)`` makes the protocol of an accepted connection: aiohttp's
    handler for ``server`` inside a guard. A request's end must be reported
    (``request_done``) so the guard counts the next head: the WebDAV server does it
    itself, applications through ``middleware``.
    """

    def __init__(self, limits: ClientLimits) -> None:
        self.limits = limits
        self.guards: dict[RequestHandler, _ClientGuard] = {}

    def protocol_for(self, server: web.Server) -> Callable[[Callable[[], None]], asyncio.Protocol]:
        """The protocol factory an ``Acceptor`` calls for each connection to ``server``."""

        def guarded(closed: Callable[[], None]) -> asyncio.Protocol:
            return _ClientGuard(self, server(), closed)

        return guarded

    def request_done(self, protocol: object) -> None:
        """The request on ``protocol`` (aiohttp's handler) has been answered."""
        guard = self.guards.get(cast(RequestHandler, protocol))
        if guard is not None:
            guard.request_done()

    @web.middleware
    async def middleware(self, request: web.Request, handler: AppHandler) -> web.StreamResponse:
        """For applications: refuse what no listener serves, time bodies, report the end."""
        if request.method in REFUSED_METHODS:
            return refused_method(request.method)
        guard = self.guards.get(request.protocol)
        if guard is not None and request.body_exists:
            guard.watch_body(request.content)
        try:
            return await handler(request)
        finally:
            if guard is not None:
                guard.request_done()


class ProxyServer(web.Server):
    """aiohttp's low-level server running one handler, each connection within limits."""

    def __init__(
        self,
        handler: Handler,
        limits: ClientLimits,
        *,
        on_shutdown: Callable[[], None] | None = None,
        keepalive_timeout: float,
        access_log: logging.Logger | None,
    ) -> None:
        self.limits = limits
        # Like aiohttp's Server, made inside the loop it serves. Named when asking for
        # the current task: without it asyncio looks the loop up, which on Python 3.11
        # costs a getpid() system call per request.
        self.loop = asyncio.get_running_loop()
        # Set by the site that serves it (none when served without limits, as in tests).
        self.doors: Doorkeeper | None = None
        self.on_shutdown = on_shutdown
        self.handler = handler
        # Set by whoever runs the server: counts for the metrics, the requests in
        # progress (for a bounded shutdown).
        self.fallback_reads: FallbackReads | None = None
        self.active: ActiveRequests | None = None
        super().__init__(
            self._handle,
            # A client that hangs up cancels its handler at once, which closes the
            # upstream connection: NzbDav stops fetching from Usenet for nobody.
            handler_cancellation=True,
            keepalive_timeout=keepalive_timeout,
            access_log=access_log,
            access_log_class=AccessLogger,
            max_headers=256,
            read_bufsize=READ_BUFSIZE,
        )

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        if request.method in REFUSED_METHODS:
            return refused_method(request.method)
        # Tracked here rather than by wrapping the handler in ActiveRequests.middleware:
        # one coroutine less on every request. The task is the one aiohttp runs this
        # handler in (request.task is the connection's, not the request's).
        active = self.active
        task = asyncio.current_task(self.loop)
        if active is not None and task is not None:
            active.enter(task)
        try:
            return await self.handler(request)
        finally:
            if active is not None and task is not None:
                active.leave(task)
            if self.doors is not None:
                self.doors.request_done(request.protocol)

    async def shutdown(self, timeout: float | None = None) -> None:  # noqa: ASYNC109
        """Close client connections, then whatever ``on_shutdown`` holds (the pool)."""
        await super().shutdown(timeout)
        if self.on_shutdown is not None:
            self.on_shutdown()
