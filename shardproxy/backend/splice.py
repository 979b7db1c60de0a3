"""Zero-copy body relay: the backend's socket to the client's socket through a pipe.

A GET of a film is a known number of bytes that the proxy never needs to see. On Linux,
``splice(2)`` moves them socket -> pipe -> socket by handing page references from one
socket buffer to the other, so neither the bytes nor Python touch them on the way.

The backend connection is ours (``upstream``), so it lends its socket through a public
method; the client socket is aiohttp's, borrowed through public transport calls:

1. The backend connection stops reading and hands over what it had already read of the
   body; the rest stays in the kernel for us.
2. Send the reply headers and those bytes the ordinary way, and wait until the client
   transport's write buffer is empty: from then on the socket's byte stream is ours.
3. Splice the rest, exactly, on duplicated descriptors (the event loop refuses to watch
   a descriptor a transport owns), driven by readiness callbacks, with the backend's
   read timeout applied to its silences and the send timeout to the client's.
4. Give the sockets back. The client connection stays keep-alive; the backend one goes
   back to the pool when its whole body went through, and is closed otherwise.

Anything the fast path does not fit (TLS, chunked or unknown length, small bodies,
another platform) is declined before a byte is sent, and the caller copies instead.
Set-up failures (no descriptors left, say) raise OSError after closing everything this
module opened; the caller then cuts the client off, as for a backend that broke off.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import logging
import os
import sys
from collections.abc import Callable

from aiohttp import web

from shardproxy.backend.reply import BackendReply, BodyError, BodyTimeout
from shardproxy.core.ranges import BodyCut

log = logging.getLogger("shardproxy.backend.splice")

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


class ClientStalled(ConnectionError):
    """The client read nothing for longer than the send timeout."""


async def splice_body(
    request: web.BaseRequest,
    upstream: BackendReply,
    response: web.StreamResponse,
    cut: BodyCut,
    send_timeout: float,
    *,
    on_sent: Callable[[int, bool], None] | None = None,
) -> bool:
    """Relay the rest of ``upstream``'s body to the prepared ``response`` with splice(2).

    Sends the answer's part of the body (``cut``). Returns False, having sent
    nothing, when the transfer does not fit the fast path. ``on_sent(count, spliced)``
    is told how many bytes were written the ordinary way (what was read already) and how
    many went through the pipe, also when the transfer stops early. Raises like the
    copying path:
    BodyError when the backend breaks off or stalls, ConnectionError when the client is
    gone or reads nothing, OSError when the transfer cannot be set up.
    """
    length = upstream.content_length
    if not enabled or length is None or upstream.chunked:
        return False
    to_send = cut.size_of(length)
    if to_send < SPLICE_MIN or response.content_length != to_send:
        return False
    if response.chunked or response.compression:
        return False
    client_transport = request.transport
    if client_transport is None or client_transport.is_closing():
        return False
    client_fd = _plain_socket_fd(client_transport)
    if client_fd is None:
        return False
    backend_sock = upstream.detach_socket()
    if backend_sock is None:
        return False
    head = cut.take(upstream.take_buffered())
    if upstream.at_eof or len(head) >= to_send:
        await response.write(head)
        if on_sent is not None:
            on_sent(len(head), False)
        return True
    # An empty write still sends the headers aiohttp holds back for coalescing.
    await response.write(head)
    if on_sent is not None:
        on_sent(len(head), False)
    await _flush(client_transport, request)
    moved = [0]
    try:
        await _pump(
            backend_sock.fileno(),
            client_fd,
            to_send - len(head),
            upstream.read_timeout,
            send_timeout,
            moved=moved,
        )
    finally:
        if on_sent is not None:
            on_sent(moved[0], True)
    if to_send == length:
        upstream.spliced_to_end()
    return True


def _plain_socket_fd(transport: asyncio.BaseTransport) -> int | None:
    """The descriptor of a transport's socket, or None when bytes on it are not ours (TLS)."""
    if transport.get_extra_info("sslcontext") is not None:
        return None
    sock = transport.get_extra_info("socket")
    if sock is None:
        return None
    fd = sock.fileno()
    return fd if isinstance(fd, int) and fd >= 0 else None


