"""Loopback ports for processes the demo (and the tests) start and then connect to."""

from __future__ import annotations

import random
import socket

# Below the kernel's ephemeral range, so the local end of an outgoing connection can
# never take a port between the moment it is chosen and the moment its server binds it.
_LOWEST = 20000
_DEFAULT_EPHEMERAL_START = 32768


def ephemeral_start() -> int:
    """The first port the kernel hands out for outgoing connections and ``bind(0)``."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range", encoding="ascii") as stream:
            return int(stream.read().split()[0])
    except (OSError, ValueError, IndexError):
        return _DEFAULT_EPHEMERAL_START


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port() -> int:
    """A loopback port nobody listens on now, chosen outside the kernel's ephemeral range."""
    high = ephemeral_start()
    if high - _LOWEST >= 1000:
        for _ in range(100):
            port = random.randrange(_LOWEST, high)
            if _bindable(port):
                return port
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
