"""One keep-alive HTTP/1.1 connection to the backend (asyncio.Protocol + httptools).

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
import contextlib
import socket
from collections.abc import AsyncIterable
from typing import Protocol, cast

import httptools

from shardproxy.backend.reply import Backend, BackendError, BackendReply, BodyError


class ConnectionHome(Backend, Protocol):
    """The pool a connection belongs to (``pool.BackendPool``), as the connection sees it."""

    @property
    def loop(self) -> asyncio.AbstractEventLoop: ...

    def put_idle(self, conn: BackendConnection) -> None: ...

    def forget(self, conn: BackendConnection) -> None: ...


# Unread body bytes at which the backend socket stops being read.
READ_BUFFER = 1 << 16

_IDLE, _WAIT_HEAD, _BODY, _DONE = range(4)


class BackendConnection(asyncio.Protocol):
    """One TCP connection to the backend; carries one request at a time."""

    def __init__(self, pool: ConnectionHome) -> None:
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
        # True once the parser has seen a final reply to its end (not to a HEAD): it
        # is then ready for the next reply on this connection and is kept for it.
        self.parser_at_rest = False
        self.response: BackendReply | None = None
        self.head: asyncio.Future[BackendReply] | None = None
        self.drain_waiter: asyncio.Future[None] | None = None
        self.write_paused = False
        # When a reply head is overdue (None while no head is awaited), and the one
        # timer that checks it: one timer per connection, re-armed only when it fires
        # early, costs less than a timer made and cancelled for every request.
        self.head_deadline: float | None = None
        self.head_timer: asyncio.TimerHandle | None = None
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
        if self.head_timer is not None:
            self.head_timer.cancel()
            self.head_timer = None
        self.pool.forget(self)
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
        response = BackendReply(self, status, "")
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
            response.finish()
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
        response.feed(body)
        if response.unread > READ_BUFFER and not self.reading_paused:
            self.reading_paused = True
            assert self.transport is not None
            self.transport.pause_reading()

    def on_message_complete(self) -> None:
        assert self.parser is not None
        if self.state != _BODY:
            return  # end of an interim 1xx reply
        if self.head_only:
            return  # already done at its head; the parser still expects a body
        self.parser_at_rest = True
        if self.response is not None and self.response.status in (204, 304):
            return  # already done at its head
        if not self.parser.should_keep_alive():
            self.reusable = False
        self._message_done()

    # --- the request ----------------------------------------------------------------------

    def _message_done(self) -> None:
        self.state = _DONE
        if self.response is not None:
            self.response.finish()

    def _broken(self, why: str) -> None:
        self.reusable = False
        if self.state == _WAIT_HEAD:
            head = self.head
            if head is not None and not head.done():
                head.set_exception(BackendError(502, f"backend {self.pool.origin} {why}"))
        elif self.state == _BODY and self.response is not None:
            self.response.fail(BodyError(f"backend {self.pool.origin} {why}"))
        self.close()

    async def send(
        self,
        method: str,
        head: bytes,
        body: bytes | AsyncIterable[bytes] | None,
        chunked: bool,
    ) -> BackendReply:
        """Write a request; wait for its reply's head."""
        assert self.transport is not None
        self.state = _WAIT_HEAD
        self.head_only = method == "HEAD"
        self.got_bytes = False
        if self.parser is None or not self.parser_at_rest:
            self.parser = httptools.HttpResponseParser(self)
        self.parser_at_rest = False
        head_future: asyncio.Future[BackendReply] = self.loop.create_future()
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
            self.head_deadline = self.loop.time() + self.pool.read_timeout
            if self.head_timer is None:
                self.head_timer = self.loop.call_at(self.head_deadline, self._check_head)
            return await head_future
        finally:
            # Whatever happens to this connection later is nobody's reply any more.
            self.head = None
            self.head_deadline = None
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
            # Not kept while the next piece is awaited: a stalled client holds no body here.
            del data
            if self.write_paused:
                self.drain_waiter = self.loop.create_future()
                try:
                    async with asyncio.timeout(self.pool.read_timeout):
                        await self.drain_waiter
                finally:
                    self.drain_waiter = None
        if chunked and not self.closed:
            self.transport.write(b"0\r\n\r\n")

    def _check_head(self) -> None:
        self.head_timer = None
        deadline = self.head_deadline
        if deadline is None or self.closed:
            return  # no head awaited: the next request arms the timer again
        if self.loop.time() < deadline:
            # Armed for an earlier request: this one's head is not due yet.
            self.head_timer = self.loop.call_at(deadline, self._check_head)
            return
        self._head_timed_out()

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

    def release(self, response: BackendReply) -> None:
        if self.state != _DONE or not response.at_eof or not self.reusable or self.closed:
            self.close()
            return
        self.state = _IDLE
        self.response = None
        self.head = None
        self.detached = False
        if self.reading_paused and self.transport is not None:
            self.reading_paused = False
            self.transport.resume_reading()
        self.pool.put_idle(self)

    def close(self) -> None:
        self.reusable = False
        if self.head_timer is not None:
            self.head_timer.cancel()
            self.head_timer = None
        if self.transport is not None and not self.closed:
            self.closed = True
            self.transport.close()
        self.pool.forget(self)


class _Unsolicited(Exception):
    """Bytes from the backend that answer no request."""
