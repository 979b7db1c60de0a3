"""Zero-copy body relay: the backend's socket to the client's socket through a pipe.

A GET of a film is a known number of bytes that the proxy never needs to see. On Linux,
``splice(2)`` moves them socket -> pipe -> socket by handing page references from one
socket buffer to the other, so neither the bytes nor Python touch them on the way.

aiohttp owns both sockets, so the fast path borrows them for the length of one body:

1. Take what aiohttp has already read of the body (the reply's buffer and whatever its
   parser held back), then pause reading on the backend connection so nothing more is
   consumed behind our back.
2. Send the reply headers and those bytes the ordinary way, and wait until the client
   transport's write buffer is empty: from then on the socket's byte stream is ours.
3. Splice the rest, ``Content-Length`` bytes exactly, on duplicated descriptors (the
   event loop refuses to watch a descriptor a transport owns), driven by readiness
   callbacks on the event loop, with the backend's read timeout applied to its silences.
4. Give the sockets back. The client connection never noticed: it stays keep-alive. The
   backend connection is marked at the end of its body and returns to the pool; when
   only part of the body was wanted it is left unfinished, and the caller closes it.

Anything the fast path does not fit (TLS, chunked or unknown length, small bodies,
another platform) is declined before a byte is sent, and the caller copies instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp
from aiohttp import web
from aiohttp.client_proto import ResponseHandler

# Bodies shorter than this are cheaper to copy than to set a pipe up for.
SPLICE_MIN = 1 << 20
# Pipe capacity asked for: 1 MiB is the default cap for unprivileged processes
# (/proc/sys/fs/pipe-max-size). Refused sizes leave the kernel default (64 KiB).
PIPE_SIZE = 1 << 20
# Bytes moved in one go before the pump lets other connections have the loop.
BURST = 8 << 20

_FLAGS = getattr(os, "SPLICE_F_MOVE", 0) | getattr(os, "SPLICE_F_NONBLOCK", 0)
_OUT_MORE = getattr(os, "SPLICE_F_MORE", 0)
_CLIENT_GONE = frozenset({errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN, errno.ESHUTDOWN})

# Switched off by setting this False (the benchmark does, to measure the copying path).
enabled: bool = sys.platform == "linux" and hasattr(os, "splice")


@dataclass
class _Borrowed:
    """The two sockets of one transfer and what must be sent through them."""

    protocol: ResponseHandler
    backend_fd: int
    client_transport: asyncio.Transport
    client_fd: int
    to_send: int
    whole_body: bool
    read_timeout: float | None


async def splice_body(
    request: web.Request,
    upstream: aiohttp.ClientResponse,
    response: web.StreamResponse,
    limit: int | None,
    on_sent: Callable[[int, bool], None] | None = None,
) -> bool:
    """Relay the rest of ``upstream``'s body to the prepared ``response`` with splice(2).

    Sends the first ``limit`` bytes (all of them when None). Returns False, having sent
    nothing, when the transfer does not fit the fast path. ``on_sent(count, spliced)`` is
    told how many bytes were written the ordinary way (what aiohttp had read already) and
    how many went through the pipe, also when the transfer stops early. Raises like the
    copying path:
    ``ClientPayloadError``/``SocketTimeoutError`` when the backend breaks off or stalls,
    ``ClientConnectionResetError`` when the client is gone.
    """
    borrowed = _borrow(request, upstream, response, limit)
    if borrowed is None:
        return False
    content = upstream.content
    head = _take_buffered(content)
    if content.is_eof() or len(head) >= borrowed.to_send:
        head = head[: borrowed.to_send]
        await response.write(head)
        if on_sent is not None:
            on_sent(len(head), False)
        return True
    # The body goes on past what aiohttp has read: keep the rest in the kernel for us.
    borrowed.protocol.pause_reading()
    # An empty write still sends the headers aiohttp holds back for coalescing.
    await response.write(head)
    if on_sent is not None:
        on_sent(len(head), False)
    await _flush(borrowed.client_transport, request)
    remaining = borrowed.to_send - len(head)
    moved = [0]
    try:
        await _pump(borrowed, remaining, moved)
    finally:
        request.writer.output_size += moved[0]
        if on_sent is not None:
            on_sent(moved[0], True)
    if borrowed.whole_body:
        # The body was read to its end, only not by aiohttp: say so, which resumes
        # reading and puts the connection back in the pool.
        content.feed_eof()
    return True


def _borrow(
    request: web.Request,
    upstream: aiohttp.ClientResponse,
    response: web.StreamResponse,
    limit: int | None,
) -> _Borrowed | None:
    """Check that the transfer fits the fast path and find its sockets, or None."""
    if not enabled:
        return None
    length = upstream.content_length
    if length is None or "chunked" in upstream.headers.get("Transfer-Encoding", "").lower():
        return None
    to_send = length if limit is None else min(limit, length)
    if to_send < SPLICE_MIN or response.content_length != to_send:
        return None
    if response.chunked or response.compression:
        return None
    connection = upstream.connection
    if connection is None or connection.protocol is None or connection.transport is None:
        return None
    backend_fd = _plain_socket_fd(connection.transport)
    client_transport = request.transport
    if client_transport is None or client_transport.is_closing():
        return None
    client_fd = _plain_socket_fd(client_transport)
    if backend_fd is None or client_fd is None or upstream.content.exception() is not None:
        return None
    protocol = connection.protocol
    return _Borrowed(
        protocol,
        backend_fd,
        client_transport,
        client_fd,
        to_send,
        whole_body=to_send == length,
        read_timeout=protocol.read_timeout,
    )


def _plain_socket_fd(transport: asyncio.BaseTransport) -> int | None:
    """The descriptor of a transport's socket, or None when bytes on it are not ours (TLS)."""
    if transport.get_extra_info("sslcontext") is not None:
        return None
    sock = transport.get_extra_info("socket")
    if sock is None:
        return None
    fd = sock.fileno()
    return fd if isinstance(fd, int) and fd >= 0 else None


