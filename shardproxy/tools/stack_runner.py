"""The whole system on one machine, started from the generated units, for the demo and tests.

An NzbDav stand-in (test equipment, imported only here and only when a stack starts),
shardproxy, one `rclone mount` per shard plus `rest`, mergerfs, and a Plex-style library
of symlinks built from the ``.rclonelink`` files NzbDav serves. Every process is started
with the command its generated systemd unit gives (``ExecStartPre`` lines included),
read back from the unit's text, so a wrong unit fails here first.

Everything lives under one directory. ``close`` always unmounts and stops everything and
removes what the stack created; ``clear_stale_mounts`` also clears FUSE mounts a crashed
earlier run left under that directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from yarl import URL

from shardproxy.config.layers import load_settings
from shardproxy.config.settings import Settings
from shardproxy.core.shards import IDS_ROOT, ShardMap, view_name
from shardproxy.tools.deploy.files import MERGERFS_UNIT, PROXY_UNIT, unit_commands
from shardproxy.tools.deploy.gen import find_programs, write_generated
from shardproxy.tools.deploy.model import Layout, Mount, Programs, deployment_from, mounts
from shardproxy.tools.ports import free_port

USER, PASSWORD = "admin", "secret"
RC_USER, RC_PASS = "nzbdav", "rc-secret"
RCLONE_RC_USER, RCLONE_RC_PASS = "rclone", "rclone-secret"
READY_TIMEOUT = 60.0
PID_FILE = "pids"
OWN_FOLDERS = ("etc", "logs", "library", "cache", "mnt")
"""What a stack creates under its root (and removes again)."""


def fuse_mounts_under(root: Path) -> list[Path]:
    """FUSE mount points at or below ``root``, deepest first (the order to unmount)."""
    found = []
    prefix = str(root.resolve())
    with open("/proc/self/mountinfo", encoding="utf-8") as stream:
        for line in stream:
            fields = line.split()
            # mountinfo escapes spaces and the like as octal: \040.
            point = fields[4].encode().decode("unicode_escape")
            fstype = fields[fields.index("-") + 1]
            if fstype.startswith("fuse") and (point == prefix or point.startswith(prefix + "/")):
                found.append(Path(point))
    return sorted(found, key=lambda p: len(p.parts), reverse=True)


def stop_leftover_processes(root: Path) -> None:
    """Stop the processes a crashed earlier run under ``root`` left running.

    Their ids are in ``root/pids``; one is stopped only while its command line still
    names ``root``, so a recycled id is left alone.
    """
    pid_file = root / PID_FILE
    if not pid_file.exists():
        return
    for line in pid_file.read_text().split():
        pid = int(line)
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if str(root).encode() in cmdline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    pid_file.unlink()


def clear_stale_mounts(root: Path, fusermount: str = "fusermount3") -> None:
    """Lazily unmount every FUSE mount under ``root`` (left by a crash or a killed run)."""
    if not root.exists():
        return
    for point in fuse_mounts_under(root):
        subprocess.run([fusermount, "-uz", str(point)], check=False, capture_output=True)


class _Background:
    """An event loop in a thread of its own, serving the stand-in while callers block."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coroutine: Any, timeout: float = 30.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=timeout)

    def call(self, function: Callable[[], Any]) -> Any:
        async def call() -> Any:
            return function()

        return self.run(call())

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()


