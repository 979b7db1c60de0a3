"""One command for a bounded soak run: stand-in, proxy, shard rclones, locust users.

    .venv/bin/python -m loadtest.soak --users 200 --minutes 5 [--write]

Starts, each on a free loopback port in a scratch directory removed at the end: the
NzbDav stand-in serving the soak library (``loadtest.soak_library``), ``shardproxy
serve`` with 4 shards and its RC endpoint, and one ``rclone serve webdav --rc`` per
shard serving its shard view (the RC endpoints the proxy forwards forgets to). Then
runs ``loadtest/locustfile.py`` headless for the given time and reports locust's
figures with the proxy's RSS and open descriptors at start and end. Exits non-zero if
any request failed. ``--write`` puts the report into ``loadtest/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from loadtest.peers import REPO, Server
from loadtest.procstat import descendants, rss_bytes
from shardproxy.tools.ports import free_port

RESULTS = REPO / "loadtest" / "RESULTS.md"
BEGIN, END = "<!-- soak:begin -->", "<!-- soak:end -->"
SHARDS = 4
SAMPLE_SECONDS = 5.0
IDLE_SECONDS = 35.0


def open_descriptors(root: int) -> int:
    """File descriptors open in ``root``'s process tree."""
    total = 0
    for pid in descendants(root):
        try:
            total += len(os.listdir(f"/proc/{pid}/fd"))
        except OSError:
            continue
    return total


