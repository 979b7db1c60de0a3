"""The proxy's own keep-alive connections to its one backend (asyncio.Protocol + httptools).

One backend, plain HTTP/1.1, a handful of methods: a client this small costs a fraction
of a general-purpose one per request, and owning it means the splice path can borrow
its socket through a public method instead of another library's internals.

Rules that keep a pooled connection honest:

- A connection is reused only after a reply that ended exactly where its framing said
  (Content-Length or last chunk), that allowed keep-alive, and after which nothing else
  arrived. Bytes a backend sends on an idle connection close it: read as the next
  reply, they would answer another client's request.
- HEAD, 204 and 304 replies have no body; 1xx interim replies are skipped; a body with
  neither length nor chunks runs to the end of the connection.
- Flow control both ways: reading pauses while the consumer has more than
  ``READ_BUFFER`` bytes unread, and writes wait while the kernel's buffer is full.
- The backend may stay silent at most ``read_timeout`` seconds while the proxy waits
  for it (504 before the head, a cut reply after); connecting takes at most
  ``connect_timeout`` (502 when refused, 504 when it times out).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import socket
from collections.abc import AsyncIterable, Iterable
from typing import cast

import httptools
from multidict import CIMultiDict

# Unread body bytes at which the backend socket stops being read.
READ_BUFFER = 1 << 16
# Seconds an idle connection waits in the pool for its next request.
IDLE_TIMEOUT = 30.0
# Idle connections kept; more are closed when released.
MAX_IDLE = 64


class BackendError(Exception):
    """The backend could not be asked or did not answer; ``status`` is 502 or 504."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class BodyError(Exception):
    """A reply body broke off or stalled after its head was passed on."""


class BodyTimeout(BodyError, TimeoutError):
    """The backend fell silent mid-body for longer than the read timeout."""


