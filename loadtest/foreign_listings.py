"""A 1,500-entry listing through a shard view: recorded foreign listings, and real servers.

    .venv/bin/python -m loadtest.foreign_listings [--rounds 5] [--requests 40] [--no-real]

Replayed: each recorded listing of a folder of 1,500 files
(``tests/fixtures/listings/<server>-files-1500.xml.gz``, see ``record_listings``) is
served by a small replay server (``loadtest.replay``) with shardproxy in front;
one client on one keep-alive connection asks, one after another, for the shard view of
the folder (``/.ids-s0/0/1/2/3/4/``, every entry kept and rewritten) and, directly, for
the folder itself. Reported per server: wall milliseconds per listing through the proxy
and direct, the proxy's CPU per listing, and the proxy's time as a multiple of its time
on nginx's listing (the shape the fast path took before foreign shapes were added).

Real: the same with each of the six real servers (``loadtest.dav_servers``) serving a
tree holding the folder, where installed: the proxy's time against the server's own.

Servers take turns within each round; medians over the rounds. Timings only.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from loadtest.dav_servers import FILES, SERVERS, Missing, make_tree, serve
from loadtest.procstat import cpu_seconds
from shardproxy.tools.ports import free_port

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "listings"
REPO = Path(__file__).resolve().parents[1]
VIEW = FILES.replace("/.ids/", "/.ids-s0/", 1)
ENTRIES = 1500


def _accepts(port: int) -> bool:
    with contextlib.suppress(OSError):
        http.client.HTTPConnection("127.0.0.1", port, timeout=1).connect()
        return True
    return False


@contextlib.contextmanager
def process(argv: list[str], port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``argv`` (its own process group) until the block ends, once ``port`` answers."""
    with log.open("wb") as out:
        child = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 30
        while not _accepts(port):
            if child.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{argv[:4]} did not start: {log.read_text()[-800:]}")
            time.sleep(0.05)
        yield child
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGTERM)
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait(timeout=10)


@contextlib.contextmanager
def shardproxy(backend: str, log: Path) -> Iterator[tuple[int, int]]:
    """``shardproxy serve`` in front of ``backend``; yields its port and pid."""
    port = free_port()
    argv = [sys.executable, "-m", "shardproxy.cli", "serve", "--backend", backend]
    argv += ["--listen", f"127.0.0.1:{port}", "--shards", "4", "--log-level", "warning"]
    with process(argv, port, log) as child:
        yield port, child.pid


def timed_listings(port: int, path: str, count: int, proxy: int | None) -> tuple[float, float]:
    """Milliseconds per listing (wall) and proxy CPU µs per listing, one connection."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request("PROPFIND", path, headers={"Depth": "1"})  # warm the connection
        reply = connection.getresponse()
        if reply.status != 207:
            raise RuntimeError(f"PROPFIND {path} on port {port}: {reply.status}")
        reply.read()
        cpu = cpu_seconds(proxy) if proxy else 0.0
        started = time.monotonic()
        for _ in range(count):
            connection.request("PROPFIND", path, headers={"Depth": "1"})
            connection.getresponse().read()
        wall = (time.monotonic() - started) / count * 1e3
        used = (cpu_seconds(proxy) - cpu) / count * 1e6 if proxy else 0.0
        return wall, used
    finally:
        connection.close()


def measure(
    backends: dict[str, tuple[int, int, int]], rounds: int, count: int
) -> dict[str, dict[str, float]]:
    """Medians per server: through (ms), direct (ms), proxy CPU (µs)."""
    samples: dict[str, dict[str, list[float]]] = {
        name: {"through": [], "direct": [], "cpu": []} for name in backends
    }
    names = list(backends)
    for number in range(rounds):
        for name in names[number % len(names) :] + names[: number % len(names)]:
            backend_port, proxy_port, proxy_pid = backends[name]
            through, cpu = timed_listings(proxy_port, VIEW, count, proxy_pid)
            direct, _ = timed_listings(backend_port, FILES, count, None)
            samples[name]["through"].append(through)
            samples[name]["direct"].append(direct)
            samples[name]["cpu"].append(cpu)
    return {
        name: {key: statistics.median(values) for key, values in figures.items()}
        for name, figures in samples.items()
    }


def table(results: dict[str, dict[str, float]], title: str) -> list[str]:
    """Markdown rows, ratios to nginx's row."""
    nginx = results.get("nginx")
    lines = [
        f"| {title} | through the proxy ms | direct ms | through / direct | proxy CPU µs "
        "| through / nginx's through | CPU / nginx's CPU |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, figures in results.items():
        through_ratio = f"{figures['through'] / nginx['through']:.2f}" if nginx else "-"
        cpu_ratio = f"{figures['cpu'] / nginx['cpu']:.2f}" if nginx else "-"
        lines.append(
            f"| {name} | {figures['through']:.1f} | {figures['direct']:.1f} | "
            f"{figures['through'] / figures['direct']:.2f} | {figures['cpu']:.0f} | "
            f"{through_ratio} | {cpu_ratio} |"
        )
    return lines


def replayed(scratch: Path, rounds: int, count: int) -> list[str]:
    """The recorded listings, each behind a replay server and a proxy of its own."""
    with contextlib.ExitStack() as stack:
        backends = {}
        for name in SERVERS:
            recording = FIXTURES / f"{name}-files-{ENTRIES}.xml.gz"
            if not recording.exists():
                continue
            port = free_port()
            argv = [sys.executable, "-m", "loadtest.replay", str(port), str(recording)]
            stack.enter_context(process(argv, port, scratch / f"replay-{name}.log"))
            proxy_port, pid = stack.enter_context(
                shardproxy(f"http://127.0.0.1:{port}", scratch / f"proxy-{name}.log")
            )
            backends[name] = (port, proxy_port, pid)
        return table(measure(backends, rounds, count), "recorded listing, replayed")


def real(scratch: Path, rounds: int, count: int) -> list[str]:
    """The six real servers serving the folder, each with a proxy of its own."""
    tree = scratch / "tree"
    make_tree(tree, ENTRIES)
    missing = []
    with contextlib.ExitStack() as stack:
        backends = {}
        for name in SERVERS:
            try:
                url = stack.enter_context(serve(name, tree, scratch / name))
            except Missing as error:
                missing.append(f"{name} ({error})")
                continue
            port = int(url.rsplit(":", 1)[1])
            proxy_port, pid = stack.enter_context(
                shardproxy(url, scratch / f"proxy-real-{name}.log")
            )
            backends[name] = (port, proxy_port, pid)
        lines = table(measure(backends, rounds, count), "real server")
    if missing:
        lines += ["", "Not measured: " + "; ".join(missing)]
    return lines


def main() -> None:
    """Print both tables."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=40, help="listings per figure")
    parser.add_argument("--no-real", action="store_true", help="recorded listings only")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="shardproxy-foreign-") as folder:
        scratch = Path(folder)
        scratch.chmod(0o755)  # Apache's workers run as www-data and must read the tree
        lines = replayed(scratch, options.rounds, options.requests)
        if not options.no_real:
            lines += ["", *real(scratch, options.rounds, options.requests)]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
