"""Sending planned RC calls to the rclones: one POST per call, every result an RcloneAnswer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass

import aiohttp
import orjson
from yarl import URL

from shardproxy.config.settings import Settings
from shardproxy.rc.replies import Failure, RcloneAnswer, Reply
from shardproxy.rc.route import TargetCall
from shardproxy.rc.targets import Target, Topology
from shardproxy.telemetry.metrics import Metrics

# rclone's replies are small JSON objects; this only stops a confused peer.
MAX_REPLY_BYTES = 16 << 20


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
    """Sends planned calls to the rclones and turns every result into an RcloneAnswer."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        endpoints: Mapping[Target, Endpoint],
        timeout: float,
        metrics: Metrics | None = None,
    ) -> None:
        self.session = session
        self.endpoints = endpoints
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.metrics = metrics or Metrics()

    async def send(self, call: TargetCall) -> RcloneAnswer:
        """POST one call, counted by rclone, command and outcome."""
        outcome = await self._post(call)
        self.metrics.rc_forward(call.target.label, call.command, not isinstance(outcome, Failure))
        return outcome

    async def _post(self, call: TargetCall) -> RcloneAnswer:
        """POST one call as ``application/json`` exactly (1.60.1 ignores anything else)."""
        endpoint = self.endpoints[call.target]
        try:
            async with self.session.post(
                endpoint.command_url(call.command),
                data=orjson.dumps(call.params),
                headers=endpoint.headers,
                timeout=self.timeout,
            ) as response:
                raw = await _read_capped(response.content, MAX_REPLY_BYTES + 1)
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

    async def send_all(self, calls: Iterable[TargetCall]) -> list[tuple[TargetCall, RcloneAnswer]]:
        """Send calls concurrently; each gets an RcloneAnswer, none raises."""
        planned = list(calls)
        outcomes = await asyncio.gather(*(self.send(call) for call in planned))
        return list(zip(planned, outcomes, strict=True))

    async def as_done(
        self, calls: Iterable[TargetCall]
    ) -> AsyncIterator[tuple[TargetCall, RcloneAnswer]]:
        """Send calls concurrently and yield each with its RcloneAnswer as soon as it is back.

        The caller handles one reply's worth of work at a time, so a huge call never
        holds the event loop for all its replies at once.
        """

        async def one(call: TargetCall) -> tuple[TargetCall, RcloneAnswer]:
            return call, await self.send(call)

        tasks = [asyncio.ensure_future(one(call)) for call in calls]
        try:
            for finished in asyncio.as_completed(tasks):
                yield await finished
        finally:
            for task in tasks:
                task.cancel()


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


async def _read_capped(stream: aiohttp.StreamReader, cap: int) -> bytes:
    """The body to its end, or its first ``cap`` bytes (``read(n)`` gives one chunk only)."""
    raw = bytearray()
    while len(raw) < cap and (chunk := await stream.read(cap - len(raw))):
        raw += chunk
    return bytes(raw)