async def _flush(transport: asyncio.Transport, request: web.BaseRequest) -> None:
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
        raise ConnectionResetError("the client closed its connection")


async def _pump(
    backend_fd: int,
    client_fd: int,
    count: int,
    read_timeout: float,
    send_timeout: float,
    *,
    moved: list[int],
) -> None:
    """Move ``count`` bytes from the backend socket to the client socket.

    Everything opened here is closed here, whichever step fails. ``moved[0]`` says how
    many reached the client socket, however the pump ended.
    """
    loop = asyncio.get_running_loop()
    with contextlib.ExitStack() as opened:
        src = os.dup(backend_fd)
        opened.callback(os.close, src)
        dst = os.dup(client_fd)
        opened.callback(os.close, dst)
        pump = SplicePump(
            loop, src, dst, count, read_timeout=read_timeout, send_timeout=send_timeout
        )
        opened.callback(pump.close)
        try:
            await pump.run()
        finally:
            moved[0] = count - pump.to_write


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
        *,
        read_timeout: float,
        send_timeout: float,
    ) -> None:
        self.loop = loop
        self.src = src
        self.dst = dst
        self.to_read = count
        self.to_write = count
        self.in_pipe = 0
        self.read_timeout = read_timeout
        self.send_timeout = send_timeout
        self.pipe_r, self.pipe_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            self.pipe_size = _grow_pipe(self.pipe_w)
        except OSError:
            os.close(self.pipe_r)
            os.close(self.pipe_w)
            raise
        self.done: asyncio.Future[None] = loop.create_future()
        self.watching_src = False
        self.watching_dst = False
        # When the backend fell silent / the client stopped taking bytes, if it has.
        self.idle_since: float | None = None
        self.blocked_since: float | None = None
        self.watchdog: asyncio.TimerHandle | None = None

    async def run(self) -> None:
        """Pump until every byte is delivered; raise what stopped it otherwise."""
        self.watchdog = self.loop.call_later(self._period, self._check_idle)
        self._pump()
        await self.done

    @property
    def _period(self) -> float:
        return min(self.read_timeout, self.send_timeout)

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
                    if self.blocked_since is None:
                        self.blocked_since = self.loop.time()
                    self._watch(src=False, dst=True)
                    return
                except InterruptedError:
                    continue
                except OSError as exc:
                    if exc.errno in _CLIENT_GONE:
                        self._fail(ConnectionResetError(exc.errno, exc.strerror))
                    else:
                        self._fail(exc)
                    return
                self.in_pipe -= moved
                self.to_write -= moved
                self.blocked_since = None
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
        now = self.loop.time()
        if self.idle_since is not None and now - self.idle_since >= self.read_timeout:
            self._fail(BodyTimeout(f"backend silent for {self.read_timeout:g}s mid-reply"))
            return
        if self.blocked_since is not None and now - self.blocked_since >= self.send_timeout:
            log.info(
                "cutting a client that read nothing of its reply for %gs (send_timeout)",
                self.send_timeout,
            )
            self._fail(ClientStalled(f"client read nothing for {self.send_timeout:g}s"))
            return
        self.watchdog = self.loop.call_later(self._period / 2, self._check_idle)

    def _backend_broke(self, why: str) -> BodyError:
        return BodyError(f"backend reply broke off: {why} with {self.to_read} bytes to come")

    def _fail(self, exc: BaseException) -> None:
        self._watch(src=False, dst=False)
        if not self.done.done():
            self.done.set_exception(exc)


def _grow_pipe(fd: int) -> int:
    """Ask for a PIPE_SIZE pipe; the capacity actually granted."""
    with contextlib.suppress(OSError):
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
    return fcntl.fcntl(fd, fcntl.F_GETPIPE_SZ)