@dataclass
class Stack:
    """One whole deployment under ``root``; use as a context manager."""

    root: Path
    layout: Layout
    shards: int = 4
    library: Any = None  # an nzbdav_standin.Library; a small sample when None
    rclone: str | None = None
    log_level: str = "info"
    settings_overrides: dict[str, Any] = field(default_factory=dict)
    """Settings given on top of the stack's own (e.g. ``{"virtual_levels": False}``)."""
    backend: URL | None = None
    """An NzbDav already running (with USER and PASSWORD): then no stand-in is started."""
    build_links: bool = True
    """Read every ``.rclonelink`` through the mount into ``library/`` (``links``)."""
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _created_root: bool = False
    _background: _Background | None = None
    _standin_runner: Any = None
    standin_app: Any = None
    standin_url: URL | None = None

    # -- paths ----------------------------------------------------------------

    @property
    def etc(self) -> Path:
        """Where the generated files are written (the units' ``config_dir``)."""
        return self.root / "etc"

    @property
    def logs(self) -> Path:
        """One log file per process."""
        return self.root / "logs"

    @property
    def library_dir(self) -> Path:
        """The Plex-style library: symlinks into the merged mount."""
        return self.root / "library"

    def cache_dir(self, name: str) -> Path:
        """The rclone cache directory of mount ``name`` (``shard0``.. or ``rest``)."""
        return self.root / "cache" / name

    # -- lifecycle ------------------------------------------------------------

    def __enter__(self) -> Stack:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        """Bring everything up, in the order the units' dependencies give."""
        self._created_root = not self.root.exists()
        self.programs = find_programs(self.rclone)
        for program in (self.programs.rclone, self.programs.mergerfs, self.programs.fusermount):
            if shutil.which(program) is None:
                raise RuntimeError(f"{program} is not installed: run ./scripts/setup.sh")
        stop_leftover_processes(self.root)
        clear_stale_mounts(self.root, self.programs.fusermount)
        self._remove_own_folders()  # a crashed run's links, caches and logs
        self.root.mkdir(parents=True, exist_ok=True)
        for folder in (self.etc, self.logs):
            folder.mkdir(exist_ok=True)
        self.proxy_port, self.rc_port, self.admin_port = free_port(), free_port(), free_port()
        self.standin_url = self.backend or URL(f"http://127.0.0.1:{free_port()}")
        self.settings = self._settings()
        self.deployment = deployment_from(self.settings)
        if self.backend is None:
            self._start_standin()
        self._write_files()
        self.start_proxy()
        for mount in mounts(self.deployment, self.layout):
            self.start_mount(mount.name)
        self._start_mergerfs()
        self.links = build_library(self) if self.build_links else []

    def close(self) -> None:
        """Unmount and stop everything, then remove what the stack created."""
        fusermount = getattr(self, "programs", Programs()).fusermount
        if hasattr(self, "deployment"):
            subprocess.run(
                [fusermount, "-uz", str(self.deployment.merged)], check=False, capture_output=True
            )
        for name in list(self.processes):
            self._stop(name, signal.SIGTERM)
        clear_stale_mounts(self.root, fusermount)
        if self._background is not None:
            with contextlib.suppress(Exception):
                self.stop_standin()
            self._background.close()
            self._background = None
        self._remove_own_folders()
        if self._created_root and self.root.exists() and not any(self.root.iterdir()):
            self.root.rmdir()

    def _remove_own_folders(self) -> None:
        # Never while something is mounted below: rmtree would walk into a live mount.
        if self.root.exists() and not fuse_mounts_under(self.root):
            (self.root / PID_FILE).unlink(missing_ok=True)
            for name in OWN_FOLDERS:
                shutil.rmtree(self.root / name, ignore_errors=True)

    # -- the pieces -----------------------------------------------------------

    def _settings(self) -> Settings:
        """The settings a user would give `gen`, with this stack's ports and folders."""
        rclone_rc = [
            f"{n}=http://{RCLONE_RC_USER}:{RCLONE_RC_PASS}@127.0.0.1:{free_port()}"
            for n in range(self.shards)
        ]
        return load_settings(
            {
                "backend": str(self.standin_url),
                "listen": f"127.0.0.1:{self.proxy_port}",
                "shards": self.shards,
                "rc_listen": f"127.0.0.1:{self.rc_port}",
                # gen's default admin port is fixed; a stack must not depend on it being free.
                "admin_listen": f"127.0.0.1:{self.admin_port}",
                "rc_user": RC_USER,
                "rc_pass": RC_PASS,
                "shard_rc": rclone_rc,
                "rc_fallback": [
                    f"http://{RCLONE_RC_USER}:{RCLONE_RC_PASS}@127.0.0.1:{free_port()}"
                ],
                "mount_root": str(self.root / "mnt"),
                "config_dir": str(self.etc),
                "cache_dir": [f"{n}={self.cache_dir(f'shard{n}')}" for n in range(self.shards)],
                "rest_cache_dir": str(self.cache_dir("rest")),
                "cache_min_free_space": [f"{n}=100M" for n in range(self.shards)],
                "nzbdav_user": USER,
                "nzbdav_pass": PASSWORD,
                "log_level": self.log_level,
                **self.settings_overrides,
            },
            environ={},
        )

    def _start_standin(self) -> None:
        if self.library is None:
            # Test equipment: imported only when a stack runs, never by the proxy itself.
            from nzbdav_standin import Library

            self.library = Library.sample(n_ids=16, seed=8)
        self._background = _Background()
        self.start_standin()

    def start_standin(self) -> None:
        """Serve the library as NzbDav (again, on the same port after ``stop_standin``)."""
        from aiohttp import web

        from nzbdav_standin import make_standin_app

        assert self._background is not None
        app = make_standin_app(
            self.library, user=USER, password=PASSWORD, mount_dir=str(self.deployment.merged)
        )
        assert self.standin_url is not None
        port = self.standin_url.port

        async def start() -> int:
            runner = web.AppRunner(app)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", port).start()
            self._standin_runner = runner
            bound: int = runner.addresses[0][1]
            return bound

        self.standin_url = URL(f"http://127.0.0.1:{self._background.run(start())}")
        self.standin_app = app

    def stop_standin(self) -> None:
        """Stop serving the library: NzbDav is down."""
        if self._background is not None and self._standin_runner is not None:
            self._background.run(self._standin_runner.cleanup())
            self._standin_runner = None

    def standin(self, function: Callable[[], Any]) -> Any:
        """Run ``function`` on the stand-in's loop (to change its library safely)."""
        assert self._background is not None
        return self._background.call(function)

    def _write_files(self) -> None:
        written = write_generated(self.settings, self.etc, self.programs)
        files = {str(path.relative_to(self.etc)): path.read_text() for path in written}
        self.units = {
            name.split("/", 1)[1]: text
            for name, text in files.items()
            if name.startswith(self.layout.value + "/")
        }
        # Installed as a person would: the layout's own settings file into config_dir.
        shutil.copyfile(
            self.etc / self.layout.value / "shardproxy.toml", self.etc / "shardproxy.toml"
        )

    def mount(self, name: str) -> Mount:
        """The mount called ``name`` (``shard0``.. or ``rest``)."""
        return next(m for m in mounts(self.deployment, self.layout) if m.name == name)

    def _run_unit(self, name: str, unit: str) -> subprocess.Popen[bytes]:
        """Run a unit's ExecStartPre lines, then start its ExecStart with output to a log."""
        commands = unit_commands(self.units[unit])
        for argv, may_fail in commands.get("ExecStartPre", []):
            done = subprocess.run(argv, capture_output=True, check=False)
            if done.returncode != 0 and not may_fail:
                raise RuntimeError(f"{unit}: {argv} failed: {done.stderr.decode()[-500:]}")
        ((argv, _),) = commands["ExecStart"]
        with (self.logs / f"{name}.log").open("ab") as log:
            process = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        self.processes[name] = process
        with (self.root / PID_FILE).open("a") as pids:
            pids.write(f"{process.pid}\n")
        return process

    def start_proxy(self) -> None:
        """Start shardproxy as its unit does; wait until its ports answer."""
        process = self._run_unit("shardproxy", PROXY_UNIT)
        for port in (self.proxy_port, self.rc_port, self.admin_port):
            self._wait(partial(_accepts, port), process, "shardproxy", f"port {port} answers")

    def stop_proxy(self) -> None:
        """Stop shardproxy (SIGTERM)."""
        self._stop("shardproxy", signal.SIGTERM)

    def start_mount(self, name: str) -> None:
        """Start one rclone mount as its unit does; wait until it is mounted."""
        mount = self.mount(name)
        process = self._run_unit(name, mount.unit)
        point = Path(mount.mountpoint)
        self._wait(lambda: os.path.ismount(point), process, name, f"{point} is mounted")

    def kill_mount(self, name: str) -> None:
        """Crash one rclone mount (SIGKILL): its mount point is left stale, as after a crash."""
        self._stop(name, signal.SIGKILL)

    def _start_mergerfs(self) -> None:
        process = self._run_unit("mergerfs", MERGERFS_UNIT)
        merged = Path(self.deployment.merged)
        self._wait(lambda: os.path.ismount(merged), None, "mergerfs", f"{merged} is mounted")
        # mergerfs forks into the background (Type=forking): the parent's exit is normal.
        process.wait(timeout=READY_TIMEOUT)
        self.processes.pop("mergerfs")

    def _stop(self, name: str, signum: int) -> None:
        process = self.processes.pop(name, None)
        if process is None or process.poll() is not None:
            return
        process.send_signal(signum)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)

    def _wait(
        self,
        ready: Callable[[], bool],
        process: subprocess.Popen[bytes] | None,
        name: str,
        what: str,
    ) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while not ready():
            if process is not None and process.poll() is not None:
                raise RuntimeError(
                    f"{name} exited with {process.returncode}: {self.log_tail(name)}"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name}: not ready after {READY_TIMEOUT} s ({what})")
            time.sleep(0.05)

    def log_text(self, name: str) -> str:
        """A process's whole log (``shardproxy``, ``shard0``.., ``rest``)."""
        path = self.logs / f"{name}.log"
        return path.read_text("utf-8", "replace") if path.exists() else ""

    def log_tail(self, name: str, lines: int = 20) -> str:
        """The end of a process's log, for error messages."""
        path = self.logs / f"{name}.log"
        if not path.exists():
            return "(no log)"
        return "\n".join(path.read_text("utf-8", "replace").splitlines()[-lines:])


