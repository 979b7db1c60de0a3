"""Real rclone processes with a remote-control port, for tests on loopback.

Each process serves a remote over HTTP (``rclone serve http REMOTE --rc``), which gives
it a VFS without FUSE, logs at ``-vv`` to its own file, and is polled until its RC
answers. The remote is a shard view of a running proxy (``webdav_remote``) or a plain
directory. The ``-vv`` log shows every RC call's parameters as a Go map, which is how
the tests see exactly what each rclone received.

``BackgroundApps`` serves aiohttp apps (the NzbDav stand-in, the WebDAV proxy) from a
thread of their own, so that they keep answering the rclones while test code blocks.
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web
from yarl import URL

from shardproxy.process.server import make_runner
from shardproxy.tools.ports import free_port

REPO = Path(__file__).resolve().parents[2]
CURRENT_RCLONE_ENV = "SHARDPROXY_RCLONE_CURRENT"
READY_TIMEOUT = 15.0
_CALL_RE = re.compile(r'rc: "(?P<command>[^"]*)": with parameters (?P<params>map\[.*\])$')
_ANY_CALL_RE = re.compile(r'rc: "(?P<command>[^"]*)"')


def debian_rclone() -> str | None:
    """The system rclone (Debian 12 ships 1.60.1), or None."""
    return shutil.which("rclone")


def current_rclone() -> str | None:
    """A current rclone: ``$SHARDPROXY_RCLONE_CURRENT`` or ``.tools/rclone-current/bin/rclone``."""
    candidate = os.environ.get(CURRENT_RCLONE_ENV) or str(
        REPO / ".tools" / "rclone-current" / "bin" / "rclone"
    )
    return candidate if os.access(candidate, os.X_OK) else None


def rclone_version(binary: str) -> str:
    """``v1.60.1-DEV`` for the given binary."""
    out = subprocess.run([binary, "version"], capture_output=True, text=True, check=True)
    return out.stdout.split()[1]


def go_map(params: Mapping[str, str]) -> str:
    """How rclone's ``%+v`` prints a parameter map: ``map[k1:v1 k2:v2]``, keys sorted."""
    return "map[" + " ".join(f"{key}:{params[key]}" for key in sorted(params)) + "]"


@dataclass(frozen=True)
class LoggedCall:
    """One RC call as an rclone's ``-vv`` log shows it."""

    command: str
    params: str  # the Go map text, compare with go_map()


