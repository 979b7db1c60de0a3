"""Extra worker processes sharing the WebDAV port: started clean, watched, replaced.

Workers are spawned (a fresh interpreter), not forked, so they inherit no socket of the
parent: not its WebDAV listener, not the RC or admin ones. Each binds the WebDAV port
itself through SO_REUSEPORT. A worker asks the kernel to send it SIGTERM when the parent
dies (Linux ``PR_SET_PDEATHSIG``), so no orphan keeps a port it never serves. The parent
replaces a worker that dies, and says so in its log.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import logging
import multiprocessing
import os
import signal
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

import orjson

from shardproxy.config.settings import Settings
from shardproxy.telemetry.logs import configure_logging

log = logging.getLogger("shardproxy")

PR_SET_PDEATHSIG = 1
# A worker that dies sooner than this after its start is restarted after a pause, so
# a worker that cannot start does not spin.
SHORT_LIFE_SECONDS = 5.0
RESTART_PAUSE_SECONDS = 2.0
# How long after its own grace a worker may take to exit before it is killed.
EXIT_MARGIN_SECONDS = 5.0


def die_with_parent(parent_pid: int) -> None:
    """Have the kernel SIGTERM this process when ``parent_pid`` dies (Linux), or exit now."""
    libc_name = ctypes.util.find_library("c")
    if libc_name is not None:
        libc = ctypes.CDLL(libc_name, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
            log.warning("worker %d: prctl(PR_SET_PDEATHSIG) failed", os.getpid())
    # The parent may have died before the request above took effect.
    if os.getppid() != parent_pid:
        raise SystemExit(0)


WorkerServe = Callable[[Settings, Connection], None]


def worker_main(
    settings: Settings, parent_pid: int, serve: WorkerServe, report_to: Connection
) -> None:
    """Entry point of a worker process: ``serve`` (WebDAV only) until SIGTERM.

    ``report_to`` is the write end of a pipe to the first process, for its metrics.
    """
    die_with_parent(parent_pid)
    configure_logging(settings.log_level, settings.log_format)
    serve(settings, report_to)


def describe_exit(code: int | None) -> str:
    """``exit code 3`` or ``killed by SIGKILL`` for a process's exitcode."""
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


class WorkerPool:
    """``count`` worker processes, each replaced when it dies until ``stop``.

    Each runs ``serve(settings, report_to)``: a module-level function, since the spawned
    process imports it by name. What a worker sends on ``report_to`` (its metrics, as
    JSON) reaches ``on_report(pid, decoded)``; ``on_end(pid)`` follows its last report.
    """

    def __init__(self, settings: Settings, count: int, serve: WorkerServe) -> None:
        self.settings = settings
        self.count = count
        self.serve = serve
        self.on_report: Callable[[int, Any], None] = lambda pid, report: None
        self.on_end: Callable[[int], None] = lambda pid: None
        self._context = multiprocessing.get_context("spawn")
        self._workers: dict[int, tuple[BaseProcess, float]] = {}
        self._stopping = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._none_left = asyncio.Event()

    @property
    def pids(self) -> list[int]:
        """The pids of the running workers."""
        return sorted(self._workers)

    def start(self) -> None:
        """Start every worker (from inside the running loop, which watches them)."""
        self._loop = asyncio.get_running_loop()
        for _ in range(self.count):
            self._spawn()

    def _spawn(self) -> None:
        if self._stopping or self._loop is None:
            return
        reports, report_to = self._context.Pipe(duplex=False)
        process = self._context.Process(
            target=worker_main,
            args=(self.settings, os.getpid(), self.serve, report_to),
            name="shardproxy-worker",
        )
        process.start()
        report_to.close()  # the worker holds the write end; EOF here means it is gone
        assert process.pid is not None
        self._loop.add_reader(reports.fileno(), self._report, process.pid, reports)
        self._workers[process.pid] = (process, time.monotonic())
        # The sentinel becomes readable when the process ends.
        self._loop.add_reader(process.sentinel, self._ended, process)
        log.info("started worker %d", process.pid)

    def _report(self, pid: int, reports: Connection) -> None:
        """One report from a worker, or the end of its pipe."""
        assert self._loop is not None
        try:
            report = orjson.loads(reports.recv_bytes())
        except (EOFError, OSError, orjson.JSONDecodeError):
            self._loop.remove_reader(reports.fileno())
            reports.close()
            self.on_end(pid)
            return
        self.on_report(pid, report)

    def _ended(self, process: BaseProcess) -> None:
        assert self._loop is not None and process.pid is not None
        self._loop.remove_reader(process.sentinel)
        process.join(1.0)  # it has ended: this only reaps it
        _, started = self._workers.pop(process.pid)
        if self._stopping:
            if not self._workers:
                self._none_left.set()
            return
        lived = time.monotonic() - started
        pause = RESTART_PAUSE_SECONDS if lived < SHORT_LIFE_SECONDS else 0.0
        log.warning(
            "worker %d ended (%s) after %.0f s; starting a replacement%s",
            process.pid,
            describe_exit(process.exitcode),
            lived,
            f" in {pause:g} s" if pause else "",
        )
        self._loop.call_later(pause, self._spawn)

    async def stop(self, grace: float) -> None:
        """SIGTERM every worker; kill those still running after their grace and a margin."""
        self._stopping = True
        processes = [process for process, _ in self._workers.values()]
        for process in processes:
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)
        if self._workers:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._none_left.wait(), grace + EXIT_MARGIN_SECONDS)
        for process in processes:
            if process.is_alive() and process.pid is not None:
                log.warning("worker %d did not stop in time; killing it", process.pid)
                process.kill()
            process.join(1.0)
            if self._loop is not None:
                self._loop.remove_reader(process.sentinel)
