"""``shardproxy healthcheck``: is the shardproxy these settings describe serving?

Made for a container's HEALTHCHECK, which runs inside the container: it asks the admin
listener's ``/healthz`` when ``admin_listen`` is set, and otherwise checks that the
WebDAV port accepts a connection.
"""

from __future__ import annotations

import socket
import sys
import urllib.request

from shardproxy.config.settings import HostPort, Settings

TIMEOUT_SECONDS = 5.0


def local_address(address: HostPort) -> tuple[str, int]:
    """Where this machine reaches a listener: all interfaces are reached on loopback."""
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(address.host, address.host)
    return host, address.port


def healthcheck(settings: Settings) -> int:
    """0 when the proxy answers (``/healthz``, or a TCP accept without an admin listener)."""
    if settings.admin_listen is None:
        host, port = local_address(settings.listen)
        try:
            socket.create_connection((host, port), timeout=TIMEOUT_SECONDS).close()
        except OSError as exc:
            print(f"shardproxy: nothing accepts on {host}:{port}: {exc}", file=sys.stderr)
            return 1
        print(f"{host}:{port} accepts connections (set admin_listen for /healthz)")
        return 0
    host, port = local_address(settings.admin_listen)
    url = f"http://{f'[{host}]' if ':' in host else host}:{port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as reply:
            status = reply.status
    except OSError as exc:
        print(f"shardproxy: {url}: {exc}", file=sys.stderr)
        return 1
    print(f"{url}: HTTP {status}")
    return 0 if status == 200 else 1