class UpstreamResponse:
    """One reply's status, headers and body, read as the consumer asks for it."""

    def __init__(self, conn: _Connection, status: int, reason: str) -> None:
        self._conn = conn
        self.status = status
        self.reason = reason
        self.raw_headers: list[tuple[bytes, bytes]] = []
        self._headers: CIMultiDict[str] | None = None
        self.content_length: int | None = None
        self.chunked = False
        self._chunks: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._complete = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None

    # --- what the consumer calls --------------------------------------------------------

    @property
    def headers(self) -> CIMultiDict[str]:
        """The reply's headers as text (UTF-8 where they are, else Latin-1), built on demand."""
        if self._headers is None:
            self._headers = CIMultiDict(
                (name.decode("latin-1"), header_text(value)) for name, value in self.raw_headers
            )
        return self._headers

    @property
    def read_timeout(self) -> float:
        """Seconds the backend may stay silent while the body is awaited."""
        return self._conn.pool.read_timeout

    @property
    def at_eof(self) -> bool:
        """True when the whole body has been read."""
        return self._complete and not self._chunks

    async def read(self) -> bytes:
        """The next piece of the body; ``b""`` at its end. Raises BodyError when it breaks."""
        while not self._chunks:
            if self._complete:
                return b""
            if self._error is not None:
                raise self._error
            await self._wait()
        chunks = self._chunks
        data = chunks.popleft() if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        self._buffered = 0
        self._conn.consumer_caught_up()
        return data

    async def read_all(self) -> bytes:
        """The rest of the body, whole."""
        parts = []
        while data := await self.read():
            parts.append(data)
        return b"".join(parts)

    async def read_exactly(self, count: int) -> bytes:
        """The next ``count`` bytes of the body; BodyError if it ends before."""
        parts: list[bytes] = []
        got = 0
        while got < count:
            data = await self.read()
            if not data:
                raise BodyError(f"backend {self._conn.pool.origin} ended its body early")
            parts.append(data)
            got += len(data)
        whole = b"".join(parts)
        if got > count:
            # Bytes past what was wanted stay unread: the connection is not reused.
            self._chunks.appendleft(whole[count:])
            self._buffered += got - count
        return whole[:count]

    def take_buffered(self) -> bytes:
        """What has been read of the body so far, leaving nothing buffered."""
        data = b"".join(self._chunks)
        self._chunks.clear()
        self._buffered = 0
        return data

    def detach_socket(self) -> socket.socket | None:
        """Stop reading the backend so the rest of the body stays in the kernel; its socket.

        For splice(2): call ``take_buffered`` first, then move the body's remaining
        bytes off the socket, then ``spliced_to_end`` (or ``close``).
        """
        return self._conn.detach()

    def spliced_to_end(self) -> None:
        """The body's remaining bytes were taken off the socket by the caller."""
        self._complete = True
        self._conn.body_done_outside()

    def release(self) -> None:
        """Hand the connection back: to the pool if the reply was read to its end."""
        self._conn.release(self)

    def close(self) -> None:
        """Drop the connection, whatever state the reply is in."""
        self._conn.close()

    # --- fed by the connection ----------------------------------------------------------

    def _feed(self, data: bytes) -> None:
        self._chunks.append(data)
        self._buffered += len(data)
        self._wake()

    def _finish(self) -> None:
        self._complete = True
        self._wake()

    def _fail(self, exc: BaseException) -> None:
        if not self._complete and self._error is None:
            self._error = exc
            self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _wait(self) -> None:
        conn = self._conn
        waiter = self._waiter = conn.loop.create_future()
        timer = conn.loop.call_later(conn.pool.read_timeout, self._timed_out, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None

    def _timed_out(self, waiter: asyncio.Future[None]) -> None:
        if not waiter.done():
            self._fail(
                BodyTimeout(f"backend silent for {self._conn.pool.read_timeout:g}s mid-reply")
            )


_IDLE, _WAIT_HEAD, _BODY, _DONE = range(4)


class _Connection(asyncio.Protocol):
    """One TCP connection to the backend; carries one request at a time."""

    def __init__(self, pool: UpstreamPool) -> None:
        self.pool = pool
        self.loop = pool.loop
        self.transport: asyncio.Transport | None = None
        self.state = _IDLE
        self.reusable = True
        self.closed = False
        self.detached = False
        self.reading_paused = False
        self.head_only = False
        self.close_delimited = False
        self.parser: httptools.HttpResponseParser | None = None
        self.response: UpstreamResponse | None = None
        self.head: asyncio.Future[UpstreamResponse] | None = None
        self.drain_waiter: asyncio.Future[None] | None = None
        self.write_paused = False
        self.idle_since = 0.0
        self.got_bytes = False
        self._status = 0
        self._raw_headers: list[tuple[bytes, bytes]] = []

    # --- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike.
        self.transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self.got_bytes = True
        if self.state in (_IDLE, _DONE) or self.parser is None:
            # Nothing was asked: these bytes belong to no request. Never reuse.
            self.reusable = False
            if self.state == _IDLE:
                self.close()
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            self._broken(f"reply could not be handled: {exc.__context__ or exc}")
        except httptools.HttpParserError as exc:
            self._broken(f"sent a malformed reply: {exc}")

    def eof_received(self) -> bool | None:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.reusable = False
        self.pool._forget(self)
        if self.state == _BODY and self.close_delimited and exc is None:
            self._message_done()
        elif self.state in (_WAIT_HEAD, _BODY):
            why = "closed the connection" if exc is None else f"reset the connection ({exc})"
            self._broken(why)
        waiter = self.drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(ConnectionResetError("backend connection lost"))

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        waiter = self.drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # --- httptools callbacks ------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self.state == _DONE or (self.state == _BODY and self.head_only):
            # A second reply to one request: the connection is out of step.
            self.reusable = False
            raise _Unsolicited
        self._raw_headers = []

    def on_header(self, name: bytes, value: bytes) -> None:
        self._raw_headers.append((name, value))

    def on_headers_complete(self) -> None:
        assert self.parser is not None
        status = self.parser.get_status_code()
        if 100 <= status < 200:
            if status == 101:
                raise _Unsolicited("the backend switched protocols")
            return  # interim reply: the real one follows
        response = UpstreamResponse(self, status, "")
        response.raw_headers = raw = self._raw_headers
        for name, value in raw:
            # Only the framing is read here; the rest waits for whoever asks.
            if len(name) == 14 and name.lower() == b"content-length":
                if value.isdigit():
                    response.content_length = int(value)
            elif len(name) == 17 and name.lower() == b"transfer-encoding":
                response.chunked = b"chunked" in value.lower()
        no_body = self.head_only or status in (204, 304)
        if no_body:
            response._complete = True
            if not self.parser.should_keep_alive():
                self.reusable = False
        elif response.content_length is None and not response.chunked:
            self.close_delimited = True
            self.reusable = False
        self.response = response
        self.state = _BODY
        if no_body:
            self._message_done()
        head = self.head
        if head is not None and not head.done():
            head.set_result(response)

    def on_body(self, body: bytes) -> None:
        response = self.response
        if response is None or self.state != _BODY or self.head_only:
            self.reusable = False
            raise _Unsolicited
        response._feed(body)
        if response._buffered > READ_BUFFER and not self.reading_paused:
            self.reading_paused = True
            assert self.transport is not None
            self.transport.pause_reading()

    def on_message_complete(self) -> None:
        assert self.parser is not None
        if self.state != _BODY:
            return  # end of an interim 1xx reply
        if self.head_only or (self.response is not None and self.response.status in (204, 304)):
            return  # already done at its head
        if not self.parser.should_keep_alive():
            self.reusable = False
        self._message_done()

    # --- the request ----------------------------------------------------------------------

    def _message_done(self) -> None:
        self.state = _DONE
        if self.response is not None:
            self.response._finish()

    def _broken(self, why: str) -> None:
        self.reusable = False
        if self.state == _WAIT_HEAD:
            head = self.head
            if head is not None and not head.done():
                head.set_exception(BackendError(502, f"backend {self.pool.origin} {why}"))
        elif self.state == _BODY and self.response is not None:
            self.response._fail(BodyError(f"backend {self.pool.origin} {why}"))
        self.close()

    async def send(
        self,
        method: str,
        head: bytes,
        body: bytes | AsyncIterable[bytes] | None,
        chunked: bool,
    ) -> UpstreamResponse:
        """Write a request; wait for its reply's head."""
        assert self.transport is not None
        self.state = _WAIT_HEAD
        self.head_only = method == "HEAD"
        self.got_bytes = False
        self.parser = httptools.HttpResponseParser(self)
        head_future: asyncio.Future[UpstreamResponse] = self.loop.create_future()
        self.head = head_future
        try:
            if body is None or isinstance(body, bytes):
                self.transport.write(head + body if body else head)
            else:
                self.transport.write(head)
                try:
                    await self._send_stream(body, chunked)
                except (ConnectionError, TimeoutError) as exc:
                    if not head_future.done():
                        why = "stopped reading" if isinstance(exc, TimeoutError) else "closed"
                        raise BackendError(
                            502,
                            f"backend {self.pool.origin} {why} while the request body was sent",
                        ) from None
            timer = self.loop.call_later(self.pool.read_timeout, self._head_timed_out)
            try:
                return await head_future
            finally:
                timer.cancel()
        finally:
            # Whatever happens to this connection later is nobody's reply any more.
            self.head = None
            if head_future.done() and not head_future.cancelled():
                head_future.exception()

    async def _send_stream(self, body: AsyncIterable[bytes], chunked: bool) -> None:
        assert self.transport is not None
        async for data in body:
            if self.state != _WAIT_HEAD or self.closed:
                # The backend answered (or gave up) before taking it all: the request
                # was cut short, so the connection cannot carry another.
                self.reusable = False
                return
            if chunked:
                if data:
                    self.transport.write(b"%x\r\n%s\r\n" % (len(data), data))
            else:
                self.transport.write(data)
            if self.write_paused:
                self.drain_waiter = self.loop.create_future()
                try:
                    async with asyncio.timeout(self.pool.read_timeout):
                        await self.drain_waiter
                finally:
                    self.drain_waiter = None
        if chunked and not self.closed:
            self.transport.write(b"0\r\n\r\n")

    def _head_timed_out(self) -> None:
        head = self.head
        if head is not None and not head.done():
            head.set_exception(
                BackendError(
                    504,
                    f"backend {self.pool.origin} did not answer within {self.pool.read_timeout:g}s",
                )
            )
        self.reusable = False
        self.close()

    def consumer_caught_up(self) -> None:
        if self.reading_paused and not self.detached and self.transport is not None:
            self.reading_paused = False
            self.transport.resume_reading()

    def detach(self) -> socket.socket | None:
        if self.transport is None or self.closed:
            return None
        if self.transport.get_extra_info("sslcontext") is not None:
            return None
        sock = self.transport.get_extra_info("socket")
        if sock is None:
            return None
        self.detached = True
        if not self.reading_paused:
            self.reading_paused = True
            self.transport.pause_reading()
        return sock  # type: ignore[no-any-return]

    def body_done_outside(self) -> None:
        # The parser saw only part of the body; it is done with, so is its framing.
        if self.parser is not None and not self.parser.should_keep_alive():
            self.reusable = False
        self.state = _DONE

    def release(self, response: UpstreamResponse) -> None:
        if self.state != _DONE or not response.at_eof or not self.reusable or self.closed:
            self.close()
            return
        self.state = _IDLE
        self.parser = None
        self.response = None
        self.head = None
        self.detached = False
        if self.reading_paused and self.transport is not None:
            self.reading_paused = False
            self.transport.resume_reading()
        self.pool._put_idle(self)

    def close(self) -> None:
        self.reusable = False
        if self.transport is not None and not self.closed:
            self.closed = True
            self.transport.close()
        self.pool._forget(self)


class _Unsolicited(Exception):
    """Bytes from the backend that answer no request."""


def header_text(value: bytes) -> str:
    """A header value as text: UTF-8 when it is, otherwise byte for byte (Latin-1)."""
    if value.isascii():
        return value.decode("ascii")
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")


class UpstreamPool:
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
        self._idle: list[_Connection] = []
        self._sweeper: asyncio.TimerHandle | None = None
        self._all: set[_Connection] = set()
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
    ) -> UpstreamResponse:
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
            except BackendError:
                # A kept-alive connection the backend closed just as we reused it: the
                # request never reached it, so asking again on a new one is safe.
                if reused and replayable and conn.closed and not conn.got_bytes:
                    continue
                raise
            except BaseException:
                conn.close()
                raise

    async def _connect(self) -> _Connection:
        loop = self.loop
        try:
            async with asyncio.timeout(self.connect_timeout):
                transport, conn = await loop.create_connection(
                    lambda: _Connection(self), self.host, self.port
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

    def _take_idle(self) -> _Connection | None:
        # The most recently used first: it is the least likely to have been closed.
        while self._idle:
            conn = self._idle.pop()
            if not conn.closed and conn.reusable:
                return conn
        return None

    def _put_idle(self, conn: _Connection) -> None:
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

    def _forget(self, conn: _Connection) -> None:
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
    pool: UpstreamPool,
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
