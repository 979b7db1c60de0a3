"""The proxy's own answers for NzbDav's virtual ``.ids`` folders (setting ``virtual_levels``).

A PROPFIND, GET or HEAD of a shard view's folder above the fifth level is answered here
from the shard map, as NzbDav's answer would reach the client through the shard filter
(``listing.virtual`` writes it), without asking NzbDav: a scan saves a round trip per
folder, and a view whose rclone restarted while NzbDav is down still lists its upper
levels, so a lookup of another shard's path fails at once instead of after retries.

Leaf folders and files go to NzbDav, and so does every request this module could not
answer exactly as NzbDav would: a Range, a query, a Host NzbDav might spell otherwise, a
chunked or large body, or (when ``nzbdav_pass`` is set) a login other than
``nzbdav_user``/``nzbdav_pass``, which NzbDav judges itself.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from shardproxy.config.settings import Settings
from shardproxy.core.plan import RequestPlan
from shardproxy.core.shards import ViewPath
from shardproxy.listeners.basicauth import authorized
from shardproxy.listing.propfind import PropfindBodyError, read_propfind
from shardproxy.listing.virtual import (
    CONTENT_TYPE,
    VIRTUAL_DATE,
    nzbdav_origin,
    render_virtual_folder,
    virtual_folder,
)
from shardproxy.telemetry.metrics import Metrics
from shardproxy.web.bodies import ClientStalled

log = logging.getLogger("shardproxy.web.virtual")

# A PROPFIND body names a few properties; a larger one is left to NzbDav.
MAX_PROPFIND_BODY = 64 << 10


class VirtualLevels:
    """Answers requests for a shard view's folders above the fifth level."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.shard_map = settings.shard_map
        self.user = settings.nzbdav_user
        self.password = settings.nzbdav_pass
        self.body_timeout = settings.body_timeout
        self.listing_max_bytes = settings.listing_max_bytes
        self.metrics = metrics

    def folder_of(self, plan: RequestPlan) -> ViewPath | None:
        """The virtual folder a planned request names, or None (most requests: no await)."""
        if plan.shard is None or plan.method not in ("PROPFIND", "GET", "HEAD"):
            return None
        return virtual_folder(plan.target, plan.shard, self.shard_map)

    async def answer(
        self, request: web.BaseRequest, plan: RequestPlan, folder: ViewPath
    ) -> web.StreamResponse | None:
        """The proxy's own reply to a request for ``folder`` (``folder_of``), or None to
        send it to NzbDav.

        ClientStalled if a PROPFIND body stops arriving for ``body_timeout``.
        """
        if self.password is not None and not authorized(request, self.user, self.password):
            return None  # NzbDav decides what a login it may not know is worth
        if plan.method != "PROPFIND":
            if "Range" in plan.headers:
                return None
            # NzbDav's GET of a folder: an empty stream, so No Content, with its date.
            return web.Response(status=204, headers={"Last-Modified": VIRTUAL_DATE})
        hosts = plan.headers.getall("Host", [])
        origin = nzbdav_origin(hosts[0]) if len(hosts) == 1 else None
        depth = plan.headers.get("Depth", "").strip()  # the planner made it 0 or 1
        if origin is None or depth not in ("0", "1"):
            return None
        body = await self.read_body(request)
        if body is None:
            return None
        try:
            asked = read_propfind(body)
        except PropfindBodyError as exc:
            log.debug("PROPFIND %s: %s; answered 500 as NzbDav does", request.raw_path, exc)
            return web.Response(status=500)
        cap = self.listing_max_bytes
        listing = render_virtual_folder(
            folder, origin, int(depth), asked, self.shard_map, max_bytes=cap
        )
        if listing is None:
            # What the same request asked of NzbDav gets: its listing is over the cap.
            reason = (
                f"listing larger than {cap} bytes (listing_max_bytes): the PROPFIND asks for "
                f"{len(asked.names)} properties"
            )
            log.warning("PROPFIND %s: %s", request.raw_path, reason)
            return web.Response(status=502, text=reason + "\n")
        self.metrics.streamed(plan.shard, len(listing), spliced=False)
        return web.Response(status=207, body=listing, headers={"Content-Type": CONTENT_TYPE})

    async def read_body(self, request: web.BaseRequest) -> bytes | None:
        """The PROPFIND body NzbDav would read (only one a Content-Length announces), or
        None when it is chunked or too large to take here."""
        if not request.body_exists:
            return b""
        length = request.content_length
        if length is None or length > MAX_PROPFIND_BODY:
            return None
        try:
            async with asyncio.timeout(self.body_timeout):
                return await request.content.readexactly(length)
        except TimeoutError:
            raise ClientStalled(
                f"request body: not all of it arrived within {self.body_timeout:g}s (body_timeout)"
            ) from None
        except asyncio.IncompleteReadError:
            raise ClientStalled("request body: the client stopped before its end") from None
