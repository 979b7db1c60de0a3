"""The RC listener: one rclone remote-control endpoint in front of the shard rclones.

Callers are checked (Basic auth, allow-list), each call is planned by ``rcroute`` and sent
to the rclones concurrently, and what could not be delivered is kept and retried with
backoff. The pending deliveries live in memory only: a restart of shardproxy loses them
(and logs how many it lost).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hmac
import logging
import random
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
from aiohttp import web
from yarl import URL

from shardproxy import __version__
from shardproxy.config import Settings
from shardproxy.rcinflight import InFlight
from shardproxy.rcroute import (
    PATH_COMMANDS,
    Delivery,
    Failure,
    Outcome,
    RcError,
    Reply,
    Target,
    TargetCall,
    Topology,
    delivered_by,
    error_body,
    fanout_params,
    merge_fanout,
    merge_path_reply,
    parse_params,
    plan_calls,
    plan_fanout,
    plan_path_call,
    read_path_call,
    refusal,
    unmap,
)

log = logging.getLogger("shardproxy.rc")

# rclone's replies are small JSON objects; this only stops a confused peer.
MAX_REPLY_BYTES = 16 << 20
MAX_REQUEST_BYTES = 8 << 20
# The retry loop wakes at least this often to drop deliveries past their age.
IDLE_WAKE_SECONDS = 30.0
# How often the retry loop looks again while what is due is still on its way.
IN_FLIGHT_POLL_SECONDS = 0.5
# Reasons for undeliverable paths that are logged once at WARNING, then at DEBUG.
MAX_WARNED_REASONS = 1000
# How many dropped paths a shutdown names in its log line.
SHUTDOWN_SAMPLE = 20

DeliveryKey = tuple[Target, str, str, str]


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with jitter: ``base * 2**(n-1)``, capped, times 0.5..1."""

    base: float = 1.0
    cap: float = 60.0

    def delay(self, failures: int, rand: Callable[[], float] = random.random) -> float:
        """Seconds to wait after the ``failures``-th failure in a row."""
        ceiling = min(self.cap, self.base * 2.0 ** min(max(failures - 1, 0), 32))
        return ceiling * (0.5 + 0.5 * rand())


@dataclass(frozen=True)
class _Pending:
    delivery: Delivery
    since: float


@dataclass
class _TargetHealth:
    failures: int = 0
    next_try: float = 0.0
    reason: str = ""


