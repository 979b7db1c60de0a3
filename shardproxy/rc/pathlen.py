"""A path no file system can hold is refused before it is planned, sent or kept.

Linux's PATH_MAX is 4096 bytes with its terminating NUL: an rclone can never have a
longer path, so such a call can only be a mistake or an attempt to fill the retry queue
(twelve calls of 8,000-byte paths once grew it to hundreds of MiB). Pure: no I/O.
"""

from __future__ import annotations

PATH_MAX = 4096


def path_too_long(path: str, key: str) -> str | None:
    """Why ``path`` (the value of parameter ``key``) is refused, or None when it may pass."""
    size = len(path.encode("utf-8", "surrogatepass"))
    if size < PATH_MAX:
        return None
    return (
        f"path in {key!r} is {size} bytes long: no file system has paths of PATH_MAX "
        f"({PATH_MAX}) bytes or more"
    )
