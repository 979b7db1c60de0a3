"""The WebDAV handler: plan a request, forward it to NzbDav, hand the reply to the relay.

The decisions live in pure modules (``core.plan`` for the request, ``core.ranges`` for
the Range contract, ``listing`` for PROPFIND bodies); this module is the glue that
applies them between aiohttp's low-level server (the client side) and our own backend
pool. The reply side is ``relay``; which headers pass is ``headers``' business.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web

from shardproxy.backend.pool import BackendPool
from shardproxy.backend.reply import BackendError, BackendReply
from shardproxy.config.settings import Settings
from shardproxy.core import ranges
from shardproxy.core.failover import FallbackReads
from shardproxy.core.plan import ClientRequest, ListingFilter, PlanRules, RequestPlan, plan_request
from shardproxy.core.shards import Refused, ShardMap
from shardproxy.telemetry.metrics import Metrics
from shardproxy.web.bodies import ClientStalled, client_body
from shardproxy.web.headers import client_headers
from shardproxy.web.links import relay_link_listing, serve_rewritten_link
from shardproxy.web.redirects import redirect_out_of_view
from shardproxy.web.relay import ReplyRelay
from shardproxy.web.replies import answer_and_close, plain_error, unsatisfiable
from shardproxy.web.virtual import VirtualLevels

log = logging.getLogger("shardproxy.web.proxy")


class WebDavProxy:
    """Forwards WebDAV requests to NzbDav, presenting ``/.ids-s<N>`` shard views."""

    def __init__(
        self,
        settings: Settings,
        pool: BackendPool,
        fallback_reads: FallbackReads | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics or Metrics()
        self.shard_map: ShardMap = settings.shard_map
        self.fallback_reads = fallback_reads or FallbackReads(self.shard_map.count)
        self.pool = pool
        self.rules = PlanRules(
            self.shard_map, settings.rewrite_rclonelinks, settings.mount_header_from
        )
        self.relay = ReplyRelay(settings, pool, self.metrics)
        self.virtual_levels = (
            VirtualLevels(settings, self.metrics) if settings.virtual_levels else None
        )

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        """Answer one client request, counted by shard view, method and status."""
        plan = self.plan(request)
        # Asked this way round: isinstance against aiohttp's Response goes through
        # ABCMeta (it is a MutableMapping), a plain class check does not.
        if not isinstance(plan, RequestPlan):
            self.metrics.request(None, request.method, plan.status)
            return plan
        response = await self.answer(request, plan)
        self.metrics.request(plan.shard, request.method, response.status)
        return response

    async def answer(self, request: web.BaseRequest, plan: RequestPlan) -> web.StreamResponse:
        """Forward a planned request and relay the reply."""
        relay = self.relay
        if plan.rewrite_link:
            return await serve_rewritten_link(relay, request, plan)
        try:
            virtual = self.virtual_levels
            folder = None if virtual is None else virtual.folder_of(plan)
            if virtual is not None and folder is not None:
                own = await virtual.answer(request, plan, folder)
                if own is not None:  # NzbDav's fixed .ids folders, answered here
                    return own
            if "Range" in plan.headers:
                refused = await self.plan_range(request, plan)
                if refused is not None:
                    return refused
            upstream = await self.send(plan, request)
        except BackendError as exc:
            self.metrics.upstream_error(
                plan.shard, "timeout" if exc.status == 504 else "unreachable"
            )
            return plain_error(exc.status, str(exc))
        except ClientStalled as exc:
            # Closed at once: aiohttp would otherwise linger reading the rest of the body.
            return await answer_and_close(request, plain_error(408, str(exc), close=True))
        try:
            refused = redirect_out_of_view(relay, request, upstream, plan)
            if refused is not None:
                return refused
            if plan.listing is ListingFilter.LINK_SIZES and upstream.status == 207:
                return await relay_link_listing(relay, request, upstream, plan)
            if plan.listing is not None and upstream.status == 207:
                return await relay.relay_multistatus(request, upstream, plan)
            return await relay.relay_body(request, upstream, plan)
        finally:
            # A body not read to its end does not go back to the pool: closing is what
            # stops NzbDav fetching more from Usenet when the client has gone.
            upstream.release()

    # --- planning ----------------------------------------------------------------

    def plan(self, request: web.BaseRequest) -> RequestPlan | web.Response:
        """The request's plan (``core.plan``), or the proxy's own answer to it."""
        client = ClientRequest(
            request.method,
            request.raw_path,
            client_headers(request.raw_headers),
            request.remote or "",
            request.scheme,
        )
        plan = plan_request(client, self.rules)
        if isinstance(plan, Refused):
            return plain_error(plan.status, plan.reason)
        if plan.fallback_shard is not None:
            self.note_fallback_read(plan.fallback_shard)
        return plan

    def note_fallback_read(self, shard: int) -> None:
        """Count (and now and then log) a read of a shard's file that bypasses its cache."""
        self.metrics.fallback_read(shard)
        line = self.fallback_reads.record(shard)
        if line is not None:
            log.warning("%s", line)

    async def plan_range(self, request: web.BaseRequest, plan: RequestPlan) -> web.Response | None:
        """Apply ``ranges.plan_range`` to the plan; the proxy's own 416 when there is one."""
        planned = ranges.plan_range(
            request.method, plan.headers["Range"], plan.headers.get("If-Range")
        )
        decision: ranges.RangePlan | ranges.Unsatisfiable = planned
        if isinstance(planned, ranges.AskSizeFirst):
            decision = ranges.resolve_suffix(planned.suffix, await self.relay.content_length(plan))
        if isinstance(decision, ranges.Unsatisfiable):
            return unsatisfiable(decision)
        if isinstance(decision, ranges.WholeFile):
            del plan.headers["Range"]
            plan.asked_range = decision
        elif isinstance(decision, ranges.FromTo):
            plan.headers["Range"] = ranges.upstream_range_header(decision)
            plan.asked_range = decision
        elif isinstance(decision, ranges.Conditional):
            plan.asked_range = decision
        return None

    async def send(self, plan: RequestPlan, request: web.BaseRequest) -> BackendReply:
        """Send the plan upstream, the client's body streamed, and wait for the reply head."""
        body: bytes | AsyncIterator[bytes] | None = None
        length = request.content_length
        if request.body_exists:
            buffered = request.content.read_nowait(-1)
            if length is not None and len(buffered) == length:
                body = buffered  # all there already: one write, and safe to retry
            else:
                if "100-continue" in request.headers.get("Expect", "").lower():
                    await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                body = client_body(request, buffered, self.settings.body_timeout)
                del buffered  # held by the body alone, which lets it go once sent
        elif length is not None:
            body = b""  # an empty body said so (PUT of an empty file): say so upstream
        return await self.pool.request(plan.method, plan.target, plan.headers.items(), body, length)