@dataclass
class PendingDeliveries:
    """Forgets and refreshes an rclone has not confirmed yet, merged per rclone and path.

    Bounded by count (the oldest is dropped first) and by age; every drop is logged
    with its path. ``pending_count`` and ``oldest_pending_age`` are for metrics.
    """

    max_count: int
    max_age: float
    backoff: Backoff = field(default_factory=Backoff)
    clock: Callable[[], float] = time.monotonic
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    _items: dict[DeliveryKey, _Pending] = field(default_factory=dict)
    _health: dict[Target, _TargetHealth] = field(default_factory=dict)

    @property
    def pending_count(self) -> int:
        """How many (rclone, path) deliveries wait for a retry."""
        return len(self._items)

    @property
    def oldest_pending_age(self) -> float:
        """Seconds since the oldest waiting delivery first failed (0 when none waits)."""
        if not self._items:
            return 0.0
        return max(0.0, self.clock() - min(p.since for p in self._items.values()))

    @property
    def failing_targets(self) -> dict[str, str]:
        """Rclones whose last call failed, by name, with the reason (for status pages)."""
        return {t.name: h.reason for t, h in sorted(self._health.items()) if h.failures}

    def pending_for(self, target: Target) -> list[Delivery]:
        """The deliveries waiting for ``target``, oldest first."""
        return [p.delivery for p in self._items.values() if p.delivery.target == target]

    def record(self, call: TargetCall, outcome: Outcome) -> dict[DeliveryKey, str]:
        """Take in one call's outcome: settle what it confirmed, keep the rest for retry."""
        confirmed = delivered_by(call, outcome)
        for delivery in call.deliveries:
            if delivery.key in confirmed:
                self._settle(delivery)
        missing = [d for d in call.deliveries if d.key not in confirmed]
        if isinstance(outcome, Failure):
            self._failed(call.target, outcome.reason)
        elif missing:
            self._failed(call.target, "its reply did not confirm every path")
        else:
            self._answered(call.target)
        self._keep(missing)
        return confirmed

    def reason_for(self, target: Target) -> str:
        """Why ``target`` failed last, or ''."""
        health = self._health.get(target)
        return health.reason if health else ""

    def due_targets(self) -> list[Target]:
        """Rclones with waiting deliveries whose backoff has run out."""
        now = self.clock()
        targets = {p.delivery.target for p in self._items.values()}
        return sorted(t for t in targets if self._health_of(t).next_try <= now)

    def seconds_until_due(self) -> float | None:
        """How long until the next retry is due, or None when nothing waits."""
        targets = {p.delivery.target for p in self._items.values()}
        if not targets:
            return None
        soonest = min(self._health_of(t).next_try for t in targets)
        return max(0.0, soonest - self.clock())

    def expire(self) -> None:
        """Drop deliveries that have waited longer than ``max_age``, logging each path."""
        now = self.clock()
        for key, pending in list(self._items.items()):
            if now - pending.since > self.max_age:
                del self._items[key]
                self._log_drop(pending, f"it waited over {self.max_age:g} s (rc_pending_max_age)")

    def drop_all(self) -> None:
        """Forget everything at shutdown, saying how much was lost."""
        if not self._items:
            return
        sample = [
            f"{p.delivery.command} {unmap(p.delivery.target, p.delivery.path)!r} "
            f"for {p.delivery.target}"
            for p in list(self._items.values())[:SHUTDOWN_SAMPLE]
        ]
        more = len(self._items) - len(sample)
        log.warning(
            "shutting down with %d undelivered RC path(s), kept in memory only and now lost: %s%s",
            len(self._items),
            "; ".join(sample),
            f" and {more} more" if more > 0 else "",
        )
        self._items.clear()

    def _health_of(self, target: Target) -> _TargetHealth:
        return self._health.setdefault(target, _TargetHealth())

    def _settle(self, delivery: Delivery) -> None:
        pending = self._items.get(delivery.key)
        # A plain refresh does not settle a waiting recursive one.
        if pending and (delivery.recursive or not pending.delivery.recursive):
            del self._items[delivery.key]

    def _keep(self, deliveries: Iterable[Delivery]) -> None:
        added = False
        for delivery in deliveries:
            pending = self._items.get(delivery.key)
            if pending is not None:
                if delivery.recursive and not pending.delivery.recursive:
                    self._items[delivery.key] = _Pending(delivery, pending.since)
                continue
            while len(self._items) >= self.max_count:
                oldest_key = next(iter(self._items))
                self._log_drop(
                    self._items.pop(oldest_key),
                    f"{self.max_count} paths already wait (rc_pending_max)",
                )
            self._items[delivery.key] = _Pending(delivery, self.clock())
            added = True
        if added:
            self.changed.set()

    def _failed(self, target: Target, reason: str) -> None:
        health = self._health_of(target)
        health.failures += 1
        health.next_try = self.clock() + self.backoff.delay(health.failures)
        if health.failures == 1:
            log.warning("RC calls to %s fail, retrying with backoff: %s", target, reason)
        else:
            log.debug("RC call to %s failed again (%d): %s", target, health.failures, reason)
        health.reason = reason

    def _answered(self, target: Target) -> None:
        health = self._health_of(target)
        if health.failures:
            log.info("%s answers RC calls again after %d failure(s)", target, health.failures)
            health.failures = 0
            health.reason = ""
        health.next_try = 0.0
        if any(p.delivery.target == target for p in self._items.values()):
            self.changed.set()

    def _log_drop(self, pending: _Pending, why: str) -> None:
        delivery = pending.delivery
        log.error(
            "dropped undelivered %s of %r for %s (%s as that rclone sees it): %s; last error: %s",
            delivery.command,
            unmap(delivery.target, delivery.path),
            delivery.target,
            repr(delivery.path),
            why,
            self.reason_for(delivery.target) or "none",
        )


