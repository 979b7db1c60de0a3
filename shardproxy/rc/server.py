"""The RC listener: one rclone remote-control endpoint in front of the shard rclones.

Callers are checked (Basic auth, allow-list), each call is planned by ``rcroute`` and sent
to the rclones concurrently (``rcsend``); what could not be delivered is saved and retried
(``rcqueue``). A huge call (NzbDav may name hundreds of thousands of paths) is parsed,
planned and answered on a thread, so WebDAV traffic on the same event loop goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import orjson
from aiohttp import web

from shardproxy import __version__
from shardproxy.config.settings import Settings
from shardproxy.listeners.basicauth import authorized, unauthorized
from shardproxy.rc.calls import (
    PATH_COMMANDS,
    RcError,
    command_label,
    error_body,
    fanout_params,
    parse_params,
    read_path_call,
    refusal,
)
from shardproxy.rc.fanout import merge_fanout, plan_fanout
from shardproxy.rc.inflight import InFlight, Joined
from shardproxy.rc.pending import Backoff, DeliveryKey, PendingDeliveries
from shardproxy.rc.queue import RetryQueue, retry_forever
from shardproxy.rc.replies import Failure, delivered_by, merge_path_reply
from shardproxy.rc.route import PathPlan, plan_calls, plan_path_call
from shardproxy.rc.send import RcForwarder, endpoints_of, topology_of
from shardproxy.rc.store import PendingStore
from shardproxy.rc.targets import Delivery, Target, Topology
from shardproxy.telemetry.metrics import Metrics

log = logging.getLogger("shardproxy.rc")
T = TypeVar("T")

MAX_REQUEST_BYTES = 8 << 20
# Bodies (and path counts) above this are parsed, planned and answered on a thread:
# below it a thread costs more than the work.
OFF_LOOP_BYTES = 64 << 10
OFF_LOOP_PATHS = 1000
# A huge call marks its deliveries as on their way this many at a time, yielding between.
SPLIT_CHUNK = 5000
# A garbage-collection threshold that is never reached.
NEVER = 1 << 30
# Reasons for undeliverable paths that are logged once at WARNING, then at DEBUG.
MAX_WARNED_REASONS = 1000

RC_DELIVERY = web.AppKey("rc_delivery", PendingDeliveries)
RC_IN_FLIGHT = web.AppKey("rc_in_flight", InFlight)


async def _maybe_off_loop(big: bool, function: Callable[..., T], *args: Any) -> T:
    """``function(*args)``, on a thread when ``big``."""
    if big:
        return await asyncio.to_thread(function, *args)
    return function(*args)


def _json_bytes(body: Mapping[str, Any]) -> bytes:
    return orjson.dumps(body, option=orjson.OPT_INDENT_2) + b"\n"


def _json_response(body: Mapping[str, Any], status: int = 200) -> web.Response:
    return web.Response(
        body=_json_bytes(body),
        status=status,
        content_type="application/json",
    )


def _error_response(command: str, params: Mapping[str, Any], error: RcError) -> web.Response:
    return _json_response(error_body(command, params, error.message, error.status), error.status)


class RcHandler:
    """Answers RC calls: auth, allow-list, planning, sending, merging."""

    def __init__(
        self, settings: Settings, queue: RetryQueue, metrics: Metrics | None = None
    ) -> None:
        self.settings = settings
        self.metrics = metrics or Metrics()
        self.topology = topology_of(settings)
        self.queue = queue
        # Set while the app runs: the client session only exists inside its event loop.
        self.forwarder: RcForwarder | None = None
        self.in_flight = InFlight()
        self._big_calls = 0
        self._gc_thresholds = gc.get_threshold()
        self._warned: set[str] = set()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """One RC request, counted by command and outcome."""
        response = await self._answer(request)
        self.metrics.rc_call(command_label(request.path.lstrip("/")), response.status)
        return response

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        if not authorized(request, self.settings.rc_user, self.settings.rc_pass):
            return unauthorized("shardproxy rc")
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
            body = await request.read()
            big = len(body) > OFF_LOOP_BYTES
            with self._gc_paused(big):
                params = await _maybe_off_loop(
                    big,
                    parse_params,
                    list(request.query.items()),
                    request.headers.get("Content-Type"),
                    body,
                )
                if command in PATH_COMMANDS:
                    reply = await self.path_call(forwarder, command, params, big)
                else:
                    reply = await self._fanout_call(forwarder, command, params)
                answer = await _maybe_off_loop(big, _json_bytes, reply)
        except RcError as error:
            return _error_response(command, params, error)
        return web.Response(body=answer, content_type="application/json")

    @contextlib.contextmanager
    def _gc_paused(self, big: bool) -> Iterator[None]:
        """Only young-generation garbage collection while a huge call is handled.

        Its hundreds of thousands of objects would make every full collection hold the
        event loop (and WebDAV with it) for a second or more. Young collections stay
        cheap and still free the call's short-lived cycles; its long-lived objects are
        freed by their reference counts when it ends.
        """
        if not big:
            yield
            return
        if self._big_calls == 0:
            self._gc_thresholds = gc.get_threshold()
            gc.set_threshold(self._gc_thresholds[0], NEVER, NEVER)
        self._big_calls += 1
        try:
            yield
        finally:
            self._big_calls -= 1
            if self._big_calls == 0:
                gc.set_threshold(*self._gc_thresholds)

    async def path_call(
        self, forwarder: RcForwarder, command: str, params: Mapping[str, Any], big: bool
    ) -> dict[str, Any]:
        """A forget or refresh: sent to the owners, and what they did not confirm saved
        for retry before the reply (which says "will retry") is built."""
        plan, unplaced = await _maybe_off_loop(big, _plan, command, params, self.topology)
        big = big or len(plan.paths) > OFF_LOOP_PATHS
        free, running = await self._split(plan.deliveries, big)
        calls = (
            await _maybe_off_loop(big, plan_calls, free, self.topology)
            if running
            else list(plan.calls)
        )
        confirmed: dict[DeliveryKey, str] = {}
        failures: dict[Target, str] = {}
        unconfirmed: dict[Target, int] = {}

        async def send_own() -> None:
            # Each reply is recorded as it comes back (at most MAX_PATHS_PER_CALL paths),
            # so the loop is never held for the whole call.
            with self.queue.pending.batch():
                async for call, outcome in self.in_flight.send_each(forwarder.as_done, calls):
                    if isinstance(outcome, Failure):
                        failures[call.target] = outcome.reason
                    got = self.queue.pending.record(call, outcome)
                    confirmed.update(got)
                    missing = sum(1 for d in call.deliveries if d.key not in got)
                    if missing:
                        unconfirmed[call.target] = unconfirmed.get(call.target, 0) + missing

        _, shared = await asyncio.gather(send_own(), self.in_flight.join(running))
        for call, outcome in shared:
            if isinstance(outcome, Failure):
                failures[call.target] = outcome.reason
            # The call that carried it records it (and keeps it for retry if it failed).
            confirmed.update(delivered_by(call, outcome))
        # Saved before the reply says "will retry": a restart now loses nothing.
        await self.queue.save()
        self._log_undelivered(plan, unplaced, unconfirmed, failures)
        return await _maybe_off_loop(big, merge_path_reply, plan, confirmed, failures)

    def _log_undelivered(
        self,
        plan: PathPlan,
        unplaced: Mapping[str, tuple[int, str]],
        unconfirmed: Mapping[Target, int],
        failures: Mapping[Target, str],
    ) -> None:
        """One line per reason a path has no rclone, and per rclone that did not confirm."""
        command = plan.call.command
        for why, (count, example) in unplaced.items():
            # NzbDav repeats the same kind of path on every change: say it once per reason.
            seen = why in self._warned
            if not seen and len(self._warned) < MAX_WARNED_REASONS:
                self._warned.add(why)
            log.log(
                logging.DEBUG if seen else logging.WARNING,
                "%s of %d path(s), e.g. %r, is not delivered everywhere: %s",
                command,
                count,
                example,
                why,
            )
        for target, count in sorted(unconfirmed.items()):
            log.warning(
                "%s of %d path(s) not confirmed by %s, kept for retry: %s",
                command,
                count,
                target,
                failures.get(target, "its reply did not confirm every path"),
            )
        log.debug("%s: %d path(s) in %d call(s)", command, len(plan.paths), len(plan.calls))

    async def _split(
        self, deliveries: tuple[Delivery, ...], big: bool
    ) -> tuple[list[Delivery], list[Joined]]:
        """``InFlight.split`` in chunks with a yield between them when the call is big."""
        if not big:
            return self.in_flight.split(deliveries)
        free: list[Delivery] = []
        running: list[Joined] = []
        for start in range(0, len(deliveries), SPLIT_CHUNK):
            more_free, more_running = self.in_flight.split(deliveries[start : start + SPLIT_CHUNK])
            free += more_free
            running += more_running
            await asyncio.sleep(0)
        return free, running

    async def _fanout_call(
        self, forwarder: RcForwarder, command: str, params: Mapping[str, Any]
    ) -> dict[str, Any]:
        calls = plan_fanout(command, fanout_params(command, params), self.topology)
        outcomes = {call.target: outcome for call, outcome in await forwarder.send_all(calls)}
        return merge_fanout(command, params, outcomes, __version__)


def _plan(
    command: str, params: Mapping[str, Any], topology: Topology
) -> tuple[PathPlan, dict[str, tuple[int, str]]]:
    """The plan, and per reason a path has no rclone: how many such paths, and one."""
    plan = plan_path_call(read_path_call(command, params), topology)
    unplaced: dict[str, tuple[int, str]] = {}
    for planned in plan.paths:
        why = planned.placement.missing
        if why:
            count, example = unplaced.get(why, (0, planned.param.path))
            unplaced[why] = (count + 1, example)
    return plan, unplaced


def open_store(settings: Settings) -> PendingStore | None:
    """The durable RC queue named by ``rc_pending_file`` (None: memory only)."""
    if settings.rc_pending_file is None:
        return None
    return PendingStore(Path(settings.rc_pending_file))


def make_rc_app(
    settings: Settings,
    *,
    backoff: Backoff | None = None,
    store: PendingStore | None = None,
    metrics: Metrics | None = None,
) -> web.Application:
    """The RC endpoint as an aiohttp app; it owns its client session and retry task."""
    metrics = metrics or Metrics()
    app = web.Application(client_max_size=MAX_REQUEST_BYTES)
    pending = PendingDeliveries(
        max_count=settings.rc_pending_max,
        max_age=settings.rc_pending_max_age,
        backoff=backoff or Backoff(),
        max_bytes=settings.rc_pending_max_bytes,
    )
    app[RC_DELIVERY] = pending
    queue = RetryQueue(pending, store if store is not None else open_store(settings))
    topology = topology_of(settings)
    handler = RcHandler(settings, queue, metrics)
    app[RC_IN_FLIGHT] = handler.in_flight
    app.router.add_route("*", "/{command:.*}", handler.handle)

    async def lifetime(app: web.Application) -> AsyncIterator[None]:
        endpoints = endpoints_of(settings)
        await queue.load(frozenset(endpoints))
        connector = aiohttp.TCPConnector(limit=64, limit_per_host=8)
        async with aiohttp.ClientSession(connector=connector) as session:
            forwarder = RcForwarder(session, endpoints, settings.rc_timeout, metrics)
            handler.forwarder = forwarder
            task = asyncio.create_task(retry_forever(queue, forwarder, topology, handler.in_flight))
            try:
                yield
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                handler.forwarder = None
                await queue.close()

    app.cleanup_ctx.append(lifetime)
    return app
