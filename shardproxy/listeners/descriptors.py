"""The descriptors a process's connection caps may need, and its limit raised to fit them.

Each WebDAV connection may hold four descriptors at once (the client's socket, its
connection to NzbDav, and a splice pipe's two ends); an RC or admin connection one, and
their calls to the rclones one each, up to their client pools' limits. A shell's usual
limit of 1024 open files is below what the default caps may take, and a process past
its limit cannot accept, connect or open anything: so at start the soft limit is raised
as far as the hard one allows, and a limit still too low is said once, with what to do.
"""

from __future__ import annotations

import logging
import resource

log = logging.getLogger("shardproxy.listeners.descriptors")

PER_WEBDAV_CONNECTION = 4
# The RC listener's and the admin listener's client pools to the rclones.
RC_CLIENT_POOL = 64
ADMIN_CLIENT_POOL = 32
# The interpreter, its logs, the retry queue's file, listening sockets, the event loop.
BASELINE = 64


def descriptors_needed(webdav: int, rc: int | None, admin: int | None) -> int:
    """Descriptors one process may hold with these caps (None: that listener is off)."""
    need = BASELINE + PER_WEBDAV_CONNECTION * webdav
    if rc is not None:
        need += rc + RC_CLIENT_POOL
    if admin is not None:
        need += admin + ADMIN_CLIENT_POOL
    return need


def fit_descriptor_limit(need: int) -> int:
    """Raise the soft limit on open files towards ``need`` (up to the hard limit); log
    a warning if it stays below. Returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        wanted = need if hard == resource.RLIM_INFINITY else min(need, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
        except (OSError, ValueError):
            pass
    if soft < need:
        log.warning(
            "open-file limit is %d, below the %d descriptors the connection caps may need "
            "(max_connections, rc_max_connections, admin_max_connections): raise it "
            "(LimitNOFILE= in the unit, ulimit -n, or the container's nofile ulimit) or "
            "lower the caps; past the limit, connections wait and the log says so",
            soft,
            need,
        )
    return soft