RC_DELIVERY = web.AppKey("rc_delivery", PendingDeliveries)


@dataclass(frozen=True)
class Endpoint:
    """Where one rclone's RC listens, with its credentials taken out of the URL."""

    url: URL
    headers: Mapping[str, str]

    @classmethod
    def from_url(cls, url: URL) -> Endpoint:
        """``http://user:pass@host:port/`` -> URL without userinfo, plus its headers."""
        # Exactly this type: rclone 1.60.1 ignores a JSON body labelled with a charset.
        headers = {"Content-Type": "application/json"}
        if url.user is not None or url.password is not None:
            headers["Authorization"] = aiohttp.encode_basic_auth(url.user or "", url.password or "")
        return cls(url.with_user(None).with_password(None), headers)

    def command_url(self, command: str) -> URL:
        """The URL to POST ``command`` to."""
        return self.url.with_path(self.url.path.rstrip("/") + "/" + command)


class RcForwarder:
    """Sends planned calls to the rclones and turns every result into an Outcome."""

    def __init__(
        self, session: aiohttp.ClientSession, endpoints: Mapping[Target, Endpoint], timeout: float
    ) -> None:
        self.session = session
        self.endpoints = endpoints
        self.timeout = aiohttp.ClientTimeout(total=timeout)

    async def send(self, call: TargetCall) -> Outcome:
        """POST one call as ``application/json`` exactly (1.60.1 ignores anything else)."""
        endpoint = self.endpoints[call.target]
        try:
            async with self.session.post(
                endpoint.command_url(call.command),
                data=orjson.dumps(call.params),
                headers=endpoint.headers,
                timeout=self.timeout,
            ) as response:
                raw = await response.content.read(MAX_REPLY_BYTES + 1)
                status = response.status
        except TimeoutError:
            return Failure(f"no answer within {self.timeout.total:g} s (rc_timeout)")
        except (aiohttp.ClientError, OSError) as exc:
            return Failure(f"{type(exc).__name__}: {exc}")
        if len(raw) > MAX_REPLY_BYTES:
            return Failure(f"reply larger than {MAX_REPLY_BYTES} bytes")
        try:
            body = orjson.loads(raw)  # 1.60.1 labels JSON text/plain: read by content
        except orjson.JSONDecodeError:
            snippet = raw[:120].decode("utf-8", "replace")
            return Failure(f"HTTP {status} with a reply that is not JSON: {snippet!r}")
        if status != 200:
            message = body.get("error") if isinstance(body, dict) else None
            return Failure(f"HTTP {status}: {message if message else repr(body)}")
        if not isinstance(body, dict):
            return Failure(f"reply is JSON but not an object: {raw[:120]!r}")
        return Reply(body)

    async def send_all(self, calls: Iterable[TargetCall]) -> list[tuple[TargetCall, Outcome]]:
        """Send calls concurrently; each gets an Outcome, none raises."""
        planned = list(calls)
        outcomes = await asyncio.gather(*(self.send(call) for call in planned))
        return list(zip(planned, outcomes, strict=True))


def topology_of(settings: Settings) -> Topology:
    """The rclones ``settings`` names, as rcroute sees them."""
    fs_names = {Target("shard", n): name for n, name in settings.shard_rc_fs.items()}
    return Topology(
        settings.shard_map,
        frozenset(settings.shard_rc),
        len(settings.rc_fallback),
        fs_names,
    )


