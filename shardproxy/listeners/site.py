"""How every listener is served: an aiohttp site whose connections go through its
``Acceptor`` (the cap, the EMFILE back-off) and its ``Doorkeeper`` (the limits)."""

from __future__ import annotations

from aiohttp import web
from yarl import URL

from shardproxy.listeners.accept import Acceptor, listening_sockets
from shardproxy.listeners.listener import Doorkeeper


class GuardedSite(web.BaseSite):
    """A TCP site like aiohttp's ``TCPSite``, with one listener's limits on its connections."""

    def __init__(
        self, runner: web.BaseRunner, host: str, port: int, *, doors: Doorkeeper, reuse_port: bool
    ) -> None:
        super().__init__(runner)
        self.host = host
        self.port = port
        self.doors = doors
        self.reuse_port = reuse_port

    @property
    def name(self) -> str:
        return str(URL.build(scheme="http", host=self.host, port=self.port))

    async def start(self) -> None:
        """Listen and accept (raises OSError when the address cannot be had)."""
        await super().start()
        server = self._runner.server
        assert server is not None
        limits = self.doors.limits
        acceptor = Acceptor(
            listening_sockets(self.host, self.port, reuse_port=self.reuse_port),
            self.doors.protocol_for(server),
            name=limits.name,
            max_connections=limits.max_connections,
            setting=limits.cap_setting,
        )
        acceptor.start()
        self._server = acceptor
        self.port = acceptor.sockets[0].getsockname()[1]
