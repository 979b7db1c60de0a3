"""What answering NzbDav's virtual levels itself saves a walk of a shard view.

    .venv/bin/python -m loadtest.virtual_walk [--rounds 3] [--latency-ms 5]

Starts, on free loopback ports in a scratch directory removed at the end: the NzbDav
stand-in (its sample library) answering every request ``--latency-ms`` late, as NzbDav's
own work per request (its database) makes it, and two ``shardproxy serve`` in front of
it, one with ``virtual_levels`` (the default) and one with ``--no-virtual-levels``. Each
round walks shard 0's view (of 4) through each proxy, the order alternating by round:

- ``sequential``: one keep-alive connection, a Depth-1 PROPFIND of every folder from the
  view's root down to the fourth level, one after another, as rclone's VFS looks paths
  up (1 + 4 + 64 + 1,024 = 1,093 requests);
- ``rclone lsf``: Debian's rclone (``lsf -R --max-depth 4``, its default 8 checkers)
  listing the same tree; every listed path is checked. rclone's WebDAV pacer starts at
  most one request per 10 ms, so this walk takes about 11 s whoever answers;
- ``rclone lsf, no pacer``: the current rclone (``.tools/rclone-current``, if installed)
  with ``--webdav-pacer-min-sleep 0``: the same walk when the client does not wait.

Figures: the median seconds per walk with the range in brackets, and how many requests
reached NzbDav per walk (the stand-in's access log). Bounded by the round count; every
process is stopped however the run ends. Timings only: nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from loadtest import peers
from loadtest.bench import machine, running, scratch_directory, stop_on_signals
from shardproxy.core.shards import HEX_DIGITS, ShardMap
from shardproxy.tools.deploy.files import obscure, webdav_remotes
from shardproxy.tools.ports import free_port

USER, PASSWORD = "admin", "secret"
SHARDS = 4
SHARD = 0
LEVELS = 4  # folders listed down to this level below the view's root
_HREF = re.compile(rb"<D:href>([^<]*)</D:href>")


def expected_tree() -> int:
    """How many paths ``lsf -R --max-depth LEVELS`` lists in the shard's view."""
    owned = len(ShardMap.even(SHARDS).chars_of(SHARD))
    return sum(owned * 16**level for level in range(LEVELS))


def sequential_walk(port: int) -> int:
    """Depth-1 PROPFINDs of the view's folders above LEVELS, on one connection; the count."""
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    headers = {"Depth": "1", "Authorization": f"Basic {token}", "Content-Length": "0"}
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    pending = [(f"/.ids-s{SHARD}/", 0)]
    sent = 0
    try:
        while pending:
            path, level = pending.pop()
            connection.request("PROPFIND", path, headers=headers)
            reply = connection.getresponse()
            body = reply.read()
            sent += 1
            if reply.status != 207:
                raise RuntimeError(f"PROPFIND {path}: {reply.status} {body[:200]!r}")
            if level + 1 < LEVELS:
                children = [href.decode().rsplit("/", 1)[1] for href in _HREF.findall(body)[1:]]
                if len(children) != (16 if level else len(ShardMap.even(SHARDS).chars_of(0))):
                    raise RuntimeError(f"PROPFIND {path}: {len(children)} children")
                pending += [(f"{path}{child}/", level + 1) for child in children]
    finally:
        connection.close()
    return sent


def rclone_walk(rclone: list[str], config: Path, remote: str) -> int:
    """``rclone lsf -R`` of the view down to LEVELS; the number of paths, all checked."""
    listed = subprocess.run(
        [*rclone, "--config", str(config), "lsf", "-R", "--max-depth", str(LEVELS), remote],
        capture_output=True,
        check=True,
        timeout=600,
    ).stdout.split()
    bad = [p for p in listed if any(c not in HEX_DIGITS for c in p.decode().replace("/", ""))]
    if len(listed) != expected_tree() or bad:
        raise RuntimeError(f"rclone listed {len(listed)} paths ({bad[:3]}), not {expected_tree()}")
    return len(listed)


def backend_requests(log: Path) -> int:
    """PROPFINDs the stand-in has logged so far."""
    return log.read_bytes().count(b'"PROPFIND ')


