"""The request plan: what to send NzbDav for one client request, and how to treat its reply.

Every decision the WebDAV front makes before it opens a backend connection is taken
here from values alone: where the path goes (``shards.route``), an absolute-form
target's authority, the Destination of a COPY or MOVE, the Depth clamp, which listing
filter a PROPFIND reply needs, and whether a ``.rclonelink`` is rewritten. The front
(``web.proxy``) only carries the plan out, so these rules are tested by feeding them
requests (tests/unit/test_plan.py).
"""

from __future__ import annotations

import enum
import ipaddress
from dataclasses import dataclass
from urllib.parse import unquote

from multidict import CIMultiDict
from yarl import URL

from shardproxy.core.failover import (
    LOOPBACK_NETWORKS,
    MOUNT_HEADER,
    fallback_read_shard,
    is_fallback_mount,
    trusts_mount_header,
)
from shardproxy.core.ranges import Asked
from shardproxy.core.rclonelink import is_rclonelink, is_symlinks_path
from shardproxy.core.shards import Refused, ShardMap, ShardRoute, route


class ListingFilter(enum.Enum):
    """How a PROPFIND reply (207) is rewritten before the client sees it."""

    SHARD = "shard"  # a shard view's listing: other shards' entries out, hrefs into the view
    ROOT = "root"  # the root listing: the .ids-s<N> folders shown beside /.ids
    LINK_SIZES = "link sizes"  # /completed-symlinks: each .rclonelink listed at its new size


@dataclass(frozen=True)
class ClientRequest:
    """What the planner reads of a client request."""

    method: str
    target: str  # the request target as sent: origin form (a raw path) or absolute form
    headers: CIMultiDict[str]  # the client's headers, hop-by-hop ones already dropped
    remote: str  # the client's address, for X-Forwarded-For
    scheme: str = "http"  # how the client reached the proxy


@dataclass(frozen=True)
class PlanRules:
    """The settings the planner follows."""

    shard_map: ShardMap
    rewrite_rclonelinks: bool = False
    # Clients whose X-Shardproxy-Mount header is believed (mount_header_from).
    mount_header_from: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = LOOPBACK_NETWORKS


@dataclass
class RequestPlan:
    """What to send NzbDav for one client request, and how to treat its reply.

    Mutable for one reason: a Range is settled later, once the size of the file is
    known (``asked_range`` and the ``Range`` header).
    """

    method: str
    target: str
    headers: CIMultiDict[str]
    shard: int | None
    listing: ListingFilter | None = None
    asked_range: Asked | None = None
    rewrite_link: bool = False  # a .rclonelink served with its target in a shard view
    scheme: str = "http"  # how the client reached the proxy
    # A read of shard N's file that does not go through shard N's view (its cache).
    fallback_shard: int | None = None


def plan_request(request: ClientRequest, rules: PlanRules) -> RequestPlan | Refused:
    """Route the request and build what to send upstream, or the proxy's own refusal."""
    headers = request.headers
    request_target = request.target
    if not request_target.startswith("/"):
        # Absolute form (RFC 9112 3.2.2): its authority replaces any Host header.
        absolute = absolute_target(request_target)
        if isinstance(absolute, Refused):
            return absolute
        request_target, headers["Host"] = absolute
    raw_path, question, query = request_target.partition("?")
    target = route(raw_path, rules.shard_map)
    if isinstance(target, Refused):
        return target
    method = request.method
    if isinstance(target, ShardRoute):
        shard: int | None = target.shard
        backend_path = target.backend_path
    else:
        shard, backend_path = None, raw_path
    fallback_shard = None
    if shard is None or (
        is_fallback_mount(headers.get(MOUNT_HEADER))
        and trusts_mount_header(request.remote, rules.mount_header_from)
    ):
        fallback_shard = fallback_read_shard(method, backend_path, rules.shard_map)
    headers.add("X-Forwarded-For", request.remote)
    if "Destination" in headers:
        destination = map_destination(headers["Destination"], rules.shard_map)
        if isinstance(destination, Refused):
            return destination
        headers["Destination"] = destination
    # The path and query go upstream as the client spelled them, except a raw "#",
    # which a backend would take for a fragment and cut off.
    upstream_target = f"{backend_path}{question}{query}".replace("#", "%23")
    plan = RequestPlan(
        method,
        upstream_target,
        headers,
        shard,
        scheme=request.scheme,
        fallback_shard=fallback_shard,
    )
    if (
        rules.rewrite_rclonelinks
        and shard is None
        and method in ("GET", "HEAD")
        and is_rclonelink(unquote(raw_path))
    ):
        plan.rewrite_link = True
    if method == "PROPFIND":
        plan_propfind(plan, raw_path, rules)
    return plan


def clamp_depth(depth: str | None) -> str:
    """The Depth sent upstream: "0" or "1" as asked; anything else (or none) is "1".

    NzbDav treats a missing Depth as infinity and would walk 16^5 virtual folders under
    /.ids; a listing one level deep is what every client needs.
    """
    asked = (depth or "infinity").strip().lower()
    return asked if asked in ("0", "1") else "1"


def plan_propfind(plan: RequestPlan, raw_path: str, rules: PlanRules) -> None:
    """Clamp Depth and choose the listing filter."""
    asked = plan.headers.get("Depth")
    depth = clamp_depth(asked)
    if asked is None or asked.strip().lower() != depth:
        plan.headers["Depth"] = depth
    if plan.shard is not None:
        plan.listing = ListingFilter.SHARD
    elif raw_path == "/" and depth == "1":
        plan.listing = ListingFilter.ROOT
    elif rules.rewrite_rclonelinks and is_symlinks_path(unquote(raw_path)):
        plan.listing = ListingFilter.LINK_SIZES
    if plan.listing is not None:
        # The filter reads XML; a compressed listing could not be filtered.
        plan.headers["Accept-Encoding"] = "identity"


def map_destination(destination: str, shard_map: ShardMap) -> str | Refused:
    """Map a COPY/MOVE Destination that points into a shard view to NzbDav's tree."""
    try:
        url = URL(destination, encoded=True)
    except ValueError as exc:
        return Refused(400, f"Destination {destination!r} is not a URL: {exc}")
    target = route(url.raw_path or "/", shard_map)
    if isinstance(target, Refused):
        return Refused(400, f"Destination {destination}: {target.reason}")
    if not isinstance(target, ShardRoute):
        return destination
    return str(url.with_path(target.backend_path, encoded=True))


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