def _take_buffered(content: aiohttp.StreamReader) -> bytes:
    """Everything aiohttp has read of the body so far, leaving its buffers empty.

    Draining below the low-water mark makes aiohttp feed its parser whatever it held
    back while paused, so this loops until that is gone too.
    """
    chunks = []
    while chunk := content.read_nowait():
        chunks.append(chunk)
    return b"".join(chunks)


async def _flush(transport: asyncio.Transport, request: web.Request) -> None:
    """Wait until everything written through the client transport is in the kernel."""
    if transport.get_write_buffer_size() == 0:
        return
    low, high = transport.get_write_buffer_limits()
    # With no allowance the transport pauses the writer until its buffer is empty, and
    # aiohttp's drain() waits for exactly that.
    transport.set_write_buffer_limits(high=0, low=0)
    try:
        await request.writer.drain()
    finally:
        if not transport.is_closing():
            transport.set_write_buffer_limits(high=high, low=low)
    if transport.is_closing():
        raise aiohttp.ClientConnectionResetError("Cannot write to closing transport")


async def _pump(borrowed: _Borrowed, count: int, moved: list[int]) -> None:
    """Move ``count`` bytes from the backend socket to the client socket.

    ``moved[0]`` says how many reached the client socket, however the pump ended.
    """
    loop = asyncio.get_running_loop()
    backend_fd = os.dup(borrowed.backend_fd)
    try:
        client_fd = os.dup(borrowed.client_fd)
    except OSError:
        os.close(backend_fd)
        raise
    pump = SplicePump(loop, backend_fd, client_fd, count, borrowed.read_timeout)
    try:
        await pump.run()
    finally:
        moved[0] = count - pump.to_write
        pump.close()
        os.close(client_fd)
        os.close(backend_fd)


