"""Accepting connections: at most a cap per listener, and through running out of descriptors.

asyncio's and uvloop's own servers accept whatever arrives. A flood on one port (1,100
half-sent heads on the RC port) then takes every descriptor of the process, and WebDAV
reads fail with nothing in the log. Here each listener accepts at most
``max_connections`` at once and leaves the rest waiting in the kernel's backlog; and
when accept() fails for want of descriptors or memory (EMFILE, ENFILE, ENOBUFS, ENOMEM)
it says so, waits a moment, longer each time it fails again, and tries again.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from collections.abc import Callable

log = logging.getLogger("shardproxy.listeners.accept")

# accept() errors that say "not now": the process or machine is short of something.
OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
# accept() errors about one connection, which went away before it was taken.
GONE = frozenset({errno.ECONNABORTED, errno.EPROTO, errno.EPERM})
# Seconds to wait after running out, doubling while it goes on.
FIRST_BACKOFF = 0.1
MAX_BACKOFF = 2.0
# Connections taken per readiness event before other work gets the loop.
ACCEPT_BURST = 64
BACKLOG = 1024

# Makes the protocol of one accepted connection; it calls ``closed`` once, when it ends.
ProtocolFactory = Callable[[Callable[[], None]], asyncio.Protocol]


def listening_sockets(host: str | None, port: int, *, reuse_port: bool) -> list[socket.socket]:
    """Non-blocking TCP sockets listening on every address ``host`` names, as asyncio's
    own server binds them (IPv6 sockets IPv6 only; SO_REUSEPORT if asked)."""
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    socks: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            socks.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(BACKLOG)
            sock.setblocking(False)
            # Port 0: every address of this listener gets the port the first one got.
            port = port or sock.getsockname()[1]
    except BaseException:
        for sock in socks:
            sock.close()
        raise
    return socks


class Acceptor(asyncio.AbstractServer):
    """Accepts on a listener's sockets, keeping at most ``max_connections`` open in all."""

    def __init__(
        self,
        socks: list[socket.socket],
        protocol_factory: ProtocolFactory,
        *,
        name: str,
        max_connections: int,
        setting: str,
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self.socks = socks
        self.protocol_factory = protocol_factory
        self.name = name
        self.max_connections = max_connections
        self.setting = setting
        self.open = 0
        self._armed = False
        self._closed = False
        self._backoff = 0.0
        self._retry: asyncio.TimerHandle | None = None
        self._failures = 0
        self._at_cap_since_log = False
        self._starting: set[asyncio.Task[None]] = set()

    # --- AbstractServer ---------------------------------------------------------------

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        return () if self._closed else tuple(self.socks)

    def close(self) -> None:
        """Stop accepting and close the listening socket (open connections stay)."""
        if self._closed:
            return
        self._closed = True
        self._disarm()
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        for sock in self.socks:
            sock.close()

    def is_serving(self) -> bool:
        return not self._closed

    async def start_serving(self) -> None:
        self.start()

    async def serve_forever(self) -> None:  # pragma: no cover - not how shardproxy runs
        self.start()
        await asyncio.Event().wait()

    async def wait_closed(self) -> None:
        return None

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self.loop

    def close_clients(self) -> None:  # pragma: no cover - aiohttp closes its own
        return None

    def abort_clients(self) -> None:  # pragma: no cover - aiohttp closes its own
        return None

    # --- accepting --------------------------------------------------------------------

    def start(self) -> None:
        """Begin accepting."""
        self._arm()

    def connection_closed(self) -> None:
        """One of this listener's connections closed: room for another."""
        self.open -= 1
        if self.open < self.max_connections and self._retry is None:
            if self._at_cap_since_log:
                self._at_cap_since_log = False
                log.info(
                    "%s listener below its cap of %d connections again; accepting",
                    self.name,
                    self.max_connections,
                )
            self._arm()

    def _arm(self) -> None:
        if not self._armed and not self._closed:
            for sock in self.socks:
                self.loop.add_reader(sock.fileno(), self._accept_some, sock)
            self._armed = True

    def _disarm(self) -> None:
        if self._armed:
            for sock in self.socks:
                self.loop.remove_reader(sock.fileno())
            self._armed = False

    def _accept_some(self, sock: socket.socket) -> None:
        for _ in range(ACCEPT_BURST):
            if self.open >= self.max_connections:
                self._at_cap()
                return
            try:
                conn, _ = sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in GONE:
                    continue
                # Out of descriptors or memory, or something unforeseen: never a busy loop.
                self._out_of_resources(exc)
                return
            if self._failures:
                log.warning(
                    "%s listener accepts again after %d failed attempt(s)",
                    self.name,
                    self._failures,
                )
                self._failures = 0
                self._backoff = 0.0
            self.open += 1
            task = self.loop.create_task(self._serve(conn))
            self._starting.add(task)
            task.add_done_callback(self._starting.discard)

    async def _serve(self, conn: socket.socket) -> None:
        released = False

        def closed() -> None:
            nonlocal released
            if not released:
                released = True
                self.connection_closed()

        try:
            conn.setblocking(False)
            if conn.family in (socket.AF_INET, socket.AF_INET6):
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            await self.loop.connect_accepted_socket(lambda: self.protocol_factory(closed), conn)
        except Exception as exc:  # the client left before its transport was made
            log.debug("%s listener: a connection went before it was set up: %s", self.name, exc)
            conn.close()
            closed()

    def _at_cap(self) -> None:
        self._disarm()
        if not self._at_cap_since_log:
            self._at_cap_since_log = True
            log.warning(
                "%s listener has %d connections open, its cap (%s): new ones wait in the "
                "kernel's backlog until one closes",
                self.name,
                self.open,
                self.setting,
            )

    def _out_of_resources(self, exc: OSError) -> None:
        """accept() failed: stop, say why (a few lines, never one per attempt), retry later."""
        self._disarm()
        self._failures += 1
        self._backoff = min(MAX_BACKOFF, max(FIRST_BACKOFF, self._backoff * 2))
        if self._backoff < MAX_BACKOFF or self._failures % 30 == 1:
            advice = (
                "Raise the open-file limit (LimitNOFILE=, ulimit -n) or lower the caps"
                if exc.errno in OUT_OF_RESOURCES
                else "This is unexpected; please report it"
            )
            log.warning(
                "%s listener cannot accept: %s (%s); %d connection(s) of its own open; "
                "trying again in %g s. %s",
                self.name,
                exc.strerror,
                errno.errorcode.get(exc.errno or 0, exc.errno),
                self.open,
                self._backoff,
                advice,
            )
        self._retry = self.loop.call_later(self._backoff, self._retry_now)

    def _retry_now(self) -> None:
        self._retry = None
        if self.open < self.max_connections:
            self._arm()
        else:
            self._at_cap()
