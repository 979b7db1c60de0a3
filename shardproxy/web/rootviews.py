"""The ``.ids-s<N>`` folders in the root listing, also when the backend hides ``/.ids``.

nginx's dav-ext leaves dot-entries out of its listings, so the root listing has no
``/.ids`` for the shard views to be cloned from. Then the proxy asks the backend for
``/.ids`` itself (PROPFIND, Depth 0, with the client's credentials): if it is there, its
entry, shown as each view folder, is added to the root listing.
"""

from __future__ import annotations

import logging

from shardproxy.backend.pool import BackendPool
from shardproxy.backend.reply import BackendError, BodyError
from shardproxy.core.plan import RequestPlan
from shardproxy.core.shards import IDS_ROOT, ShardMap
from shardproxy.listing import ListingError, filter_listing
from shardproxy.listing.insert import insert_responses
from shardproxy.listing.policy import ViewFoldersPolicy

log = logging.getLogger("shardproxy")

# An answer for /.ids at Depth 0 is one <response>: anything bigger is not that.
MAX_IDS_ANSWER = 64 << 10


async def with_view_folders(
    pool: BackendPool, shard_map: ShardMap, plan: RequestPlan, listing: bytes
) -> bytes:
    """The root ``listing`` with the view folders added when the backend has ``/.ids``."""
    headers = [(n, v) for n, v in plan.headers.items() if n.lower() not in ("content-length",)]
    headers = [(n, v) for n, v in headers if n.lower() != "depth"] + [("Depth", "0")]
    try:
        upstream = await pool.request("PROPFIND", IDS_ROOT + "/", headers, b"", 0)
    except BackendError:
        return listing
    try:
        if upstream.status != 207:
            return listing
        answer = b""
        while len(answer) <= MAX_IDS_ANSWER and (chunk := await upstream.read()):
            answer += chunk
        if len(answer) > MAX_IDS_ANSWER:
            return listing
    except BodyError:
        return listing
    finally:
        upstream.release()
    try:
        views = filter_listing(ViewFoldersPolicy(shard_map), answer)
    except ListingError as exc:
        log.warning("PROPFIND %s: backend sent a malformed answer: %s", IDS_ROOT, exc)
        return listing
    return insert_responses(listing, views.body) or listing