class SplicePump:
    """Moves exactly ``count`` bytes ``src`` -> pipe -> ``dst`` on readiness callbacks.

    Both descriptors must be non-blocking sockets this object may watch on the loop.
    Waits for the source only when the pipe is empty and for the destination only when
    it holds bytes, so neither wait can spin on a ready descriptor it cannot use.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        src: int,
        dst: int,
        count: int,
        read_timeout: float | None,
    ) -> None:
        self.loop = loop
        self.src = src
        self.dst = dst
        self.to_read = count
        self.to_write = count
        self.in_pipe = 0
        self.read_timeout = read_timeout
        self.pipe_r, self.pipe_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.pipe_size = _grow_pipe(self.pipe_w)
        self.done: asyncio.Future[None] = loop.create_future()
        self.watching_src = False
        self.watching_dst = False
        self.idle_since: float | None = None
        self.watchdog: asyncio.TimerHandle | None = None

    async def run(self) -> None:
        """Pump until every byte is delivered; raise what stopped it otherwise."""
        if self.read_timeout:
            self.watchdog = self.loop.call_later(self.read_timeout, self._check_idle)
        self._pump()
        await self.done

    def close(self) -> None:
        """Stop watching and release the pipe; the sockets belong to the caller."""
        self._watch(src=False, dst=False)
        if self.watchdog is not None:
            self.watchdog.cancel()
            self.watchdog = None
        for fd in (self.pipe_r, self.pipe_w):
            with contextlib.suppress(OSError):
                os.close(fd)
        self.pipe_r = self.pipe_w = -1
        if not self.done.done():
            self.done.cancel()
        elif not self.done.cancelled():
            # Seen here if the awaiting task was cancelled first; nothing more to report.
            self.done.exception()

    def _pump(self) -> None:
        budget = BURST
        while not self.done.done():
            got_input = False
            if self.to_read and self.in_pipe < self.pipe_size:
                try:
                    moved = os.splice(
                        self.src,
                        self.pipe_w,
                        min(self.to_read, self.pipe_size - self.in_pipe),
                        flags=_FLAGS,
                    )
                except BlockingIOError:
                    # The socket is empty, or the pipe's slots are full of short pages.
                    pass
                except InterruptedError:
                    continue
                except OSError as exc:
                    self._fail(self._backend_broke(f"{exc.strerror}"))
                    return
                else:
                    if moved == 0:
                        self._fail(self._backend_broke("the connection was closed"))
                        return
                    self.to_read -= moved
                    self.in_pipe += moved
                    self.idle_since = None
                    got_input = True
            if self.in_pipe:
                more = _OUT_MORE if self.to_write > self.in_pipe else 0
                try:
                    moved = os.splice(self.pipe_r, self.dst, self.in_pipe, flags=_FLAGS | more)
                except BlockingIOError:
                    self._watch(src=False, dst=True)
                    return
                except InterruptedError:
                    continue
                except OSError as exc:
                    if exc.errno in _CLIENT_GONE:
                        self._fail(aiohttp.ClientConnectionResetError(exc.strerror))
                    else:
                        self._fail(exc)
                    return
                self.in_pipe -= moved
                self.to_write -= moved
                if not self.to_write:
                    self.done.set_result(None)
                    return
                budget -= moved
                if budget <= 0:
                    # Others get a turn; the callbacks still registered are harmless.
                    self.loop.call_soon(self._pump)
                    return
            elif not got_input:
                if self.idle_since is None:
                    self.idle_since = self.loop.time()
                self._watch(src=True, dst=False)
                return

    def _watch(self, *, src: bool, dst: bool) -> None:
        """Register exactly the readiness callbacks asked for; changes only what differs."""
        if src != self.watching_src:
            if src:
                self.loop.add_reader(self.src, self._pump)
            else:
                self.loop.remove_reader(self.src)
            self.watching_src = src
        if dst != self.watching_dst:
            if dst:
                self.loop.add_writer(self.dst, self._pump)
            else:
                self.loop.remove_writer(self.dst)
            self.watching_dst = dst

    def _check_idle(self) -> None:
        assert self.read_timeout
        waited = 0.0 if self.idle_since is None else self.loop.time() - self.idle_since
        if waited >= self.read_timeout:
            self._fail(aiohttp.SocketTimeoutError("Timeout on reading data from socket"))
            return
        self.watchdog = self.loop.call_later(self.read_timeout - waited, self._check_idle)

    def _backend_broke(self, why: str) -> aiohttp.ClientPayloadError:
        sent = self.to_read
        return aiohttp.ClientPayloadError(
            f"Response payload is not completed: {why} with {sent} bytes still to come"
        )

    def _fail(self, exc: BaseException) -> None:
        self._watch(src=False, dst=False)
        if not self.done.done():
            self.done.set_exception(exc)


def _grow_pipe(fd: int) -> int:
    """Ask for a PIPE_SIZE pipe; the capacity actually granted."""
    with contextlib.suppress(OSError):
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
    return fcntl.fcntl(fd, fcntl.F_GETPIPE_SZ)
