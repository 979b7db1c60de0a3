"""One command that measures shardproxy's byte path against nginx and HAProxy.

    .venv/bin/python -m loadtest.bench [--quick] [--write] [--only FIGURE ...]

Starts, on free loopback ports, in a scratch directory: nginx as the origin (a 1 GiB
file served from disk under ``/.ids/...``, NzbDav-style PROPFIND listings), nginx
``proxy_pass``, HAProxy with and without ``option splice-response``, and shardproxy
(splicing, copying only, and with two workers). Then, each proxy in turn for several
rounds: 1 GiB GETs, rclone-like ranged reads, small GETs and Depth-1 PROPFINDs with
wrk, and the memory of 200 slow readers. Prints markdown tables of medians and ratios;
``--write`` also puts them into loadtest/RESULTS.md. Everything it started is stopped
and its files deleted when it ends, also on Ctrl-C or an error.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import importlib.metadata
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from loadtest import clients, peers
from loadtest.client_costs import heads, walk
from loadtest.figures import (
    APP_POOL,
    BARE_RELAY,
    BASELINE,
    FIGURES,
    HAPROXY,
    HAPROXY_SPLICE,
    NGINX,
    SERVER_POOL,
    SHARDPROXY,
    SHARDPROXY_2W,
    SHARDPROXY_COPY,
    Bench,
    MiB,
    Plan,
    Proxy,
)
from loadtest.report import Table, verdict_table
from loadtest.targets import judge
from shardproxy.tools.ports import free_port

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
# shardproxy before it had its own backend pool and low-level server: what "today" was.
BASELINE_REVISION = "b4d9a99"
ALL_FIGURES = {**FIGURES, "walk": walk, "heads": heads}
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"


@dataclass
class Layout:
    """Which CPUs the proxies get, and which the rest (origin, load generators)."""

    proxy: str | None
    rest: str | None

    def describe(self) -> str:
        if self.proxy is None:
            return "no CPU pinning"
        return (
            f"each proxy pinned to CPU {self.proxy} (`taskset`); the origin nginx, wrk and "
            f"the benchmark's own clients to CPU {self.rest}; `{SHARDPROXY_2W}` unpinned, "
            "so its two workers can use every CPU"
        )


def choose_layout(no_pin: bool) -> Layout:
    """The last CPU for the proxy under test, the others for everything else."""
    cpus = sorted(os.sched_getaffinity(0))
    if no_pin or len(cpus) < 2:
        return Layout(None, None)
    return Layout(str(cpus[-1]), ",".join(str(c) for c in cpus[:-1]))


# --- lifecycle -------------------------------------------------------------------------------


@contextlib.contextmanager
def scratch_directory() -> Iterator[Path]:
    work = Path(tempfile.mkdtemp(prefix="shardproxy-bench-"))
    # nginx started by root serves files as an unprivileged worker user.
    work.chmod(0o755)
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


@contextlib.contextmanager
def running(servers: list[peers.Server], work: Path) -> Iterator[None]:
    """Start every server, wait until each answers, and stop them all at the end."""
    try:
        for server in servers:
            server.start(work)
        for server in servers:
            server.wait_ready(work)
        yield
    finally:
        for server in reversed(servers):
            server.stop()


def stop_on_signals() -> None:
    """SIGINT, SIGTERM and SIGHUP unwind like Ctrl-C, so the cleanup runs.

    SIGINT too: a shell starts background jobs with it ignored.
    """

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, interrupt)


def build(
    work: Path, layout: Layout, big_size: int, baseline: Path
) -> tuple[peers.Server, list[Proxy]]:
    """The origin and every proxy, configured but not started."""
    origin_port, nginx_port = free_port(), free_port()
    conf = peers.origin_conf(work, origin_port, work / "root", big_size)
    origin = peers.nginx_server("origin", work, origin_port, conf, layout.rest)
    pinned = layout.proxy

    def same(path: str) -> str:
        return path

    def shard(path: str) -> str:
        return peers.shard_path(path)

    def haproxy(name: str, splice: bool) -> peers.Server:
        return peers.haproxy_server(
            name, work, free_port(), origin_port, splice=splice, cpus=pinned
        )

    def shardproxy(name: str, workers: int, copy_only: bool, cpus: str | None) -> peers.Server:
        return peers.shardproxy_server(
            name, free_port(), origin_port, workers=workers, copy_only=copy_only, cpus=cpus
        )

    nginx_conf = peers.nginx_proxy_conf(work, nginx_port, origin_port)
    proxies = [
        Proxy(NGINX, peers.nginx_server("nginx", work, nginx_port, nginx_conf, pinned), same),
        Proxy(HAPROXY, haproxy("haproxy", False), same),
        Proxy(HAPROXY_SPLICE, haproxy("haproxy-splice", True), same),
        Proxy(SHARDPROXY, shardproxy("shardproxy", 1, False, pinned), shard),
        Proxy(SHARDPROXY_COPY, shardproxy("shardproxy-copy", 1, True, pinned), shard),
        Proxy(SHARDPROXY_2W, shardproxy("shardproxy-2w", 2, False, None), shard),
        Proxy(
            BASELINE,
            peers.baseline_server("baseline", free_port(), origin_port, baseline, pinned),
            shard,
        ),
        *[
            Proxy(
                label,
                peers.bare_relay_server(design, free_port(), origin_port, pinned, design),
                same,
            )
            for label, design in (
                (BARE_RELAY, "app-session"),
                (APP_POOL, "app-pool"),
                (SERVER_POOL, "server-pool"),
            )
        ],
    ]
    return origin, proxies


# --- the report ------------------------------------------------------------------------------


def machine() -> list[str]:
    """A few lines on the machine and the software measured."""
    cpu = "unknown CPU"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as info:
        cpu = next((line.split(":", 1)[1].strip() for line in info if "model name" in line), cpu)
    memory = 0
    with contextlib.suppress(OSError), open("/proc/meminfo") as info:
        memory = int(next(line for line in info if line.startswith("MemTotal")).split()[1])
    congestion = "unknown"
    with contextlib.suppress(OSError), open("/proc/sys/net/ipv4/tcp_congestion_control") as cc:
        congestion = cc.read().strip()
    commit = subprocess.run(
        ["git", "describe", "--always", "--dirty"],
        cwd=peers.REPO,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    version = importlib.metadata.version
    return [
        f"- {os.cpu_count()} CPUs: {cpu}; {memory / (1 << 20):.1f} GiB memory",
        f"- Linux {platform.release()}, TCP congestion control {congestion}",
        f"- Python {platform.python_version()}, aiohttp {version('aiohttp')}, "
        f"uvloop {version('uvloop')}; shardproxy at commit {commit or 'unknown'}",
        f"- {peers.tool_version(['nginx', '-v'])}; {peers.tool_version(['haproxy', '-v'])}; "
        f"{peers.tool_version(['wrk', '-v'])}",
        f"- load average when the run started: {' '.join(f'{x:.2f}' for x in os.getloadavg())}",
    ]


def render(
    tables: dict[str, Table], about: list[str], layout: Layout, command: str, minutes: float
) -> str:
    now = datetime.datetime.now().astimezone()
    lines = [
        f"Run on {now:%Y-%m-%d %H:%M %Z} with `{command}`, {minutes:.1f} minutes.",
        "",
        "Machine:",
        "",
        *about,
        f"- {layout.describe()}",
        "",
        "Targets:",
        "",
        verdict_table(judge(tables)),
        *[table.markdown() for table in tables.values()],
    ]
    return "\n".join(lines)


def write_results(text: str) -> None:
    """Replace the generated part of RESULTS.md, keeping what is written around it."""
    before, after = "# Benchmark results\n\n", "\n"
    if RESULTS.exists():
        old = RESULTS.read_text()
        if BEGIN in old and END in old:
            before = old.split(BEGIN, 1)[0]
            after = old.split(END, 1)[1]
    RESULTS.write_text(f"{before}{BEGIN}\n{text}\n{END}{after}")


# --- main ------------------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m loadtest.bench",
        description="Measure shardproxy against nginx and HAProxy on loopback.",
    )
    parser.add_argument("--quick", action="store_true", help="one short round of each figure")
    parser.add_argument("--write", action="store_true", help=f"also write {RESULTS.name}")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=list(ALL_FIGURES),
        metavar="FIGURE",
        help=f"measure only these figures ({', '.join(ALL_FIGURES)})",
    )
    parser.add_argument(
        "--baseline",
        default=BASELINE_REVISION,
        help=f"git commit measured as '{BASELINE}' (default {BASELINE_REVISION})",
    )
    parser.add_argument("--no-pin", action="store_true", help="do not pin processes to CPUs")
    parser.add_argument(
        "--file-mib", type=int, default=1024, help="size of the big file in MiB (default 1024)"
    )
    return parser.parse_args(argv)


def run(args: argparse.Namespace, command: str) -> str:
    plan = Plan.quick() if args.quick else Plan.full()
    plan = dataclasses.replace(plan, big_size=args.file_mib * MiB)
    layout = choose_layout(args.no_pin)
    if layout.rest is not None:
        os.sched_setaffinity(0, {int(c) for c in layout.rest.split(",")})
    about = machine()
    started = time.monotonic()
    tables: dict[str, Table] = {}
    with scratch_directory() as work:
        say(f"writing the {plan.big_size // MiB} MiB file ...")
        source = work / "root" / peers.FILE_FOLDER.lstrip("/") / peers.BIG_UUID
        peers.write_big_file(source, plan.big_size)
        source.with_name(peers.SMALL_UUID).write_bytes(os.urandom(peers.SMALL_SIZE))
        baseline = peers.baseline_tree(work, args.baseline)
        origin, proxies = build(work, layout, plan.big_size, baseline)
        bench = Bench(plan, origin, {p.label: p for p in proxies}, source, work, layout.rest)
        with running([origin, *[p.server for p in proxies]], work):
            for name in args.only or ALL_FIGURES:
                say(f"measuring {name} ...")
                tables[name] = ALL_FIGURES[name](bench)
                say(tables[name].markdown())
    minutes = (time.monotonic() - started) / 60
    return render(tables, about, layout, command, minutes)


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    given = sys.argv[1:] if argv is None else argv
    args = parse_args(given)
    stop_on_signals()
    try:
        text = run(args, " ".join(["python -m loadtest.bench", *given]))
    except KeyboardInterrupt:
        say("interrupted: everything started was stopped")
        return 130
    except (clients.BadReply, RuntimeError) as exc:
        say(f"benchmark failed: {exc}")
        return 1
    print(text)
    if args.write:
        write_results(text)
        say(f"written to {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
