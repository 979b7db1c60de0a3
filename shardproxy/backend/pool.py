"""The pool of keep-alive connections that requests to the proxy's one backend go out on.

One backend, plain HTTP/1.1, a handful of methods: a client this small costs a fraction
of a general-purpose one per request, and owning it means the splice path can borrow
its socket through a public method instead of another library's internals. A
connection's own rules live in ``upstream_conn``, a reply's in ``upstream_reply``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, Iterable

from shardproxy.backend.connection import BackendConnection
from shardproxy.backend.reply import BackendError, BackendReply

# Seconds an idle connection waits in the pool for its next request.
IDLE_TIMEOUT = 30.0
# Idle connections kept; more are closed when released.
MAX_IDLE = 64


class BackendPool:
    """Keep-alive connections to one backend origin (``http://host:port``)."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        connect_timeout: float,
        read_timeout: float,
        idle_timeout: float = IDLE_TIMEOUT,
        max_idle: int = MAX_IDLE,
    ) -> None:
        self.host = host
        self.port = port
        self.authority = f"{host}:{port}" if ":" not in host else f"[{host}]:{port}"
        self.origin = f"http://{self.authority}"
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.idle_timeout = idle_timeout
        self.max_idle = max_idle
        self._idle: list[BackendConnection] = []
        self._sweeper: asyncio.TimerHandle | None = None
        self._all: set[BackendConnection] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The loop the pool's connections live on (the one it was first used from)."""
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    async def request(
        self,
        method: str,
        target: str,
        headers: Iterable[tuple[str, str]],
        body: bytes | AsyncIterable[bytes] | None = None,
        body_length: int | None = None,
    ) -> BackendReply:
        """Send one request and return its reply once the head has arrived.

        ``headers`` go out as given (no Host is added when one is there); a streamed
        ``body`` goes with ``Content-Length: body_length`` when known, chunked otherwise.
        Raises BackendError (502/504) when there is no reply head.
        """
        chunked = body is not None and not isinstance(body, bytes) and body_length is None
        head = _request_head(
            method, target, headers, self, body=body, body_length=body_length, chunked=chunked
        )
        replayable = body is None or isinstance(body, bytes)
        while True:
            conn = self._take_idle()
            reused = conn is not None
            if conn is None:
                conn = await self._connect()
            try:
                return await conn.send(method, head, body, chunked)
            except BackendError as exc:
                # A kept-alive connection the backend closed just as we reused it: the
                # request never reached it, so asking again on a new one is safe. A
                # timeout (504) is not that: the backend has the request and may be
                # fetching it from Usenet; asking again would double its work and the
                # client's wait.
                unsent = conn.closed and not conn.got_bytes and exc.status != 504
                if reused and replayable and unsent:
                    continue
                raise
            except BaseException:
                conn.close()
                raise

    async def _connect(self) -> BackendConnection:
        loop = self.loop
        try:
            async with asyncio.timeout(self.connect_timeout):
                transport, conn = await loop.create_connection(
                    lambda: BackendConnection(self), self.host, self.port
                )
        except TimeoutError:
            raise BackendError(
                504,
                f"backend {self.origin} did not accept a connection within "
                f"{self.connect_timeout:g}s",
            ) from None
        except OSError as exc:
            raise BackendError(
                502, f"backend {self.origin} is unreachable: {exc.strerror or exc}"
            ) from None
        if conn.transport is None:
            # uvloop may call connection_made only after create_connection returns.
            conn.connection_made(transport)
        self._all.add(conn)
        return conn

    def _take_idle(self) -> BackendConnection | None:
        # The most recently used first: it is the least likely to have been closed.
        while self._idle:
            conn = self._idle.pop()
            if not conn.closed and conn.reusable:
                return conn
        return None

    def put_idle(self, conn: BackendConnection) -> None:
        """Keep a connection whose reply ended cleanly for the next request."""
        if len(self._idle) >= self.max_idle:
            conn.close()
            return
        conn.idle_since = self.loop.time()
        self._idle.append(conn)
        if self._sweeper is None:
            # One timer for the pool, not one per request: idle connections are
            # closed by the sweep that finds them past idle_timeout.
            self._sweeper = self.loop.call_later(self.idle_timeout, self._sweep)

    def _sweep(self) -> None:
        self._sweeper = None
        limit = self.loop.time() - self.idle_timeout
        # Oldest first: the list is in the order connections went idle.
        while self._idle and self._idle[0].idle_since <= limit:
            self._idle.pop(0).close()
        if self._idle:
            wait = self._idle[0].idle_since + self.idle_timeout - self.loop.time()
            self._sweeper = self.loop.call_later(max(wait, 0.01), self._sweep)

    def forget(self, conn: BackendConnection) -> None:
        """Stop tracking a connection that has closed."""
        self._all.discard(conn)
        if conn in self._idle:
            self._idle.remove(conn)

    @property
    def idle_count(self) -> int:
        """Connections waiting in the pool."""
        return len(self._idle)

    def close(self) -> None:
        """Close every connection, idle or busy."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for conn in list(self._all):
            conn.close()
        self._idle.clear()


def _request_head(
    method: str,
    target: str,
    headers: Iterable[tuple[str, str]],
    pool: BackendPool,
    *,
    body: bytes | AsyncIterable[bytes] | None,
    body_length: int | None,
    chunked: bool,
) -> bytes:
    lines = [f"{method} {target} HTTP/1.1\r\n"]
    has_host = False
    for name, value in headers:
        if len(name) == 4 and name.lower() == "host":
            has_host = True
        elif len(name) == 14 and name.lower() == "content-length":
            continue  # the body's framing is ours to state, below
        lines.append(f"{name}: {value}\r\n")
    if not has_host:
        lines.append(f"Host: {pool.authority}\r\n")
    if isinstance(body, bytes):
        if body or method not in ("GET", "HEAD", "DELETE", "OPTIONS"):
            lines.append(f"Content-Length: {len(body)}\r\n")
    elif chunked:
        lines.append("Transfer-Encoding: chunked\r\n")
    elif body is not None:
        lines.append(f"Content-Length: {body_length or 0}\r\n")
    lines.append("\r\n")
    text = "".join(lines)
    try:
        # Header text is the client's bytes read as Latin-1, so this gives them back.
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode("utf-8")
