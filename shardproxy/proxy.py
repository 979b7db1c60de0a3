"""The WebDAV handler: route a request, forward it to NzbDav, stream the reply back.

The decisions live in pure modules (``shards`` for paths, ``ranges`` for the Range
contract, ``multistatus`` for PROPFIND bodies); this module is the aiohttp glue that
applies them to sockets.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from shardproxy import ranges
from shardproxy.config import Settings
from shardproxy.fallback import FallbackReads, fallback_read_shard
from shardproxy.listing.policy import RootListingPolicy, ShardListingPolicy
from shardproxy.multistatus import (
    MultistatusError,
    MultistatusFilter,
    ResponsePolicy,
    filter_multistatus,
)
from shardproxy.shards import (
    Refused,
    ShardMap,
    ShardRoute,
    owning_view_path,
    route,
)
from shardproxy.splice import splice_body

log = logging.getLogger("shardproxy.proxy")

# RFC 9110 section 7.6.1, plus the non-standard ones proxies traditionally drop. Expect
# is answered by our own server; forwarding it would make the backend wait for us.
HOP_BY_HOP_HEADERS = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "expect",
    }
)
# Bodies up to this size are read whole before forwarding; larger ones stream.
SMALL_BODY_LIMIT = 1 << 20
STREAM_CHUNK = 1 << 18
# Replies up to this size are read whole and sent in one write.
SMALL_REPLY_LIMIT = 1 << 16


def without_hop_by_hop(headers: CIMultiDictProxy[str]) -> CIMultiDict[str]:
    """A copy of ``headers`` without hop-by-hop fields, including those Connection names."""
    copy = CIMultiDict(headers)
    for value in headers.getall("Connection", ()):
        for token in value.split(","):
            copy.popall(token.strip(), None)
    # Checking a dozen names is cheaper than testing every header on this hot path.
    for name in HOP_BY_HOP_HEADERS:
        if name in copy:
            del copy[name]
    return copy


def plain_error(status: int, message: str) -> web.Response:
    """A short plain-text error the proxy answers itself."""
    return web.Response(status=status, text=message.rstrip() + "\n")


@dataclass
class UpstreamPlan:
    """What to send NzbDav for one client request, and how to treat its reply."""

    method: str
    url: URL
    headers: CIMultiDict[str]
    shard: int | None
    listing_policy: ResponsePolicy | None = None
    asked_range: ranges.FromTo | None = None


class BackendError(Exception):
    """The backend could not be asked or did not answer; ``status`` is 502 or 504."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class WebDavProxy:
    """Forwards WebDAV requests to NzbDav, presenting ``/.ids-s<N>`` shard views."""

    def __init__(
        self,
        settings: Settings,
        session: aiohttp.ClientSession,
        fallback_reads: FallbackReads | None = None,
    ) -> None:
        self.settings = settings
        self.shard_map: ShardMap = settings.shard_map
        self.fallback_reads = fallback_reads or FallbackReads(self.shard_map.count)
        self.session = session
        self.backend_origin = settings.backend.origin()
        # Policies are immutable, so every listing of a shard shares its shard's.
        self.shard_policies = [
            ShardListingPolicy(self.shard_map, shard) for shard in range(self.shard_map.count)
        ]
        self.root_policy = RootListingPolicy(self.shard_map)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Answer one client request."""
        plan = self.plan(request)
        if isinstance(plan, web.Response):
            return plan
        try:
            if "Range" in plan.headers:
                range_plan = await self.plan_range(request, plan)
                if isinstance(range_plan, web.Response):
                    return range_plan
            upstream = await self.send(plan, request)
        except BackendError as exc:
            return plain_error(exc.status, str(exc))
        try:
            if plan.listing_policy is not None and upstream.status == 207:
                return await self.relay_multistatus(request, upstream, plan)
            return await self.relay_body(request, upstream, plan)
        finally:
            # A body not read to its end must not go back to the pool: closing is what
            # stops NzbDav fetching more from Usenet when the client has gone.
            if upstream.content.is_eof():
                upstream.release()
            else:
                upstream.close()

    # --- planning ----------------------------------------------------------------

    def plan(self, request: web.Request) -> UpstreamPlan | web.Response:
        """Route the request and build what to send upstream, or the proxy's own answer."""
        raw_path, question, query = request.raw_path.partition("?")
        target = route(raw_path, self.shard_map)
        if isinstance(target, Refused):
            return plain_error(target.status, target.reason)
        shard = target.shard if isinstance(target, ShardRoute) else None
        backend_path = target.backend_path if isinstance(target, ShardRoute) else raw_path
        if shard is None:
            self.note_fallback_read(request.method, raw_path)
        headers = without_hop_by_hop(request.headers)
        headers.add("X-Forwarded-For", request.remote or "")
        if "Destination" in headers:
            destination = self.map_destination(headers["Destination"])
            if isinstance(destination, Refused):
                return plain_error(destination.status, destination.reason)
            headers["Destination"] = destination
        # encoded=True: the path and query go upstream as the client spelled them, except
        # a raw "#", which would otherwise be taken for a fragment and cut off.
        request_target = f"{backend_path}{question}{query}".replace("#", "%23")
        url = URL(f"{self.backend_origin}{request_target}", encoded=True)
        plan = UpstreamPlan(request.method, url, headers, shard)
        if request.method == "PROPFIND":
            self.plan_propfind(plan, raw_path)
        return plan

    def note_fallback_read(self, method: str, raw_path: str) -> None:
        """Count (and now and then log) a read of a shard's file that bypasses its cache."""
        shard = fallback_read_shard(method, raw_path, self.shard_map)
        if shard is not None:
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
        if plan.listing_policy is not None:
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

    async def plan_range(
        self, request: web.Request, plan: UpstreamPlan
    ) -> UpstreamPlan | web.Response:
        """Rewrite the Range header of a GET/HEAD so NzbDav reads it right."""
        if request.method not in ("GET", "HEAD"):
            return plan
        if_range = request.headers.get("If-Range")
        if if_range is not None and not ranges.if_range_is_date(if_range):
            # NzbDav sends no ETags, so an entity-tag If-Range never matches: RFC 9110
            # says send the whole file with 200, which is what NzbDav does.
            return plan
        asked = ranges.parse_range(request.headers["Range"])
        if asked is None:
            del plan.headers["Range"]
            return plan
        if isinstance(asked, ranges.Suffix):
            length = await self.content_length(plan)
            if length is None:
                # No size, no suffix: without the Range the backend answers for itself
                # (its 401 or 404, or the whole file, which RFC 9110 allows).
                del plan.headers["Range"]
                return plan
            resolved = ranges.resolve_suffix(asked, length)
            if isinstance(resolved, ranges.Unsatisfiable):
                return web.Response(
                    status=416, headers={"Content-Range": f"bytes */{resolved.length}"}
                )
            asked = resolved
        plan.headers["Range"] = ranges.upstream_range_header(asked)
        plan.asked_range = asked
        return plan

    async def content_length(self, plan: UpstreamPlan) -> int | None:
        """The size of the file a plan is about, by a HEAD to the backend."""
        headers = CIMultiDict(plan.headers)
        headers.popall("Range", None)
        headers.popall("If-Range", None)
        head = UpstreamPlan("HEAD", plan.url, headers, plan.shard)
        response = await self.send(head, None)
        response.release()
        if response.status != 200:
            return None
        return response.content_length

    async def send(self, plan: UpstreamPlan, request: web.Request | None) -> aiohttp.ClientResponse:
        """Send the plan upstream and wait for the reply's headers."""
        body = await request_body(request) if request is not None else None
        try:
            return await self.session.request(
                plan.method,
                plan.url,
                headers=plan.headers,
                data=body,
                allow_redirects=False,
                auto_decompress=False,
            )
        except TimeoutError:
            raise BackendError(
                504,
                f"backend {self.backend_origin} did not answer within "
                f"{self.settings.read_timeout:g}s",
            ) from None
        except aiohttp.ClientConnectorError as exc:
            raise BackendError(
                502, f"backend {self.backend_origin} is unreachable: {exc.os_error}"
            ) from None
        except aiohttp.ClientError as exc:
            raise BackendError(
                502, f"backend {self.backend_origin} failed: {type(exc).__name__}: {exc}"
            ) from None

    # --- relaying replies -------------------------------------------------------------

    def reply_headers(
        self, upstream: aiohttp.ClientResponse, plan: UpstreamPlan
    ) -> CIMultiDict[str]:
        """The backend's reply headers as the client should see them."""
        headers = without_hop_by_hop(upstream.headers)
        headers.popall("Content-Length", None)
        if plan.shard is not None and "Location" in headers:
            headers["Location"] = self.map_location(headers["Location"])
        return headers

    def map_location(self, location: str) -> str:
        """A Location into NzbDav's /.ids tree is shown in the owning shard's view."""
        try:
            url = URL(location, encoded=True)
        except ValueError:
            return location
        mapped = owning_view_path(url.path, self.shard_map)
        if mapped is None:
            return location
        return str(url.with_path(mapped))

    async def relay_body(
        self, request: web.Request, upstream: aiohttp.ClientResponse, plan: UpstreamPlan
    ) -> web.StreamResponse:
        """Stream the reply as it is, after checking the Range contract."""
        headers = self.reply_headers(upstream, plan)
        status = upstream.status
        length = upstream.content_length
        truncate_to: int | None = None
        if plan.asked_range is not None:
            verdict = ranges.check_ranged_reply(
                plan.asked_range, status, upstream.headers.get("Content-Range"), length
            )
            if isinstance(verdict, ranges.Reject):
                log.warning("%s %s: %s", request.method, request.raw_path, verdict.reason)
                return plain_error(502, verdict.reason)
            status = verdict.status
            if verdict.content_range is not None:
                headers["Content-Range"] = verdict.content_range.header()
            if verdict.truncate_to is not None:
                truncate_to = length = verdict.truncate_to
        has_body = request.method != "HEAD" and status not in (204, 304)
        if has_body and length is not None and length <= SMALL_REPLY_LIMIT:
            # Half of a small reply's cost is per write, so it goes out in one.
            body = await self.read_small_body(request, upstream, length)
            if isinstance(body, web.Response):
                return body
            return web.Response(status=status, reason=None, headers=headers, body=body)
        response = web.StreamResponse(status=status, reason=None, headers=headers)
        if length is not None:
            response.content_length = length
        await response.prepare(request)
        if not has_body:
            return response
        try:
            if not await splice_body(request, upstream, response, truncate_to):
                await copy_body(upstream, response, truncate_to)
        except (aiohttp.ClientPayloadError, TimeoutError, aiohttp.ClientConnectionError) as exc:
            log.warning(
                "%s %s: backend reply broke off (%s); closing the client connection so the "
                "reply does not look complete",
                request.method,
                request.raw_path,
                exc,
            )
            abort_client(request, response)
        return response

    async def read_small_body(
        self, request: web.Request, upstream: aiohttp.ClientResponse, length: int
    ) -> bytes | web.Response:
        """A short body read whole; or, if the backend breaks off, the 502 to answer.

        Nothing has been sent yet then, so the client gets a clear error instead of a cut
        connection.
        """
        try:
            return await upstream.content.readexactly(length)
        except (
            asyncio.IncompleteReadError,
            aiohttp.ClientPayloadError,
            TimeoutError,
            aiohttp.ClientConnectionError,
        ) as exc:
            reason = f"backend {self.backend_origin} broke off its reply: {type(exc).__name__}"
            log.warning("%s %s: %s", request.method, request.raw_path, reason)
            return plain_error(502, reason)

    async def relay_multistatus(
        self, request: web.Request, upstream: aiohttp.ClientResponse, plan: UpstreamPlan
    ) -> web.StreamResponse:
        """Filter a PROPFIND reply through its listing policy: whole if short, else streamed."""
        assert plan.listing_policy is not None
        encoding = upstream.headers.get("Content-Encoding", "identity").lower()
        if encoding != "identity":
            return plain_error(
                502, f"backend sent a {encoding}-encoded listing although identity was asked"
            )
        headers = self.reply_headers(upstream, plan)
        length = upstream.content_length
        if length is not None and length <= SMALL_REPLY_LIMIT:
            # A typical listing: filtered whole, sent in one write with a Content-Length.
            body = await self.read_small_body(request, upstream, length)
            if isinstance(body, web.Response):
                return body
            try:
                out = filter_multistatus(plan.listing_policy, body)
            except MultistatusError as exc:
                return self.broken_listing(request, None, f"malformed listing: {exc}")
            return web.Response(status=upstream.status, reason=None, headers=headers, body=out)
        response = web.StreamResponse(status=upstream.status, reason=None, headers=headers)
        listing = MultistatusFilter(plan.listing_policy)
        # A listing of unknown length (chunked) or a large one streams through the filter.
        # Output is held until it passes one read buffer's worth: a short one still goes
        # out in one write with a Content-Length, and a malformed one gets a clean 502.
        # Larger listings stream on, chunked, as they are filtered.
        held: list[bytes] = []
        held_size = 0
        try:
            async for chunk in upstream.content.iter_any():
                out = listing.feed(chunk)
                if not out:
                    continue
                if response.prepared:
                    await response.write(out)
                    continue
                held.append(out)
                held_size += len(out)
                if held_size > SMALL_REPLY_LIMIT:
                    await response.prepare(request)
                    await response.write(b"".join(held))
            out = listing.close()
        except MultistatusError as exc:
            return self.broken_listing(request, response, f"malformed listing: {exc}")
        except (aiohttp.ClientPayloadError, TimeoutError, aiohttp.ClientConnectionError) as exc:
            return self.broken_listing(request, response, f"listing broke off: {exc}")
        if not response.prepared:
            body = b"".join([*held, out])
            return web.Response(status=upstream.status, reason=None, headers=headers, body=body)
        await response.write(out)
        return response

    def broken_listing(
        self, request: web.Request, response: web.StreamResponse | None, problem: str
    ) -> web.StreamResponse:
        """502 if nothing was sent yet; otherwise cut the connection mid-reply."""
        log.warning("PROPFIND %s: backend %s", request.raw_path, problem)
        if response is None or not response.prepared:
            return plain_error(502, f"backend {self.backend_origin} sent a {problem}")
        abort_client(request, response)
        return response


async def request_body(request: web.Request) -> bytes | AsyncIterator[bytes] | None:
    """The client's body: read whole when small, streamed otherwise."""
    if not request.can_read_body:
        return None
    length = request.content_length
    if length is not None and length <= SMALL_BODY_LIMIT:
        return await request.read()
    return request.content.iter_chunked(STREAM_CHUNK)


async def copy_body(
    upstream: aiohttp.ClientResponse, response: web.StreamResponse, limit: int | None
) -> None:
    """Copy the backend's body to the client; ``write`` waits while the client is slow."""
    if limit is None:
        async for chunk in upstream.content.iter_any():
            await response.write(chunk)
        return
    remaining = limit
    async for chunk in upstream.content.iter_any():
        if len(chunk) >= remaining:
            await response.write(chunk[:remaining])
            return
        remaining -= len(chunk)
        await response.write(chunk)


def abort_client(request: web.Request, response: web.StreamResponse) -> None:
    """Close the client connection without finishing the reply, so it looks incomplete."""
    response.force_close()
    if request.transport is not None:
        request.transport.close()
