"""The WebDAV handler: route a request, forward it to NzbDav, stream the reply back.

The decisions live in pure modules (``shards`` for paths, ``ranges`` for the Range
contract, ``listing`` for PROPFIND bodies); this module is the glue that applies
them between aiohttp's low-level server (the client side) and our own backend pool.
Which headers pass is ``headers``' business, moving the bodies ``bodies``' and ``splice``'s.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import unquote

from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from shardproxy.config.settings import Settings
from shardproxy.core import ranges
from shardproxy.core.location import client_location, view_location
from shardproxy.core.rclonelink import is_rclonelink, is_symlinks_path
from shardproxy.core.shards import (
    Refused,
    ShardMap,
    ShardRoute,
    route,
)
from shardproxy.listing import (
    ListingError,
    ResponsePolicy,
    RootListingPolicy,
    ShardListingPolicy,
    filter_listing,
)
from shardproxy.telemetry.failover import (
    MOUNT_HEADER,
    FallbackReads,
    fallback_read_shard,
    is_fallback_mount,
    trusts_mount_header,
)
from shardproxy.telemetry.metrics import Metrics
from shardproxy.upstream.pool import UpstreamPool
from shardproxy.upstream.reply import BackendError, BodyError, UpstreamResponse
from shardproxy.upstream.splice import splice_body
from shardproxy.web.bodies import ClientStalled, abort_client, client_body, copy_body
from shardproxy.web.headers import ReplyHeaders, client_headers, replace_header, reply_headers_of
from shardproxy.web.links import OversizedLinks, relay_link_listing, serve_rewritten_link
from shardproxy.web.offloop import parse_body
from shardproxy.web.redirects import redirect_out_of_view
from shardproxy.web.rootviews import with_view_folders

log = logging.getLogger("shardproxy.web.proxy")

# Replies up to this size are read whole and sent in one write.
SMALL_REPLY_LIMIT = 1 << 16


def plain_error(status: int, message: str, *, close: bool = False) -> web.Response:
    """A short plain-text error the proxy answers itself."""
    response = web.Response(status=status, text=message.rstrip() + "\n")
    if close:
        response.force_close()
    return response


@dataclass
class UpstreamPlan:
    """What to send NzbDav for one client request, and how to treat its reply."""

    method: str
    target: str
    headers: CIMultiDict[str]
    shard: int | None
    listing_policy: ResponsePolicy | None = None
    asked_range: ranges.Asked | None = None
    rewrite_link: bool = False  # a .rclonelink served with its target in a shard view
    grow_link_sizes: bool = False  # a listing whose .rclonelink sizes grow (rewrite on)
    scheme: str = "http"  # how the client reached the proxy


class WebDavProxy:
    """Forwards WebDAV requests to NzbDav, presenting ``/.ids-s<N>`` shard views."""

    def __init__(
        self,
        settings: Settings,
        pool: UpstreamPool,
        fallback_reads: FallbackReads | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics or Metrics()
        self.shard_map: ShardMap = settings.shard_map
        self.fallback_reads = fallback_reads or FallbackReads(self.shard_map.count)
        self.pool = pool
        self.backend_origin = pool.origin
        # Policies are immutable, so every listing of a shard shares its shard's.
        self.shard_policies = [
            ShardListingPolicy(self.shard_map, shard) for shard in range(self.shard_map.count)
        ]
        self.root_policy = RootListingPolicy(self.shard_map)
        self.oversized_links = OversizedLinks()

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        """Answer one client request, counted by shard view, method and status."""
        plan = self.plan(request)
        # Asked this way round: isinstance against aiohttp's Response goes through
        # ABCMeta (it is a MutableMapping), a plain class check does not.
        if not isinstance(plan, UpstreamPlan):
            self.metrics.request(None, request.method, plan.status)
            return plan
        response = await self.answer(request, plan)
        self.metrics.request(plan.shard, request.method, response.status)
        return response

    async def answer(self, request: web.BaseRequest, plan: UpstreamPlan) -> web.StreamResponse:
        """Forward a planned request and relay the reply."""
        if plan.rewrite_link:
            return await serve_rewritten_link(self, request, plan)
        try:
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
            refused = redirect_out_of_view(self, request, upstream, plan)
            if refused is not None:
                return refused
            if plan.grow_link_sizes and upstream.status == 207:
                return await relay_link_listing(self, request, upstream, plan)
            if plan.listing_policy is not None and upstream.status == 207:
                return await self.relay_multistatus(request, upstream, plan)
            return await self.relay_body(request, upstream, plan)
        finally:
            # A body not read to its end does not go back to the pool: closing is what
            # stops NzbDav fetching more from Usenet when the client has gone.
            upstream.release()

    # --- planning ----------------------------------------------------------------

    def plan(self, request: web.BaseRequest) -> UpstreamPlan | web.Response:
        """Route the request and build what to send upstream, or the proxy's own answer."""
        headers = client_headers(request.raw_headers)
        request_target = request.raw_path
        if not request_target.startswith("/"):
            # Absolute form (RFC 9112 3.2.2): its authority replaces any Host header.
            absolute = absolute_target(request_target)
            if isinstance(absolute, Refused):
                return plain_error(absolute.status, absolute.reason)
            request_target, headers["Host"] = absolute
        raw_path, question, query = request_target.partition("?")
        target = route(raw_path, self.shard_map)
        if isinstance(target, Refused):
            return plain_error(target.status, target.reason)
        method = request.method
        if isinstance(target, ShardRoute):
            shard: int | None = target.shard
            backend_path = target.backend_path
        else:
            shard, backend_path = None, raw_path
        if shard is None or (
            is_fallback_mount(headers.get(MOUNT_HEADER))
            and trusts_mount_header(request.remote, self.settings.mount_header_from)
        ):
            self.note_fallback_read(method, backend_path)
        headers.add("X-Forwarded-For", request.remote or "")
        if "Destination" in headers:
            destination = self.map_destination(headers["Destination"])
            if isinstance(destination, Refused):
                return plain_error(destination.status, destination.reason)
            headers["Destination"] = destination
        # The path and query go upstream as the client spelled them, except a raw "#",
        # which a backend would take for a fragment and cut off.
        upstream_target = f"{backend_path}{question}{query}".replace("#", "%23")
        plan = UpstreamPlan(method, upstream_target, headers, shard, scheme=request.scheme)
        if (
            self.settings.rewrite_rclonelinks
            and shard is None
            and method in ("GET", "HEAD")
            and is_rclonelink(unquote(raw_path))
        ):
            plan.rewrite_link = True
        if method == "PROPFIND":
            self.plan_propfind(plan, raw_path)
        return plan

    def note_fallback_read(self, method: str, backend_path: str) -> None:
        """Count (and now and then log) a read of a shard's file that bypasses its cache."""
        shard = fallback_read_shard(method, backend_path, self.shard_map)
        if shard is not None:
            self.metrics.fallback_read(shard)
            line = self.fallback_reads.record(shard)
            if line is not None:
                log.warning("%s", line)

    def plan_propfind(self, plan: UpstreamPlan, raw_path: str) -> None:
        """Clamp Depth and choose the listing filter."""
        depth = plan.headers.get("Depth", "infinity").strip().lower()
        if depth not in ("0", "1"):
            # NzbDav treats a missing Depth as infinity and would walk 16^5 virtual
            # folders under /.ids; a listing one level deep is what every client needs.
            plan.headers["Depth"] = depth = "1"
        if plan.shard is not None:
            plan.listing_policy = self.shard_policies[plan.shard]
        elif raw_path == "/" and depth == "1":
            plan.listing_policy = self.root_policy
        elif self.settings.rewrite_rclonelinks and is_symlinks_path(unquote(raw_path)):
            plan.grow_link_sizes = True
        if plan.listing_policy is not None or plan.grow_link_sizes:
            # The filter reads XML; a compressed listing could not be filtered.
            plan.headers["Accept-Encoding"] = "identity"

    def map_destination(self, destination: str) -> str | Refused:
        """Map a COPY/MOVE Destination that points into a shard view to NzbDav's tree."""
        try:
            url = URL(destination, encoded=True)
        except ValueError as exc:
            return Refused(400, f"Destination {destination!r} is not a URL: {exc}")
        target = route(url.raw_path or "/", self.shard_map)
        if isinstance(target, Refused):
            return Refused(400, f"Destination {destination}: {target.reason}")
        if not isinstance(target, ShardRoute):
            return destination
        return str(url.with_path(target.backend_path, encoded=True))

    async def plan_range(self, request: web.BaseRequest, plan: UpstreamPlan) -> web.Response | None:
        """Apply ``ranges.plan_range`` to the plan; the proxy's own 416 when there is one."""
        planned = ranges.plan_range(
            request.method, plan.headers["Range"], plan.headers.get("If-Range")
        )
        decision: ranges.RangePlan | ranges.Unsatisfiable = planned
        if isinstance(planned, ranges.AskSizeFirst):
            decision = ranges.resolve_suffix(planned.suffix, await self.content_length(plan))
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

    async def content_length(self, plan: UpstreamPlan) -> int | None:
        """The size of the file a plan is about, by a HEAD to the backend."""
        headers = CIMultiDict(plan.headers)
        headers.popall("Range", None)
        headers.popall("If-Range", None)
        response = await self.pool.request("HEAD", plan.target, headers.items())
        response.release()
        return response.content_length if response.status == 200 else None

    async def send(self, plan: UpstreamPlan, request: web.BaseRequest) -> UpstreamResponse:
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

    # --- relaying replies -------------------------------------------------------------

    def reply_headers(self, upstream: UpstreamResponse, plan: UpstreamPlan) -> ReplyHeaders:
        """The backend's reply headers as the client should see them."""
        return reply_headers_of(upstream, lambda location: self.map_location(location, plan))

    def map_location(self, location: str, plan: UpstreamPlan) -> str | None:
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
        self, request: web.BaseRequest, upstream: UpstreamResponse, plan: UpstreamPlan
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
            spliced = await splice_body(
                request,
                upstream,
                response,
                truncate_to,
                self.settings.send_timeout,
                on_sent=sent,
            )
            if not spliced:
                await copy_body(upstream, response, truncate_to, sent)
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
                self.metrics.upstream_error(plan.shard, _error_kind(exc))
            abort_client(request, response)
        except asyncio.CancelledError:
            # The server cancels the handler of a client that hung up.
            self.metrics.client_abort(plan.shard)
            raise
        return response

    async def read_small_body(
        self,
        request: web.BaseRequest,
        upstream: UpstreamResponse,
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
            self.metrics.upstream_error(shard, _error_kind(exc))
            return plain_error(502, reason)

    async def relay_multistatus(
        self, request: web.BaseRequest, upstream: UpstreamResponse, plan: UpstreamPlan
    ) -> web.StreamResponse:
        """Read a listing whole, under listing_max_bytes, and send it filtered by its policy.

        Filtered listings are small by construction (a shard folder has at most 16
        sub-folders, or the few files of one fifth-level folder), so they are read and
        filtered whole and sent with a Content-Length; a malformed one gets a clean 502.
        """
        assert plan.listing_policy is not None
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
            listing = await parse_body(filter_listing, plan.listing_policy, body, size=len(body))
        except ListingError as exc:
            return self.broken_listing(request, f"malformed listing: {exc}", plan.shard)
        body = listing.body
        if (
            plan.listing_policy is self.root_policy
            and listing.responses_out == listing.responses_in
        ):
            # No /.ids entry was cloned into view folders: the backend may hide dot-entries.
            body = await with_view_folders(self, plan, body)
        self.metrics.listing(plan.shard, listing.responses_out, listing.dropped)
        self.metrics.streamed(plan.shard, len(body), spliced=False)
        return web.Response(status=upstream.status, reason=None, headers=headers, body=body)

    async def read_listing(
        self, request: web.BaseRequest, upstream: UpstreamResponse, shard: int | None
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
            return self.broken_listing(request, problem, shard, _error_kind(exc))
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


def absolute_target(target: str) -> tuple[str, str] | Refused:
    """An absolute-form request target split into (origin-form target, Host)."""
    try:
        url = URL(target, encoded=True)
    except ValueError:
        url = None
    if url is None or url.scheme not in ("http", "https") or not url.raw_host:
        return Refused(400, f"request target {target!r} is neither a path nor an http URL")
    if "@" in url.raw_authority:
        return Refused(400, "request target has user info (user:password@); send it without")
    return url.raw_path_qs or "/", url.raw_authority


def unsatisfiable(verdict: ranges.Unsatisfiable) -> web.Response:
    """The 416 for a range past the end, saying how long the file is."""
    return web.Response(status=416, headers={"Content-Range": verdict.header()})


def _error_kind(exc: BaseException) -> str:
    """How metrics name a backend failure seen mid-reply."""
    return "timeout" if isinstance(exc, TimeoutError) else "broke_off"


async def answer_and_close(
    request: web.BaseRequest, response: web.StreamResponse
) -> web.StreamResponse:
    """Send ``response`` whole, then close the client connection."""
    await response.prepare(request)
    await response.write_eof()
    if request.transport is not None:
        request.transport.close()
    return response
