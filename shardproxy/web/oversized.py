"""``.rclonelink`` files too large to rewrite: served as they are, and named once.

NzbDav's links are a few dozen bytes; one over ``MAX_LINK_BYTES`` was not written by it.
It is served and listed unrewritten, and each such file is named in the log the first
time it is seen, not on every listing that shows it.
"""

from __future__ import annotations

import logging

from shardproxy.core.rclonelink import MAX_LINK_BYTES

log = logging.getLogger("shardproxy.web.proxy")

# Oversized links named in the log, each once; past this many, no more are named.
MAX_NAMED_LINKS = 1000


class OversizedLinks:
    """``.rclonelink`` files too large to rewrite, each named in the log once."""

    def __init__(self, limit: int = MAX_NAMED_LINKS) -> None:
        self.limit = limit
        self._named: set[str] = set()

    def note(self, path: str) -> None:
        """Log ``path`` the first time it is seen (up to ``limit`` paths)."""
        if path in self._named or len(self._named) >= self.limit:
            return
        self._named.add(path)
        log.warning(
            "%s: a .rclonelink of more than %d bytes is not a link NzbDav wrote; it is served "
            "and listed as it is, without its target moved into a shard view",
            path,
            MAX_LINK_BYTES,
        )