@dataclass
class RcloneRc:
    """One ``rclone serve http DIR --rc`` process."""

    binary: str
    remote: str
    log_path: Path
    cache_dir: Path
    user: str | None = None
    password: str | None = None
    rc_port: int = field(default_factory=free_port)
    http_port: int = field(default_factory=free_port)
    extra: tuple[str, ...] = ()
    # Without a user: pass --rc-no-auth (True) or leave rclone's own default (False).
    no_auth: bool = True
    # What the process serves its remote as: "http", or "webdav" like a real deployment.
    protocol: str = "http"
    proc: subprocess.Popen[bytes] | None = None

    @property
    def rc_url(self) -> URL:
        """The RC URL, with credentials when the process requires them."""
        url = URL.build(scheme="http", host="127.0.0.1", port=self.rc_port, path="/")
        if self.user is not None:
            url = url.with_user(self.user).with_password(self.password)
        return url

    def start(self) -> None:
        """Start the process (appending to its log) without waiting for it."""
        auth = ["--rc-no-auth"] if self.no_auth else []
        if self.user is not None:
            auth = ["--rc-user", self.user, "--rc-pass", self.password or ""]
        self.proc = subprocess.Popen(
            [
                self.binary,
                "serve",
                self.protocol,
                self.remote,
                "--addr",
                f"127.0.0.1:{self.http_port}",
                "--rc",
                "--rc-addr",
                f"127.0.0.1:{self.rc_port}",
                *auth,
                "--cache-dir",
                str(self.cache_dir),
                "--config",
                os.devnull,
                "-vv",
                "--log-file",
                str(self.log_path),
                *self.extra,
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        """Poll ``rc/noop`` until the RC port answers, then until the served port accepts.

        rclone opens its RC port before the one it serves the remote on: a test that
        reads through the served port right after the RC answers would race it.
        """
        deadline = time.monotonic() + timeout
        while True:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"rclone exited with {self.proc.returncode}: {self.tail()}")
            try:
                self.post("rc/noop", b"{}")
                socket.create_connection(("127.0.0.1", self.http_port), timeout=5).close()
                return
            except (urllib.error.URLError, OSError):
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"rclone RC not ready after {timeout} s: {self.tail()}"
                    ) from None
                time.sleep(0.02)

    def post(self, command: str, body: bytes) -> bytes:
        """POST a JSON body straight to this rclone (not through the proxy)."""
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.rc_port}/{command}",
            data=body,
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        if self.user is not None:
            token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        with urllib.request.urlopen(request, timeout=5) as response:
            data: bytes = response.read()
            return data

    def kill(self) -> None:
        """Kill the process at once (SIGKILL) and reap it."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.proc = None

    def stop(self) -> None:
        """Stop the process politely, then firmly."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.kill()
        self.proc = None

    def mark(self) -> int:
        """The log's current length: pass it to ``calls_since``."""
        return self.log_path.stat().st_size if self.log_path.exists() else 0

    def log_since(self, mark: int) -> str:
        """The log text written after ``mark``."""
        with self.log_path.open("rb") as stream:
            stream.seek(mark)
            return stream.read().decode("utf-8", "replace")

    def calls_since(self, mark: int, command: str | None = None) -> list[LoggedCall]:
        """The RC calls (with parameters) logged after ``mark``, optionally of one command."""
        calls = []
        for line in self.log_since(mark).splitlines():
            found = _CALL_RE.search(line)
            if found and (command is None or found["command"] == command):
                calls.append(LoggedCall(found["command"], found["params"]))
        return calls

    def commands_seen_since(self, mark: int) -> list[str]:
        """Every RC command any log line mentions after ``mark`` (calls, errors, refusals)."""
        return [m["command"] for m in _ANY_CALL_RE.finditer(self.log_since(mark))]

    def wait_for_call(self, mark: int, command: str, timeout: float = 10.0) -> list[LoggedCall]:
        """Poll the log until a ``command`` call shows up after ``mark``."""
        deadline = time.monotonic() + timeout
        while True:
            calls = self.calls_since(mark, command)
            if calls:
                return calls
            if time.monotonic() > deadline:
                raise AssertionError(f"no {command} call within {timeout} s: {self.tail()}")
            time.sleep(0.02)

    async def await_call(self, mark: int, command: str) -> list[LoggedCall]:
        """Like ``wait_for_call``, but yields to the event loop while polling (10 s)."""
        async with asyncio.timeout(10.0):
            while True:
                calls = self.calls_since(mark, command)
                if calls:
                    return calls
                await asyncio.sleep(0.02)

    def tail(self, lines: int = 15) -> str:
        """The end of the log, for failure messages."""
        if not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text("utf-8", "replace").splitlines()[-lines:])


def start_all(procs: list[RcloneRc]) -> None:
    """Start processes together, then wait for each (they boot in parallel)."""
    for proc in procs:
        proc.start()
    try:
        for proc in procs:
            proc.wait_ready()
    except BaseException:
        for proc in procs:
            proc.stop()
        raise


def webdav_remote(url: URL) -> str:
    """An on-the-fly rclone remote for a WebDAV URL (no config file needed)."""
    return f":webdav,url='{url}',vendor=other:"


def make_rclone(
    binary: str,
    base: Path,
    name: str,
    *,
    remote: str | None = None,
    user: str | None = None,
    password: str | None = None,
    extra: tuple[str, ...] = (),
    no_auth: bool = True,
    protocol: str = "http",
) -> RcloneRc:
    """An RcloneRc serving ``remote`` (default: the directory ``base/name``), own cache and log."""
    if remote is None:
        root = base / name
        root.mkdir(parents=True, exist_ok=True)
        remote = str(root)
    return RcloneRc(
        binary=binary,
        remote=remote,
        log_path=base / f"{name}.log",
        cache_dir=base / f"{name}.cache",
        user=user,
        password=password,
        extra=extra,
        no_auth=no_auth,
        protocol=protocol,
    )


class BackgroundApps:
    """aiohttp applications served on loopback from an event loop in its own thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self._runners: list[web.BaseRunner] = []

    def serve(self, make_app: Callable[[], web.Application | web.Server]) -> URL:
        """Build the app inside the loop, serve it on a free port, return its base URL."""

        async def start() -> URL:
            runner = make_runner(make_app())
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            self._runners.append(runner)
            port = runner.addresses[0][1]
            return URL.build(scheme="http", host="127.0.0.1", port=port)

        return asyncio.run_coroutine_threadsafe(start(), self.loop).result(timeout=30)

    def close(self) -> None:
        """Stop every app, then the loop and its thread."""

        async def stop() -> None:
            for runner in reversed(self._runners):
                await runner.cleanup()

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()
