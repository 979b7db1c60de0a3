"""One backend reply as its consumer reads it: status, headers, then the body piece by piece.

The connection (``connection``) feeds the body in; the consumer reads it, waits for
it at most ``read_timeout`` seconds at a time, or takes the socket for splice(2). The
errors a backend request can end in live here too, beside the reply they break.
"""

from __future__ import annotations

import asyncio
import collections
import socket
from typing import Protocol

from multidict import CIMultiDict


class Backend(Protocol):
    """What a reply and its connection know of the pool they came from."""

    @property
    def origin(self) -> str: ...

    @property
    def read_timeout(self) -> float: ...


class ReplySource(Protocol):
    """The connection a reply is read from (``connection.BackendConnection``).

    A protocol, so that the reply and the connection that feeds it need not import
    each other.
    """

    loop: asyncio.AbstractEventLoop

    @property
    def pool(self) -> Backend: ...

    def consumer_caught_up(self) -> None: ...

    def detach(self) -> socket.socket | None: ...

    def body_done_outside(self) -> None: ...

    def release(self, response: BackendReply) -> None: ...

    def close(self) -> None: ...


class BackendError(Exception):
    """The backend could not be asked or did not answer; ``status`` is 502 or 504."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class BodyError(Exception):
    """A reply body broke off or stalled after its head was passed on."""


class BodyTimeout(BodyError, TimeoutError):
    """The backend fell silent mid-body for longer than the read timeout."""


class BackendReply:
    """One reply's status, headers and body, read as the consumer asks for it."""

    def __init__(self, conn: ReplySource, status: int, reason: str) -> None:
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

    def read_now(self, count: int) -> bytes | None:
        """The next ``count`` bytes of the body if they have all arrived, else None.

        A small reply nearly always arrives with its head: this takes it without
        the awaits (and their coroutines) of read_exactly.
        """
        if self._buffered < count:
            return None
        whole = self.take_buffered()
        self._conn.consumer_caught_up()
        if len(whole) > count:
            # Bytes past what was wanted stay unread: the connection is not reused.
            self._chunks.append(whole[count:])
            self._buffered = len(whole) - count
        return whole[:count]

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

    @property
    def unread(self) -> int:
        """Body bytes received and not yet read by the consumer."""
        return self._buffered

    def feed(self, data: bytes) -> None:
        """A piece of the body has arrived."""
        self._chunks.append(data)
        self._buffered += len(data)
        self._wake()

    def finish(self) -> None:
        """The body has ended where its framing said (or there is none)."""
        self._complete = True
        self._wake()

    def fail(self, exc: BaseException) -> None:
        """The body broke off: ``exc`` is raised to the consumer's next read."""
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
            self.fail(
                BodyTimeout(f"backend silent for {self._conn.pool.read_timeout:g}s mid-reply")
            )


def header_text(value: bytes) -> str:
    """A header value as text: UTF-8 when it is, otherwise byte for byte (Latin-1)."""
    if value.isascii():
        return value.decode("ascii")
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")
