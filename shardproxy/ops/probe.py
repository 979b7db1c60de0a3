"""``shardproxy check``: what the settings leave out, and (``--probe``) who answers.

The probe asks NzbDav for ``PROPFIND / Depth: 0`` and every configured rclone for
``rc/noop``, concurrently, and turns each answer into one line a user can act on. The
verdicts (``backend_verdict``, ``rc_verdict``) and the warnings are pure; ``probe_all``
is the I/O around them.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from dataclasses import dataclass

import aiohttp
import orjson
from yarl import URL

from shardproxy.config.settings import Settings
from shardproxy.core.rclonelink import old_rclone_warning
from shardproxy.ops.rclonebin import installed_rclone
from shardproxy.rc.send import Endpoint

# Only what the probe needs from a reply: the status and a small JSON object.
MAX_PROBE_REPLY = 1 << 16


@dataclass(frozen=True)
class ProbeResult:
    """One thing asked, at which URL (never with credentials), and how it went."""

    what: str
    url: str
    ok: bool
    detail: str

    def line(self) -> str:
        """``ok    backend   http://...  answers (207)`` or ``FAIL ...``."""
        return f"{'ok  ' if self.ok else 'FAIL'}  {self.what:<12} {self.url}  {self.detail}"


def check_warnings(settings: Settings) -> list[str]:
    """What the settings leave undone for NzbDav's forgets, each with what to set."""
    if settings.rc_listen is None:
        return [
            "warning: rc_listen is not set, so NzbDav's forgets reach no rclone and new "
            "imports show up only when a mount's directory cache expires; set rc_listen "
            "(--rc-listen 127.0.0.1:5575) and give NzbDav that address as its rclone RC host"
        ]
    warnings = []
    missing = [n for n in range(settings.shard_map.count) if n not in settings.shard_rc]
    if missing:
        shards = ", ".join(map(str, missing))
        warnings.append(
            f"warning: shard(s) {shards} have no RC URL, so forgets of their files are never "
            f"delivered; set shard_rc for each (--shard-rc {missing[0]}="
            f"http://USER:PASS@127.0.0.1:{5570 + missing[0]})"
        )
    if not settings.rc_fallback:
        warnings.append(
            "warning: rc_fallback is not set, so forgets outside .ids (/content, "
            "/completed-symlinks) reach no rclone; set it to the RC URL of the rclone "
            "mounting the rest of NzbDav (--rc-fallback http://USER:PASS@127.0.0.1:5574)"
        )
    return warnings


def rclone_warnings(settings: Settings, rclone: tuple[str, tuple[int, int]] | None) -> list[str]:
    """With ``rewrite_rclonelinks`` on, a warning when this machine's rclone is too old to
    show the rewritten links as symlinks (nothing to say without an rclone here)."""
    if not settings.rewrite_rclonelinks or rclone is None:
        return []
    binary, version = rclone
    warning = old_rclone_warning(binary, version, "rewrite_rclonelinks is on for them")
    return [warning] if warning else []


def backend_verdict(status: int, with_credentials: bool) -> tuple[bool, str]:
    """Whether NzbDav's answer to ``PROPFIND /`` is healthy, and what it means."""
    if status == 207:
        return True, f"answers ({status} Multi-Status)"
    if status == 401 and not with_credentials:
        return True, (
            "answers, needs credentials (401); set nzbdav_user and nzbdav_pass to have "
            "them checked too"
        )
    if status == 401:
        return False, "refused the credentials (401): check nzbdav_user and nzbdav_pass"
    return False, (
        f"answered PROPFIND with HTTP {status}, not 207: is this NzbDav's WebDAV URL (backend)?"
    )


def rc_verdict(status: int, body: bytes) -> tuple[bool, str]:
    """Whether an rclone's answer to ``rc/noop`` is healthy, and what it means."""
    if status in (401, 403):
        return False, (
            f"refused the RC credentials (HTTP {status}): put the rclone's --rc-user and "
            "--rc-pass in the URL, http://USER:PASS@HOST:PORT"
        )
    try:
        decoded = orjson.loads(body)
    except orjson.JSONDecodeError:
        decoded = None
    if status == 200 and isinstance(decoded, dict):
        return True, "rclone answers rc/noop"
    snippet = body[:80].decode("utf-8", "replace")
    return False, f"HTTP {status} {snippet!r} to rc/noop: is this an rclone started with --rc?"


def _failure(exc: BaseException, seconds: float) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer within {seconds:g} s"
    if isinstance(exc, aiohttp.ClientConnectorError):
        # aiohttp words a refused connection "Connect call failed"; errno says what it was.
        errno = exc.os_error.errno
        return f"unreachable: {os.strerror(errno) if errno else exc.os_error}"
    return f"failed: {type(exc).__name__}: {exc}"


async def probe_backend(
    session: aiohttp.ClientSession,
    backend: URL,
    credentials: tuple[str, str] | None,
    seconds: float,
) -> ProbeResult:
    """``PROPFIND / Depth: 0`` to NzbDav, logged in when credentials are given."""
    url = backend.with_user(None).with_password(None).with_path("/")
    headers = {"Depth": "0"}
    if credentials is not None:
        headers["Authorization"] = aiohttp.encode_basic_auth(*credentials)
    try:
        async with session.request(
            "PROPFIND", url, headers=headers, timeout=aiohttp.ClientTimeout(total=seconds)
        ) as response:
            await response.content.read(MAX_PROBE_REPLY)
            ok, detail = backend_verdict(response.status, credentials is not None)
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        ok, detail = False, _failure(exc, seconds)
    return ProbeResult("backend", str(url), ok, detail)


async def probe_rc(
    session: aiohttp.ClientSession, what: str, rc_url: URL, seconds: float
) -> ProbeResult:
    """``rc/noop`` to one rclone, with the credentials its URL carries."""
    endpoint = Endpoint.from_url(rc_url)
    url = endpoint.command_url("rc/noop")
    try:
        async with session.post(
            url, data=b"{}", headers=endpoint.headers, timeout=aiohttp.ClientTimeout(total=seconds)
        ) as response:
            ok, detail = rc_verdict(response.status, await response.content.read(MAX_PROBE_REPLY))
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        ok, detail = False, _failure(exc, seconds)
    return ProbeResult(what, str(url), ok, detail)


async def probe_all(
    settings: Settings, backend_credentials: tuple[str, str] | None
) -> list[ProbeResult]:
    """Ask NzbDav and every configured rclone at once; one result each, in a fixed order."""
    rcs: Mapping[str, URL] = {
        **{f"shard {n} rc": url for n, url in sorted(settings.shard_rc.items())},
        **{f"fallback {k} rc": url for k, url in enumerate(settings.rc_fallback)},
    }
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
        backend_timeout = settings.connect_timeout + settings.read_timeout
        return list(
            await asyncio.gather(
                probe_backend(session, settings.backend, backend_credentials, backend_timeout),
                *(probe_rc(session, what, url, settings.rc_timeout) for what, url in rcs.items()),
            )
        )


def run_check(settings: Settings, summary: str, *, probe: bool) -> int:
    """Print the summary, the warnings and (with ``probe``) one line per probe; exit code."""
    print(summary)
    for warning in [*check_warnings(settings), *rclone_warnings(settings, installed_rclone())]:
        print(warning)
    if not probe:
        return 0
    credentials = (
        (settings.nzbdav_user or "", settings.nzbdav_pass)
        if settings.nzbdav_pass is not None
        else None
    )
    results = asyncio.run(probe_all(settings, credentials))
    for result in results:
        print(result.line())
    return 0 if all(result.ok for result in results) else 1