@dataclass
class Samples:
    """The proxy's RSS (MiB) and descriptors, sampled while the load runs."""

    root: int
    points: list[tuple[float, float, int]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def take(self) -> None:
        self.points.append(
            (time.monotonic(), rss_bytes(self.root) / 2**20, open_descriptors(self.root))
        )

    def run(self) -> None:
        while not self.stop.wait(SAMPLE_SECONDS):
            self.take()


def rclone_binary() -> str:
    current = REPO / ".tools" / "rclone-current" / "bin" / "rclone"
    found = shutil.which("rclone")
    if found is None and not current.exists():
        raise SystemExit("rclone is not installed: run ./scripts/setup.sh")
    return found or str(current)


def start_stack(work: Path, started: list[Server]) -> tuple[Server, int]:
    """The stand-in, the proxy and the shard rclones, each ready (and each put in
    ``started`` as soon as it runs, for the caller to stop); the proxy and its RC port."""
    env = {"PYTHONPATH": str(REPO)}
    backend_port, proxy_port, rc_port = free_port(), free_port(), free_port()
    backend = Server(
        "standin",
        backend_port,
        [sys.executable, "-m", "loadtest.soak_library", str(backend_port)],
        None,
        "/README",
        env,
    )
    shard_rc_ports = [free_port() for _ in range(SHARDS)]
    proxy_argv = [sys.executable, "-m", "shardproxy.cli", "serve"]
    proxy_argv += ["--backend", f"http://127.0.0.1:{backend_port}"]
    proxy_argv += ["--listen", f"127.0.0.1:{proxy_port}", "--shards", str(SHARDS)]
    proxy_argv += ["--rc-listen", f"127.0.0.1:{rc_port}", "--log-level", "warning"]
    proxy_argv += ["--rc-pending-file", str(work / "pending.sqlite3")]
    for shard, port in enumerate(shard_rc_ports):
        proxy_argv += ["--shard-rc", f"{shard}=http://127.0.0.1:{port}"]
    proxy = Server("shardproxy", proxy_port, proxy_argv, None, "/README", env)
    rclones = []
    binary = rclone_binary()
    for shard, port in enumerate(shard_rc_ports):
        remote = f":webdav,url='http://127.0.0.1:{proxy_port}/.ids-s{shard}',vendor=other:"
        argv = [binary, "serve", "webdav", remote, "--addr", f"127.0.0.1:{free_port()}"]
        argv += ["--rc", "--rc-addr", f"127.0.0.1:{port}", "--rc-no-auth", "--config", os.devnull]
        argv += ["--cache-dir", str(work / f"cache{shard}"), "--log-level", "NOTICE"]
        rclones.append(Server(f"rclone{shard}", port, argv, None, "/"))
    backend.start(work)
    started.append(backend)
    backend.wait_ready(work)
    proxy.start(work)
    started.append(proxy)
    proxy.wait_ready(work)
    for rclone in rclones:
        rclone.start(work)
        started.append(rclone)
    for rclone in rclones:
        _wait_rc(rclone, work)
    return proxy, rc_port


def _wait_rc(rclone: Server, work: Path) -> None:
    import urllib.request

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            request = urllib.request.Request(
                f"http://127.0.0.1:{rclone.port}/rc/noop",
                data=b"{}",
                method="POST",
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=2):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(
        f"{rclone.name} RC never answered: {(work / f'{rclone.name}.log').read_text()[-2000:]}"
    )


def run_locust(
    work: Path, proxy: Server, rc_port: int, users: int, seconds: int
) -> subprocess.CompletedProcess[bytes]:
    argv = [
        str(Path(sys.executable).parent / "locust"),
        "-f",
        str(REPO / "loadtest" / "locustfile.py"),
    ]
    argv += ["--headless", "--host", f"http://127.0.0.1:{proxy.port}", "--only-summary"]
    argv += ["--users", str(users), "--spawn-rate", str(max(1, users // 20))]
    argv += ["--run-time", f"{seconds}s", "--stop-timeout", "30", "--csv", str(work / "locust")]
    argv += ["--rc-url", f"http://127.0.0.1:{rc_port}", "--shards", str(SHARDS)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with (work / "locust.log").open("wb") as log:
        return subprocess.run(
            argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO, check=False
        )


def stats_table(work: Path) -> tuple[str, int, int]:
    """Locust's per-request figures as a markdown table; total requests and failures."""
    rows = list(csv.DictReader((work / "locust_stats.csv").open()))
    lines = [
        "| request | count | failures | p50 ms | p95 ms | p99 ms | max ms |",
        "|---|---|---|---|---|---|---|",
    ]
    total = failures = 0
    for row in rows:
        name = row["Name"] if row["Type"] else "**all**"
        lines.append(
            f"| {row['Type']} {name} | {row['Request Count']} | {row['Failure Count']} | "
            f"{row['50%']} | {row['95%']} | {row['99%']} | {float(row['Max Response Time']):.0f} |"
        )
        if row["Name"] == "Aggregated":
            total, failures = int(row["Request Count"]), int(row["Failure Count"])
    return "\n".join(lines), total, failures


def report(work: Path, samples: Samples, users: int, seconds: int, code: int) -> tuple[str, int]:
    table, total, failures = stats_table(work)
    first, end, idle = samples.points[0], samples.points[-2], samples.points[-1]
    peak_rss = max(p[1] for p in samples.points)
    peak_fds = max(p[2] for p in samples.points)
    failures_csv = work / "locust_failures.csv"
    failed = list(csv.DictReader(failures_csv.open())) if failures_csv.exists() else []
    lines = [
        f"Run on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC with "
        f"`python -m loadtest.soak --users {users} --minutes {seconds / 60:g}`; "
        f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}.",
        "",
        f"{users} users for {seconds} s: {total} requests, **{failures} failures** "
        f"(locust exit status {code}). Times are to the first byte of the reply "
        "(bodies are streamed), in milliseconds.",
        "",
        table,
        "",
        "| proxy | RSS MiB | open descriptors |",
        "|---|---|---|",
        f"| at start (load starting) | {first[1]:.1f} | {first[2]} |",
        f"| at the end (load stopped) | {end[1]:.1f} | {end[2]} |",
        f"| {IDLE_SECONDS:g} s later, idle | {idle[1]:.1f} | {idle[2]} |",
        f"| peak while loaded | {peak_rss:.1f} | {peak_fds} |",
    ]
    for row in failed[:10]:
        lines.append(
            f"\nFailure: {row['Method']} {row['Name']} x{row['Occurrences']}: {row['Error']}"
        )
    return "\n".join(lines), failures


def write_results(text: str) -> None:
    results = RESULTS.read_text()
    block = f"{BEGIN}\n{text}\n{END}"
    if BEGIN in results:
        head, rest = results.split(BEGIN, 1)
        results = head + block + rest.split(END, 1)[1]
    else:
        results += f"\n## Soak: 200 users of every kind\n\n{block}\n"
    RESULTS.write_text(results)


def main() -> int:
    """Run the soak and print (or write) its report."""
    parser = argparse.ArgumentParser(prog="python -m loadtest.soak", description=__doc__)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--write", action="store_true", help="put the report into RESULTS.md")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    options = parser.parse_args()
    seconds = round(options.minutes * 60)
    work = Path(tempfile.mkdtemp(prefix="shardproxy-soak-"))
    servers: list[Server] = []
    try:
        proxy, rc_port = start_stack(work, servers)
        samples = Samples(proxy.pid)
        samples.take()
        sampler = threading.Thread(target=samples.run, daemon=True)
        sampler.start()
        result = run_locust(work, proxy, rc_port, options.users, seconds)
        samples.stop.set()
        sampler.join()
        samples.take()
        # Keep-alive connections idle out after 30 s: what is left then is what leaks.
        time.sleep(IDLE_SECONDS)
        samples.take()
        text, failures = report(work, samples, options.users, seconds, result.returncode)
        print(text)
        if options.write:
            write_results(text)
        return 1 if failures or result.returncode else 0
    finally:
        for server in reversed(servers):
            server.stop()
        if options.keep:
            print(f"scratch directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