def _accepts(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        return True
    return False


@dataclass(frozen=True)
class LibraryLink:
    """One symlink of the Plex-style library and the file it stands for."""

    link: Path
    target: str
    uuid: str


def link_target(target: str, layout: Layout, shard_map: ShardMap) -> str:
    """An NzbDav link target as the layout wants it: for shard links, into the owner's view
    (what the proxy's ``rewrite_rclonelinks`` serves)."""
    if layout is Layout.LINKS_UNCHANGED:
        return target
    head, marker, tail = target.partition(IDS_ROOT + "/")
    if not marker:
        return target
    uuid = tail.rsplit("/", 1)[-1]
    return f"{head}/{view_name(shard_map.shard_of(uuid))}/{tail}"


def _rclonelinks(folder: Path) -> Iterator[tuple[Path, str]]:
    """``(path, target)`` of every link file under ``folder``, as rclone shows them.

    rclone 1.60 shows ``x.mkv.rclonelink`` files holding the target; with ``--links``
    (newer rclone) they are symlinks already.
    """
    for path in sorted(folder.rglob("*")):
        if path.is_symlink():
            yield path, os.readlink(path)
        elif path.name.endswith(".rclonelink") and path.is_file():
            yield path.with_name(path.name.removesuffix(".rclonelink")), path.read_text().strip()


def build_library(stack: Stack) -> list[LibraryLink]:
    """Symlinks under ``library/`` for every link NzbDav lists, read through the mount."""
    merged = Path(stack.deployment.merged)
    links = []
    for path, target in _rclonelinks(merged / "completed-symlinks"):
        relative = path.relative_to(merged / "completed-symlinks")
        link = stack.library_dir / relative
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(target)  # as served: the shard-links layout's proxy rewrites it
        links.append(LibraryLink(link, target, target.rsplit("/", 1)[-1]))
    return links
