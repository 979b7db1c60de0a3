"""The reply side of the WebDAV front: NzbDav's reply relayed to the client as planned.

Bodies are streamed (spliced when large) after the Range contract is checked, listings
are read whole and filtered by their shard's policy, and Location headers are mapped
into the client's view. The request side is ``proxy``; the decisions are in ``core``
and ``listing``.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web
from multidict import CIMultiDict

from shardproxy.backend.pool import BackendPool
from shardproxy.backend.reply import BackendReply, BodyError
from shardproxy.backend.splice import splice_body
from shardproxy.config.settings import Settings
from shardproxy.core import ranges
from shardproxy.core.location import client_location, view_location
from shardproxy.core.plan import ListingFilter, RequestPlan
from shardproxy.core.shards import ShardMap
from shardproxy.listing import (
    ListingError,
    ResponsePolicy,
    RootListingPolicy,
    ShardListingPolicy,
    filter_listing,
)
from shardproxy.telemetry.metrics import Metrics
from shardproxy.web.bodies import abort_client, copy_body
from shardproxy.web.headers import ReplyHeaders, replace_header, reply_headers_of
from shardproxy.web.offloop import parse_body
from shardproxy.web.oversized import OversizedLinks
from shardproxy.web.replies import SMALL_REPLY_LIMIT, error_kind, plain_error, unsatisfiable
from shardproxy.web.rootviews import with_view_folders

log = logging.getLogger("shardproxy.web.proxy")


class ReplyRelay:
    """Relays NzbDav's replies to the client: bodies, filtered listings, mapped headers."""

    def __init__(self, settings: Settings, pool: BackendPool, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.shard_map: ShardMap = settings.shard_map
        self.pool = pool
        self.backend_origin = pool.origin
        # Policies are immutable, so every listing of a shard shares its shard's.
        self.shard_policies = [
            ShardListingPolicy(self.shard_map, shard) for shard in range(self.shard_map.count)
        ]
        self.root_policy = RootListingPolicy(self.shard_map)
        self.oversized_links = OversizedLinks()

    def listing_policy(self, plan: RequestPlan) -> ResponsePolicy:
        """The filter a planned listing goes through."""
        if plan.listing is ListingFilter.SHARD and plan.shard is not None:
            return self.shard_policies[plan.shard]
        return self.root_policy

    async def content_length(self, plan: RequestPlan) -> int | None:
        """The size of the file a plan is about, by a HEAD to the backend."""
        headers = CIMultiDict(plan.headers)
        headers.popall("Range", None)
        headers.popall("If-Range", None)
        response = await self.pool.request("HEAD", plan.target, headers.items())
        response.release()
        return response.content_length if response.status == 200 else None

    def reply_headers(self, upstream: BackendReply, plan: RequestPlan) -> ReplyHeaders:
        """The backend's reply headers as the client should see them."""
        return reply_headers_of(upstream, lambda location: self.map_location(location, plan))

    def map_location(self, location: str, plan: RequestPlan) -> str | None:
        """A Location as the client should follow it: on the proxy, in the client's view.

        One naming the backend itself gets the client's scheme, host and port; in reply
        to a shard request, see ``view_location`` (None: it would lead out of the view).
        """
        host = plan.headers.get("Host")
        location = client_location(location, self.settings.backend, host, plan.scheme)
        if plan.shard is None:
            return location
        return view_location(location, plan.shard, self.shard_map, plan.target.partition("?")[0])

    async def relay_body(
        self, request: web.BaseRequest, upstream: BackendReply, plan: RequestPlan
    ) -> web.StreamResponse:
        """Stream the reply as it is, after checking the Range contract."""
        headers = self.reply_headers(upstream, plan)
        status = upstream.status
        length = upstream.content_length
        truncate_to: int | None = None
        if plan.asked_range is not None:
            verdict = ranges.check_reply(
                plan.asked_range, status, upstream.headers.get("Content-Range"), length
            )
            if isinstance(verdict, ranges.AskLength):
                verdict = ranges.resolve_unsatisfiable(await self.content_length(plan))
            if isinstance(verdict, ranges.Unsatisfiable):
                return unsatisfiable(verdict)
            if isinstance(verdict, ranges.Reject):
                log.warning("%s %s: %s", request.method, request.raw_path, verdict.reason)
                self.metrics.upstream_error(plan.shard, "bad_range")
                return plain_error(502, verdict.reason)
            status = verdict.status
            if verdict.content_range is not None:
                replace_header(headers, "Content-Range", verdict.content_range.header())
            if verdict.truncate_to is not None:
                truncate_to = length = verdict.truncate_to
        has_body = request.method != "HEAD" and status not in (204, 304)
        if has_body and length is not None and length <= SMALL_REPLY_LIMIT:
            # Half of a small reply's cost is per write, so it goes out in one.
            body = upstream.read_now(length)
            if body is None:
                waited = await self.read_small_body(request, upstream, length, plan.shard)
                if not isinstance(waited, bytes):  # not against web.Response: see handle()
                    return waited
                body = waited
            self.metrics.streamed(plan.shard, len(body), spliced=False)
            return web.Response(status=status, reason=None, headers=headers, body=body)
        response = web.StreamResponse(status=status, reason=None, headers=headers)
        if length is not None:
            response.content_length = length
        await response.prepare(request)
        if not has_body:
            return response

        def sent(count: int, spliced: bool) -> None:
            self.metrics.streamed(plan.shard, count, spliced=spliced)

        try:
            cut = ranges.BodyCut(truncate_to)
            spliced = await splice_body(
                request,
                upstream,
                response,
                cut,
                self.settings.send_timeout,
                on_sent=sent,
            )
            if not spliced:
                await copy_body(upstream, response, cut, sent)
        except (BodyError, OSError) as exc:
            if isinstance(exc, ConnectionError):
                # The client hung up: rclone closes its stream on every seek.
                log.debug("%s %s: client hung up (%s)", request.method, request.raw_path, exc)
                self.metrics.client_abort(plan.shard)
            else:
                log.warning(
                    "%s %s: reply broke off (%s); closing the client connection so the "
                    "reply does not look complete",
                    request.method,
                    request.raw_path,
                    exc,
                )
                self.metrics.upstream_error(plan.shard, error_kind(exc))
            abort_client(request, response)
        except asyncio.CancelledError:
            # The server cancels the handler of a client that hung up.
            self.metrics.client_abort(plan.shard)
            raise
        return response

    async def read_small_body(
        self,
        request: web.BaseRequest,
        upstream: BackendReply,
        length: int,
        shard: int | None,
    ) -> bytes | web.Response:
        """A short body read whole; or, if the backend breaks off, the 502 to answer.

        Nothing has been sent yet then, so the client gets a clear error instead of a cut
        connection.
        """
        try:
            return await upstream.read_exactly(length)
        except BodyError as exc:
            reason = f"backend {self.backend_origin} broke off its reply: {exc}"
            log.warning("%s %s: %s", request.method, request.raw_path, reason)
            self.metrics.upstream_error(shard, error_kind(exc))
            return plain_error(502, reason)

    async def relay_multistatus(
        self, request: web.BaseRequest, upstream: BackendReply, plan: RequestPlan
    ) -> web.StreamResponse:
        """Read a listing whole, under listing_max_bytes, and send it filtered by its policy.

        Filtered listings are small by construction (a shard folder has at most 16
        sub-folders, or the few files of one fifth-level folder), so they are read and
        filtered whole and sent with a Content-Length; a malformed one gets a clean 502.
        """
        policy = self.listing_policy(plan)
        headers = self.reply_headers(upstream, plan)
        # From the list the reply passes on: building upstream.headers costs more.
        encoding = next((v for n, v in headers if n.lower() == "content-encoding"), "identity")
        if encoding.lower() != "identity":
            return plain_error(
                502, f"backend sent a {encoding}-encoded listing although identity was asked"
            )
        read = await self.read_listing(request, upstream, plan.shard)
        if not isinstance(read, bytes):  # not against web.Response: see handle()
            return read
        body = read
        try:
            listing = await parse_body(filter_listing, policy, body, size=len(body))
        except ListingError as exc:
            return self.broken_listing(request, f"malformed listing: {exc}", plan.shard)
        body = listing.body
        if plan.listing is ListingFilter.ROOT and listing.responses_out == listing.responses_in:
            # No /.ids entry was cloned into view folders: the backend may hide dot-entries.
            body = await with_view_folders(self.pool, self.shard_map, plan, body)
        self.metrics.listing(plan.shard, listing.responses_out, listing.dropped)
        self.metrics.streamed(plan.shard, len(body), spliced=False)
        return web.Response(status=upstream.status, reason=None, headers=headers, body=body)

    async def read_listing(
        self, request: web.BaseRequest, upstream: BackendReply, shard: int | None
    ) -> bytes | web.Response:
        """The backend's listing read whole; or the 502 if it is too large or breaks off."""
        cap = self.settings.listing_max_bytes
        too_large = (
            f"listing larger than {cap} bytes (listing_max_bytes); raise --listing-max-bytes "
            "if folders this large are expected"
        )
        length = upstream.content_length
        if length is not None:
            if length > cap:
                return self.broken_listing(request, too_large, shard)
            # A listing nearly always arrives with its head (see read_now).
            body = upstream.read_now(length)
            if body is not None:
                return body
            return await self.read_small_body(request, upstream, length, shard)
        chunks: list[bytes] = []
        size = 0
        try:
            while chunk := await upstream.read():
                size += len(chunk)
                if size > cap:
                    return self.broken_listing(request, too_large, shard)
                chunks.append(chunk)
        except BodyError as exc:
            problem = f"listing that broke off: {exc}"
            return self.broken_listing(request, problem, shard, error_kind(exc))
        return b"".join(chunks)

    def broken_listing(
        self,
        request: web.BaseRequest,
        problem: str,
        shard: int | None,
        kind: str = "bad_listing",
    ) -> web.Response:
        """The 502 for a listing that cannot be filtered, counted as a failure of NzbDav."""
        log.warning("PROPFIND %s: backend %s", request.raw_path, problem)
        self.metrics.upstream_error(shard, kind)
        return plain_error(502, f"backend {self.backend_origin} sent a {problem}")