def endpoints_of(settings: Settings) -> dict[Target, Endpoint]:
    """Every rclone's RC endpoint by target."""
    endpoints = {Target("shard", n): Endpoint.from_url(u) for n, u in settings.shard_rc.items()}
    for k, url in enumerate(settings.rc_fallback):
        endpoints[Target("fallback", k)] = Endpoint.from_url(url)
    return endpoints


def _json_response(body: Mapping[str, Any], status: int = 200) -> web.Response:
    return web.Response(
        body=orjson.dumps(body, option=orjson.OPT_INDENT_2) + b"\n",
        status=status,
        content_type="application/json",
    )


def _error_response(command: str, params: Mapping[str, Any], error: RcError) -> web.Response:
    return _json_response(error_body(command, params, error.message, error.status), error.status)


def _authorized(request: web.Request, user: str | None, password: str | None) -> bool:
    if user is None and password is None:
        return True
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        given = base64.b64decode(token.strip(), validate=True)
    except ValueError:
        return False
    # Compare the whole "user:pass" in constant time, as the caller's client encoded it.
    expected = f"{user or ''}:{password or ''}".encode()
    return hmac.compare_digest(given, expected)


class RcHandler:
    """Answers RC calls: auth, allow-list, planning, sending, merging."""

    def __init__(self, settings: Settings, delivery: PendingDeliveries) -> None:
        self.settings = settings
        self.topology = topology_of(settings)
        self.delivery = delivery
        # Set while the app runs: the client session only exists inside its event loop.
        self.forwarder: RcForwarder | None = None
        self.in_flight = InFlight()
        self._warned: set[str] = set()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """One RC request."""
        if not _authorized(request, self.settings.rc_user, self.settings.rc_pass):
            return web.Response(
                status=401,
                text="Unauthorized\n",
                headers={"WWW-Authenticate": 'Basic realm="shardproxy rc"'},
            )
        command = request.path.lstrip("/")
        if request.method == "OPTIONS":
            return web.Response(status=200)
        if request.method in ("GET", "HEAD"):
            return _error_response(command, {}, RcError(404, "use POST for RC calls"))
        if request.method != "POST":
            return _error_response(
                command, {}, RcError(405, f"method {request.method!r} not allowed")
            )
        refused = refusal(command)
        if refused is not None:
            log.warning("refused RC call %r from %s", command, request.remote)
            return _error_response(command, {}, refused)
        params: dict[str, Any] = {}
        forwarder = self.forwarder
        if forwarder is None:
            return _error_response(command, params, RcError(503, "the RC endpoint is starting"))
        try:
            params = parse_params(
                request.query.items(), request.headers.get("Content-Type"), await request.read()
            )
            if command in PATH_COMMANDS:
                reply = await self._path_call(forwarder, command, params)
            else:
                reply = await self._fanout_call(forwarder, command, params)
        except RcError as error:
            return _error_response(command, params, error)
        return _json_response(reply)

    async def _path_call(
        self, forwarder: RcForwarder, command: str, params: Mapping[str, Any]
    ) -> dict[str, Any]:
        plan = plan_path_call(read_path_call(command, params), self.topology)
        free, running = self.in_flight.split(plan.deliveries)
        calls = plan_calls(free, self.topology) if running else list(plan.calls)
        sent, shared = await asyncio.gather(
            self.in_flight.send(forwarder.send_all, calls), self.in_flight.join(running)
        )
        confirmed: dict[DeliveryKey, str] = {}
        failures: dict[Target, str] = {}
        for call, outcome in [*sent, *shared]:
            if isinstance(outcome, Failure):
                failures[call.target] = outcome.reason
        for call, outcome in sent:
            confirmed.update(self.delivery.record(call, outcome))
        for call, outcome in shared:
            # The call that carried it records it (and keeps it for retry if it failed).
            confirmed.update(delivered_by(call, outcome))
        for planned in plan.paths:
            if planned.placement.missing:
                self._warn_undeliverable(command, planned.param.path, planned.placement.missing)
        log.debug(
            "%s: %d path(s) in %d call(s), %d confirmed, failed: %s",
            command,
            len(plan.paths),
            len(plan.calls),
            len(confirmed),
            failures or "none",
        )
        return merge_path_reply(plan, confirmed, failures)

    def _warn_undeliverable(self, command: str, path: str, why: str) -> None:
        # NzbDav repeats the same kind of path on every change: say it once per reason.
        seen = why in self._warned
        if not seen and len(self._warned) < MAX_WARNED_REASONS:
            self._warned.add(why)
        level = logging.DEBUG if seen else logging.WARNING
        log.log(level, "%s of %r is not delivered everywhere: %s", command, path, why)

    async def _fanout_call(
        self, forwarder: RcForwarder, command: str, params: Mapping[str, Any]
    ) -> dict[str, Any]:
        calls = plan_fanout(command, fanout_params(command, params), self.topology)
        outcomes = {call.target: outcome for call, outcome in await forwarder.send_all(calls)}
        return merge_fanout(command, params, outcomes, __version__)


