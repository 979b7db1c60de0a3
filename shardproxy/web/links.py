"""The proxy's glue for ``rewrite_rclonelinks``: links and their listings, sizes agreeing.

The decisions are pure (``rclonelink`` rewrites a link's text and applies a Range to
it; ``listing.linksizes`` grows the listed sizes); this is the I/O around them.
"""

from __future__ import annotations

import logging

from aiohttp import web
from multidict import CIMultiDict

from shardproxy.backend.reply import BackendError, BackendReply
from shardproxy.core.plan import RequestPlan
from shardproxy.core.rclonelink import GROWTH, MAX_LINK_BYTES, rewrite_target, serve_range
from shardproxy.core.shards import IDS_ROOT
from shardproxy.listing.linksizes import LinkListingError, grow_link_sizes
from shardproxy.web.offloop import parse_body
from shardproxy.web.relay import ReplyRelay
from shardproxy.web.replies import plain_error

log = logging.getLogger("shardproxy.web.proxy")


async def serve_rewritten_link(
    relay: ReplyRelay, request: web.BaseRequest, plan: RequestPlan
) -> web.StreamResponse:
    """A ``.rclonelink`` with its target in the owning shard's view.

    The link is a few dozen bytes of NzbDav's database, not Usenet data, so it is read
    whole (a GET even for a HEAD) and the client's Range is applied to the new text.
    """
    headers = CIMultiDict(plan.headers)
    for name in ("Range", "If-Range", "Accept-Encoding"):
        headers.popall(name, None)
    try:
        upstream = await relay.pool.request("GET", plan.target, headers.items())
    except BackendError as exc:
        return plain_error(exc.status, str(exc))
    try:
        length = upstream.content_length
        if upstream.status != 200 or length is None or length > MAX_LINK_BYTES:
            if upstream.status == 200 and length is not None:
                relay.oversized_links.note(request.raw_path)
            return await relay.relay_body(request, upstream, plan)
        body = await relay.read_small_body(request, upstream, length, plan.shard)
    finally:
        upstream.release()
    if isinstance(body, web.Response):
        return body
    rewritten = rewrite_target(body, relay.shard_map)
    if rewritten is None:
        log.warning(
            "%s: not a link into %s/, served as it is (its listed size is %d bytes more)",
            request.raw_path,
            IDS_ROOT,
            GROWTH,
        )
        rewritten = body
    reply = serve_range(
        rewritten, request.method, request.headers.get("Range"), request.headers.get("If-Range")
    )
    reply_headers = [
        (name, value)
        for name, value in relay.reply_headers(upstream, plan)
        if name.lower() != "content-range"
    ]
    if reply.content_range is not None:
        reply_headers.append(("Content-Range", reply.content_range))
    return web.Response(status=reply.status, headers=reply_headers, body=reply.body)


async def relay_link_listing(
    relay: ReplyRelay, request: web.BaseRequest, upstream: BackendReply, plan: RequestPlan
) -> web.StreamResponse:
    """A ``/completed-symlinks`` listing with each ``.rclonelink`` listed at its new size."""
    body = await relay.read_listing(request, upstream, None)
    if isinstance(body, web.Response):
        return body
    try:
        grown = await parse_body(grow_link_sizes, body, GROWTH, MAX_LINK_BYTES, size=len(body))
    except LinkListingError as exc:
        return relay.broken_listing(request, str(exc), None)
    for href in grown.too_big:
        relay.oversized_links.note(href)
    headers = relay.reply_headers(upstream, plan)
    return web.Response(status=upstream.status, reason=None, headers=headers, body=grown.body)
