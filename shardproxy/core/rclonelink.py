"""``.rclonelink`` files served with their target moved into the owning shard's view.

NzbDav writes ``/completed-symlinks/.../<name>.rclonelink`` holding the text
``{mount}/.ids/<h1>/<h2>/<h3>/<h4>/<h5>/<uuid>``; rclone's ``--links`` shows it as a
symlink, which Sonarr/Radarr import. With ``rewrite_rclonelinks`` the proxy serves
``{mount}/.ids-s<N>/...`` instead, so new imports land in the right shard's mount.

A listing cannot see a file's text, so every size a client sees (the listed
``getcontentlength``, Content-Length, Content-Range) must follow from the shard map
alone: with at most 10 shards the view name ``.ids-s<N>`` is always ``.ids`` plus three
characters. With more shards the setting is refused. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from shardproxy.core import ranges
from shardproxy.core.shards import IDS_NAME, ShardMap, ViewPath, ViewPathError, view_name

SYMLINKS_ROOT = "/completed-symlinks/"
SUFFIX = ".rclonelink"
MAX_SHARDS = 10
# NzbDav's links are a few dozen bytes; a larger file is read whole by no one and is
# served (and listed) as it is.
MAX_LINK_BYTES = 1 << 16
GROWTH = len(view_name(0)) - len(IDS_NAME)  # "-s<N>" with one digit
_MARKER = f"/{IDS_NAME}/".encode()


SYMLINKS_SINCE = (1, 69)
"""rclone shows ``.rclonelink`` files as symlinks (``--vfs-links``) from 1.69 on; 1.60.1
(Debian 12) accepts the flag and ignores it (docs/deployment.md, "Which rclone")."""


def old_rclone_warning(binary: str, version: tuple[int, int], why: str) -> str | None:
    """A warning when ``binary`` is too old to show ``.rclonelink`` files as symlinks."""
    if version >= SYMLINKS_SINCE:
        return None
    shown = ".".join(map(str, version))
    wanted = ".".join(map(str, SYMLINKS_SINCE))
    return (
        f"warning: {binary} is rclone {shown}, older than {wanted}: its mounts show NzbDav's "
        f".rclonelink files as small files, not symlinks, so Sonarr and Radarr cannot import "
        f"new items through them ({why}); install rclone {wanted} or later from rclone's own "
        "releases"
    )


class RcloneLinkError(ValueError):
    """The setting cannot work with this shard map; the message says why."""


def check_shard_count(shard_map: ShardMap) -> None:
    """Refuse maps whose view names differ in length: sizes could not be listed right."""
    if shard_map.count > MAX_SHARDS:
        raise RcloneLinkError(
            f"rewrite_rclonelinks works with at most {MAX_SHARDS} shards, not "
            f"{shard_map.count}: a listing shows each .rclonelink's size without reading it, "
            f"so every rewrite must add the same {GROWTH} bytes, and {view_name(10)} is one "
            "longer than .ids-s9. Use at most 10 shards, or turn the setting off and run "
            "`shardproxy relink` on the library now and then instead"
        )


def is_rclonelink(path: str) -> bool:
    """True for a decoded path of a ``.rclonelink`` file NzbDav writes."""
    return path.startswith(SYMLINKS_ROOT) and path.endswith(SUFFIX)


def is_symlinks_path(path: str) -> bool:
    """True for a decoded path in (or of) ``/completed-symlinks``, where links are listed."""
    return path.startswith(SYMLINKS_ROOT) or path == SYMLINKS_ROOT.rstrip("/")


def listed_size(size: int) -> int:
    """The size to list for a ``.rclonelink`` of ``size`` bytes: its rewritten length
    (a link over ``MAX_LINK_BYTES`` is served as it is)."""
    return size + GROWTH if size <= MAX_LINK_BYTES else size


def rewrite_target(body: bytes, shard_map: ShardMap) -> bytes | None:
    """``{mount}/.ids/h/h/h/h/h/uuid`` -> ``{mount}/.ids-s<N>/...``; None if not such a text.

    Exactly ``GROWTH`` bytes longer when it is one (the map has at most 10 shards).
    """
    at = body.rfind(_MARKER)
    if at < 0:
        return None
    try:
        below = body[at + len(_MARKER) :].decode("ascii")
        path = ViewPath.parse(IDS_NAME, below.split("/"), shard_map)
    except (UnicodeDecodeError, ViewPathError):
        return None
    if not path.uuid:
        return None
    return body[:at] + str(path.in_view(shard_map.shard_of(path.uuid))).encode()


@dataclass(frozen=True)
class LinkReply:
    """What to answer a GET or HEAD of a rewritten link: status, Content-Range, body."""

    status: int
    body: bytes
    content_range: str | None = None


def serve_range(
    body: bytes, method: str, range_value: str | None, if_range: str | None
) -> LinkReply:
    """Apply a request's Range to a body the proxy holds whole, per RFC 9110."""
    if range_value is None:
        return LinkReply(200, body)
    plan = ranges.plan_range(method, range_value, if_range)
    length = len(body)
    if isinstance(plan, ranges.AskSizeFirst):
        resolved = ranges.resolve_suffix(plan.suffix, length)
        if isinstance(resolved, ranges.Unsatisfiable):
            return LinkReply(416, b"", resolved.header())
        plan = resolved
    if not isinstance(plan, ranges.FromTo):
        return LinkReply(200, body)
    if plan.start >= length:
        return LinkReply(416, b"", ranges.Unsatisfiable(length).header())
    last = length - 1 if plan.end is None else min(plan.end, length - 1)
    return LinkReply(206, body[plan.start : last + 1], f"bytes {plan.start}-{last}/{length}")