async def retry_forever(
    delivery: PendingDeliveries, forwarder: RcForwarder, topology: Topology, in_flight: InFlight
) -> None:
    """Resend waiting deliveries to each rclone whose backoff has run out, forever."""
    while True:
        delivery.changed.clear()
        delivery.expire()
        due = delivery.due_targets()
        sent = False
        if due:
            try:
                sent = await _retry_targets(delivery, forwarder, topology, due, in_flight)
            except Exception:
                # A bug here must not end retries for good: log it and carry on.
                log.exception("RC retry round failed")
                await asyncio.sleep(1.0)
                continue
        if sent:
            continue
        # Nothing due, or all of it still on its way in a caller's call: wait for news.
        wait = delivery.seconds_until_due() if not due else IN_FLIGHT_POLL_SECONDS
        timeout = IDLE_WAKE_SECONDS if wait is None else min(wait, IDLE_WAKE_SECONDS)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(delivery.changed.wait(), timeout)


async def _retry_targets(
    delivery: PendingDeliveries,
    forwarder: RcForwarder,
    topology: Topology,
    due: list[Target],
    in_flight: InFlight,
) -> bool:
    """Resend what waits for the due rclones, except what is on its way; False if nothing."""
    waiting = [d for t in due for d in delivery.pending_for(t) if not in_flight.is_running(d)]
    free, _ = in_flight.split(waiting)
    calls = plan_calls(free, topology)
    for call, outcome in await in_flight.send(forwarder.send_all, calls):
        confirmed = delivery.record(call, outcome)
        if confirmed:
            log.info("delivered %d waiting RC path(s) to %s", len(confirmed), call.target)
    return bool(calls)


RC_IN_FLIGHT = web.AppKey("rc_in_flight", InFlight)


def make_rc_app(settings: Settings, *, backoff: Backoff | None = None) -> web.Application:
    """The RC endpoint as an aiohttp app; it owns its client session and retry task."""
    app = web.Application(client_max_size=MAX_REQUEST_BYTES)
    delivery = PendingDeliveries(
        max_count=settings.rc_pending_max,
        max_age=settings.rc_pending_max_age,
        backoff=backoff or Backoff(),
    )
    app[RC_DELIVERY] = delivery
    topology = topology_of(settings)
    handler = RcHandler(settings, delivery)
    app[RC_IN_FLIGHT] = handler.in_flight
    app.router.add_route("*", "/{command:.*}", handler.handle)

    async def lifetime(app: web.Application) -> AsyncIterator[None]:
        connector = aiohttp.TCPConnector(limit=64, limit_per_host=8)
        async with aiohttp.ClientSession(connector=connector) as session:
            forwarder = RcForwarder(session, endpoints_of(settings), settings.rc_timeout)
            handler.forwarder = forwarder
            task = asyncio.create_task(
                retry_forever(delivery, forwarder, topology, handler.in_flight)
            )
            try:
                yield
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                handler.forwarder = None
                delivery.drop_all()

    app.cleanup_ctx.append(lifetime)
    return app
