"""A redirect that would lead a shard view's client out of its view is not passed on.

Followed, a redirect from ``/.ids-s1/...`` to another shard's prefix (or to a place
the proxy cannot show in the view) would hand the client files of another shard's
cache, or NzbDav's whole tree. Such a Location is dropped from other replies (a 201's
Location is a courtesy); a redirect without it means nothing, so it is a 502.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from aiohttp import web

from shardproxy.backend.reply import BackendReply
from shardproxy.core.plan import RequestPlan
from shardproxy.core.shards import view_root
from shardproxy.web.replies import plain_error

if TYPE_CHECKING:
    from shardproxy.web.relay import ReplyRelay

log = logging.getLogger("shardproxy.web.proxy")


def redirect_out_of_view(
    relay: ReplyRelay, request: web.BaseRequest, upstream: BackendReply, plan: RequestPlan
) -> web.Response | None:
    """The 502 for a shard request's redirect whose Location leads out of its view."""
    if plan.shard is None or not 300 <= upstream.status < 400:
        return None
    location = upstream.headers.get("Location")
    if location is None or relay.map_location(location, plan) is not None:
        return None
    reason = (
        f"backend redirected {request.raw_path} to {location}, outside "
        f"{view_root(plan.shard)} and outside the pass-through paths; not passed on"
    )
    log.warning("%s %s", request.method, reason)
    relay.metrics.upstream_error(plan.shard, "bad_redirect")
    return plain_error(502, reason)
