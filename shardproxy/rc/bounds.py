"""Keeping one ``vfs/refresh`` from walking NzbDav's whole virtual ``.ids`` tree.

``.ids`` holds 16^5 virtual folders (one per five-character UUID prefix) that NzbDav
makes up on every listing. A recursive refresh of ``.ids``, of a shard's root or of any
level above the fifth makes an rclone list all of them below that point: over a million
listings for ``.ids``, hours of work that also looks like a hung call. Such a refresh is
clamped, not refused: it is sent without ``recursive``, so the folder itself is read
again (which is what a caller who just changed it needs), and the reply says so.
Pure: deliveries in, deliveries out.
"""

from __future__ import annotations

from dataclasses import replace

from shardproxy.core.shards import ID_LEVELS
from shardproxy.rc.targets import Delivery

CLAMP_NOTE = (
    "refreshed without recursion: a recursive refresh above the fifth level of .ids "
    "(or of an rclone's root) would list every one of NzbDav's virtual folders below it; "
    "refresh .ids/<h1>/<h2>/<h3>/<h4>/<h5> folders recursively instead"
)


def walks_virtual_tree(delivery: Delivery) -> bool:
    """True when a recursive refresh of this delivery would walk NzbDav's virtual folders.

    A shard's root is ``.ids`` itself, so levels count from it; a fallback rclone mounts
    the proxy's root, whose ``.ids`` (and shard views) only a refresh of its root reaches.
    """
    if not delivery.recursive:  # only a refresh is ever recursive
        return False
    levels = [name for name in delivery.path.split("/") if name]
    if delivery.kind == "all" or not levels:
        return True
    return delivery.target.role == "shard" and len(levels) < ID_LEVELS


def bound(delivery: Delivery) -> Delivery:
    """The delivery as it may be sent: a refresh that would walk the virtual tree, flat."""
    if walks_virtual_tree(delivery):
        return replace(delivery, recursive=False)
    return delivery