def shardproxy(name: str, origin: int, work: Path, *extra: str) -> peers.Server:
    argv = [sys.executable, "-m", "shardproxy.cli", "serve", "--backend"]
    argv += [f"http://127.0.0.1:{origin}", "--listen", f"127.0.0.1:{(port := free_port())}"]
    argv += ["--shards", str(SHARDS), "--log-level", "warning"]
    argv += ["--rc-pending-file", str(work / f"{name}.sqlite3"), *extra]
    return peers.Server(name, port, argv, None, "/health", {"PYTHONPATH": str(peers.REPO)})


def median_range(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def run(rounds: int, latency_ms: float) -> str:
    """Start everything, walk ``rounds`` times, stop everything; the report."""
    if shutil.which("rclone") is None:
        raise SystemExit("rclone is not installed: run ./scripts/setup.sh")
    with scratch_directory() as work:
        origin = free_port()
        standin_argv = [sys.executable, "-m", "nzbdav_standin", "--listen", f"127.0.0.1:{origin}"]
        standin_argv += ["--latency-ms", str(latency_ms), "--access-log"]
        standin = peers.Server("nzbdav", origin, standin_argv, None, "/health")
        proxies = {
            "virtual_levels on": shardproxy("virtual", origin, work),
            "virtual_levels off": shardproxy("asking", origin, work, "--no-virtual-levels"),
        }
        config = work / "rclone.conf"
        obscured = obscure(PASSWORD, os.urandom(16))
        config.write_text(
            "\n".join(
                webdav_remotes(
                    f"http://127.0.0.1:{p.port}", SHARDS, USER, obscured, rest=f"r{i}"
                ).replace("[shard", f"[p{i}-shard")
                for i, p in enumerate(proxies.values())
            )
        )
        walks: dict[str, Callable[[int, int], int]] = {
            "sequential": lambda index, port: sequential_walk(port),
            "rclone lsf": lambda index, port: rclone_walk(
                ["rclone"], config, f"p{index}-shard{SHARD}:"
            ),
        }
        current = peers.REPO / ".tools" / "rclone-current" / "bin" / "rclone"
        if current.exists():
            unpaced = [str(current), "--webdav-pacer-min-sleep", "0"]
            walks["rclone lsf, no pacer"] = lambda index, port: rclone_walk(
                unpaced, config, f"p{index}-shard{SHARD}:"
            )
        seconds: dict[tuple[str, str], list[float]] = {}
        asked: dict[tuple[str, str], list[int]] = {}
        log = work / "nzbdav.log"
        with running([standin, *proxies.values()], work):
            for round_number in range(rounds):
                order = list(enumerate(proxies.items()))
                if round_number % 2:
                    order.reverse()
                for walk_name, walk in walks.items():
                    for index, (name, server) in order:
                        before = backend_requests(log)
                        started = time.monotonic()
                        walk(index, server.port)
                        seconds.setdefault((walk_name, name), []).append(time.monotonic() - started)
                        asked.setdefault((walk_name, name), []).append(
                            backend_requests(log) - before
                        )
    names = list(proxies)
    lines = [
        f"### Walking shard {SHARD}'s view (of {SHARDS}) to level {LEVELS}, "
        f"NzbDav answering {latency_ms:g} ms late",
        "",
        f"`.venv/bin/python -m loadtest.virtual_walk --rounds {rounds} "
        f"--latency-ms {latency_ms:g}`, {rounds} rounds, on:",
        "",
        *(line for line in machine() if "nginx" not in line),
        "",
        "| walk | "
        + " | ".join(f"{n}: s (range)" for n in names)
        + " | off / on | requests to NzbDav (on / off) |",
        "|---|" + "---|" * (len(names) + 2),
    ]
    for walk_name in walks:
        cells = [median_range(seconds[walk_name, n]) for n in names]
        ratio = statistics.median(seconds[walk_name, names[1]]) / statistics.median(
            seconds[walk_name, names[0]]
        )
        # The median: the stand-in logs a request once its reply is sent, so now and then
        # the last one of the walk before lands in this walk's count.
        requests = " / ".join(f"{statistics.median(asked[walk_name, n]):g}" for n in names)
        lines.append(f"| {walk_name} | " + " | ".join(cells) + f" | {ratio:.1f}x | {requests} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.virtual_walk", description=__doc__)
    parser.add_argument("--rounds", type=int, default=3, help="walks per proxy and kind (3)")
    parser.add_argument(
        "--latency-ms", type=float, default=5.0, help="NzbDav's delay per request (5)"
    )
    args = parser.parse_args(argv)
    if not 1 <= args.rounds <= 20:
        raise SystemExit("--rounds must be 1 to 20")
    stop_on_signals()
    print(run(args.rounds, args.latency_ms), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
