"""A Plex-like scan of a generated library: one plain rclone mount against both layouts.

    .venv/bin/python -m loadtest.scan --items 20000 [--write]

One NzbDav stand-in, in a process of its own, serves a generated library
(``nzbdav_standin.generated``: episodes and films, their ``.ids`` files and
``.rclonelink``s; ``--items`` of them) with NzbDav-like delays (``--propfind-ms`` before
each listing, ``--first-byte-ms`` before each file's first byte). Three sides are
measured in turn, each on a fresh stand-in and fresh caches, the order rotating by round:

- **plain**: one `rclone mount` of the stand-in, with the flags ``gen`` writes for a shard;
- **links-unchanged**: shardproxy, four shard mounts plus ``rest``, mergerfs, links to
  ``/mnt/nzbdav/.ids/...`` (DESIGN.md's first layout);
- **shard-links**: the same with each shard mounting its own ``.ids-s<N>`` and links to
  ``/mnt/nzbdav/.ids-s<N>/...``;
- **shard-mounts** (asked for with ``--sides``): the shard-links stack, with links straight
  into each shard's mount (``/mnt/shards/s<N>/.ids-s<N>/...``), past mergerfs: what
  mergerfs's hop costs. (NzbDav's "remove unlinked files" would not count such links.)

The stacks are started from the generated units (``shardproxy.tools.stack_runner``). Each
side gets a Plex-style library of symlinks (``tv/<show>/Season NN/...``, ``movies/...``)
into its mount. A scan walks that library and stats every item; on the first (cold) scan
every item is new, so it also reads the first MiB and one MiB near the end of each, as
Plex's media analysis does (``--workers`` items at a time). The second (warm) scan, after
``--pause`` seconds (longer than every kernel attribute cache of the stacks, so a
periodic scan hours later is what it models), finds nothing new and only stats. Reported
per side: scan times, the proxy's CPU, the PROPFINDs and GETs the stand-in received, and
each process's peak memory (VmHWM).

``--variant KEY=VALUE`` adds both layouts once more with that proxy setting, to compare a
setting on and off in one run.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from yarl import URL

from loadtest.bench import machine
from loadtest.procstat import cpu_seconds, peak_rss_bytes
from nzbdav_standin import Library, uuid_path
from nzbdav_standin.generated import GeneratedItem, build_generated, parse_kib_range
from shardproxy.config.settings import HostPort
from shardproxy.core.shards import IDS_ROOT, ShardMap
from shardproxy.tools.deploy.files import obscure
from shardproxy.tools.deploy.gen import find_programs
from shardproxy.tools.deploy.model import Deployment, Layout, Mount, RcEndpoint, mount_argv
from shardproxy.tools.ports import free_port
from shardproxy.tools.stack_runner import PASSWORD, USER, Stack, clear_stale_mounts, link_target

MIB = 1024 * 1024
RESULTS = Path(__file__).with_name("RESULTS.md")
SIDES = ("plain", "links-unchanged", "shard-links", "shard-mounts")
LAYOUTS = {
    "links-unchanged": Layout.LINKS_UNCHANGED,
    "shard-links": Layout.SHARD_LINKS,
    "shard-mounts": Layout.SHARD_LINKS,
}
READY_TIMEOUT = 120.0


# -- the scan -------------------------------------------------------------------------


@dataclass
class ScanResult:
    """One scan: how long it took, how many items it saw and how many failed."""

    seconds: float
    items: int
    errors: int


def probe(path: Path, read: bool) -> None:
    """What Plex does to one item: stat it, and if new read its head and near its end."""
    size = os.stat(path).st_size
    if read:
        with path.open("rb") as stream:
            stream.read(MIB)
            stream.seek(max(size - 2 * MIB, 0))
            stream.read(MIB)


def library_items(library: Path) -> list[Path]:
    """Every item (symlink or file) under ``library``, walked without following links.

    (``os.walk`` follows every link to learn whether it is a folder: a stat of each
    item, one at a time, before the scan proper.)
    """
    found, folders = [], [library]
    while folders:
        with os.scandir(folders.pop()) as entries:
            for entry in sorted(entries, key=lambda entry: entry.name):
                if entry.is_dir(follow_symlinks=False):
                    folders.append(Path(entry.path))
                else:
                    found.append(Path(entry.path))
    return found


def scan(library: Path, *, read: bool, workers: int) -> ScanResult:
    """Walk ``library`` and probe every item (``workers`` at a time)."""
    started = time.monotonic()
    items = library_items(library)

    def one(path: Path) -> bool:
        try:
            probe(path, read)
        except OSError:
            return False
        return True

    if workers <= 1:
        done = [one(path) for path in items]
    else:
        with ThreadPoolExecutor(workers) as pool:
            done = list(pool.map(one, items))
    return ScanResult(time.monotonic() - started, len(items), done.count(False))


def make_library(root: Path, items: list[GeneratedItem], target: Callable[[str], str]) -> None:
    """Symlinks at each item's library path to ``target(uuid)``."""
    for item in items:
        link = root / item.library_path
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(target(item.uuid))


# -- the processes --------------------------------------------------------------------


@dataclass
class ScanOptions:
    """What every side of a run shares."""

    items: int
    item_kib: str
    propfind_ms: float
    first_byte_ms: str
    seed: int
    workers: int
    pause: float
    rclone: str | None = None


class StandinProcess:
    """The NzbDav stand-in in a process of its own, serving the generated library."""

    def __init__(self, options: ScanOptions, log: Path) -> None:
        argv = [
            sys.executable, "-m", "nzbdav_standin", "--listen", "127.0.0.1:0",
            "--user", USER, "--password", PASSWORD, "--items", str(options.items),
            "--item-kib", options.item_kib, "--seed", str(options.seed),
            "--propfind-ms", str(options.propfind_ms), "--first-byte-ms", options.first_byte_ms,
        ]  # fmt: skip
        with log.open("ab") as errors:
            self.process = subprocess.Popen(
                argv, stdout=subprocess.PIPE, stderr=errors, cwd=Path(__file__).parents[1]
            )
        line = self._line()
        if not line.startswith("nzbdav-standin ready at "):
            raise RuntimeError(f"the stand-in did not start: {line!r}, see {log}")
        self.url = URL(line.rsplit(" ", 1)[1].rstrip("/"))
        self.pid = self.process.pid

    def _line(self) -> str:
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], READY_TIMEOUT)
        if not ready:
            raise RuntimeError("the stand-in said nothing in time")
        return self.process.stdout.readline().decode().strip()

    def counts(self) -> dict[str, int]:
        """Requests received so far, by method."""
        self.process.send_signal(signal.SIGUSR1)
        counts: dict[str, int] = json.loads(self._line())
        return counts

    def close(self) -> None:
        """Stop it."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)


@dataclass
class Running:
    """One side, up: where its links point and which processes to watch."""

    target: Callable[[str], str]
    processes: dict[str, int] = field(default_factory=dict)
    proxy: int | None = None


def _mergerfs_pid(merged: PurePosixPath) -> int | None:
    for name in os.listdir("/proc"):
        with contextlib.suppress(OSError):
            argv = Path(f"/proc/{name}/cmdline").read_bytes().split(b"\0")
            if argv and argv[0].endswith(b"mergerfs") and str(merged).encode() in argv:
                return int(name)
    return None


@contextlib.contextmanager
def plain_side(standin: StandinProcess, folder: Path, options: ScanOptions) -> Iterator[Running]:
    """One `rclone mount` of the stand-in itself, with a shard's flags."""
    point, cache, conf = folder / "plain", folder / "plain-cache", folder / "rclone.conf"
    deployment = Deployment(
        proxy_url=standin.url,
        shard_count=1,
        mount_root=PurePosixPath(folder),
        config_dir=PurePosixPath(folder),
        cache_dirs=(PurePosixPath(cache),),
        rest_cache_dir=PurePosixPath(cache),
    )
    programs = find_programs(options.rclone)
    conf.write_text(
        f"[plain]\ntype = webdav\nurl = {standin.url}\nvendor = other\n"
        f"user = {USER}\npass = {obscure(PASSWORD, os.urandom(16))}\n"
    )
    mount = Mount(
        name="plain",
        mountpoint=PurePosixPath(point),
        cache_dir=PurePosixPath(cache),
        cache_mode="full",
        rc=RcEndpoint(HostPort("127.0.0.1", free_port()), "rclone", "plain"),
        max_size="off",
        min_free_space="100M",
    )
    argv = mount_argv(deployment, programs, mount)
    point.mkdir(parents=True)
    with (folder / "plain.log").open("ab") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        while not os.path.ismount(point):
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("the plain rclone mount did not come up")
            time.sleep(0.05)
        yield Running(lambda uuid: f"{point}{uuid_path(uuid)}", {"rclone plain": process.pid})
    finally:
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=30)
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)
        clear_stale_mounts(folder)  # (its parent: a dead mount point cannot be stat'ed)


@contextlib.contextmanager
def stack_side(
    side: str,
    standin: StandinProcess,
    folder: Path,
    options: ScanOptions,
    settings: dict[str, Any],
) -> Iterator[Running]:
    """The whole sharded stack of ``side``, in front of the stand-in."""
    layout = LAYOUTS[side]
    stack = Stack(
        folder / "stack",
        layout,
        rclone=options.rclone,
        backend=standin.url,
        build_links=False,
        settings_overrides=settings,
    )
    with stack:
        merged = stack.deployment.merged
        shard_map = ShardMap.even(stack.shards)
        proxy = stack.processes["shardproxy"].pid
        processes = {
            f"rclone {name}": process.pid
            for name, process in stack.processes.items()
            if name != "shardproxy"
        }
        mergerfs = _mergerfs_pid(merged)
        if mergerfs is not None:
            processes["mergerfs"] = mergerfs
        processes["shardproxy"] = proxy

        def target(uuid: str) -> str:
            if side == "shard-mounts":  # straight into the owner's mount, past mergerfs
                point = stack.mount(f"shard{shard_map.shard_of(uuid)}").mountpoint
                return f"{point}{uuid_path(uuid).removeprefix(IDS_ROOT)}"
            return link_target(f"{merged}{uuid_path(uuid)}", layout, shard_map)

        yield Running(target, processes, proxy)


# -- one side, measured ---------------------------------------------------------------


@dataclass
class SideResult:
    """What one side did in one round."""

    cold: ScanResult
    warm: ScanResult
    requests: dict[str, dict[str, int]]
    """Stand-in requests by method, for "cold" and "warm"."""
    proxy_cpu: dict[str, float]
    """The proxy's CPU seconds for "cold" and "warm" (empty for plain)."""
    mounts_cpu: dict[str, float]
    """Every rclone's and mergerfs's CPU seconds together."""
    peaks: dict[str, int]
    """Peak resident memory of each process, bytes."""


def _difference(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {method: after[method] - before.get(method, 0) for method in after}


def measure_side(
    side: str, options: ScanOptions, folder: Path, items: list[GeneratedItem]
) -> SideResult:
    """Start ``side`` on a fresh stand-in, scan cold then warm, and stop it all."""
    folder.mkdir(parents=True)
    standin = StandinProcess(options, folder / "standin.log")
    try:
        layout, _, variant = side.partition(" +")
        settings = dict([variant.split("=", 1)]) if variant else {}
        up = (
            plain_side(standin, folder, options)
            if layout == "plain"
            else stack_side(layout, standin, folder, options, settings)
        )
        with up as running:
            library = folder / "library"
            make_library(library, items, running.target)
            mounts = [pid for name, pid in running.processes.items() if name != "shardproxy"]
            counts, proxy_cpu, mounts_cpu = {}, {}, {}
            before = standin.counts()
            for state in ("cold", "warm"):
                if state == "warm":
                    time.sleep(options.pause)
                    before = standin.counts()
                proxy_before = cpu_seconds(running.proxy) if running.proxy else 0.0
                mounts_before = sum(cpu_seconds(pid) for pid in mounts)
                result = scan(library, read=state == "cold", workers=options.workers)
                if state == "cold":
                    cold = result
                else:
                    warm = result
                counts[state] = _difference(standin.counts(), before)
                if running.proxy:
                    proxy_cpu[state] = cpu_seconds(running.proxy) - proxy_before
                mounts_cpu[state] = sum(cpu_seconds(pid) for pid in mounts) - mounts_before
            peaks = {name: peak_rss_bytes(pid) for name, pid in running.processes.items()}
            peaks["stand-in"] = peak_rss_bytes(standin.pid)
        return SideResult(cold, warm, counts, proxy_cpu, mounts_cpu, peaks)
    finally:
        standin.close()


# -- the report -----------------------------------------------------------------------


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def report(rounds: list[dict[str, SideResult]], options: ScanOptions, minutes: float) -> str:
    """The tables, medians over the rounds."""
    sides = list(rounds[0])

    def med(side: str, get: Callable[[SideResult], float]) -> float:
        return _median([get(r[side]) for r in rounds])

    plain = {
        "cold": med("plain", lambda result: result.cold.seconds),
        "warm": med("plain", lambda result: result.warm.seconds),
    }
    command = (
        f"python -m loadtest.scan --items {options.items} --item-kib {options.item_kib} "
        f"--propfind-ms {options.propfind_ms:g} --first-byte-ms {options.first_byte_ms} "
        f"--workers {options.workers} --pause {options.pause:g} --rounds {len(rounds)}"
    )
    lines = [
        "",
        f"## Plex-like scan of {options.items:,} items: both layouts vs one plain rclone mount",
        "",
        f"Run on {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC with `{command}`, "
        f"{minutes:.1f} minutes; {len(rounds)} round(s), fresh stand-in and caches for every "
        "side, the order rotating; medians.",
        "",
        "Machine:",
        "",
        *machine(),
        "",
        "| side | cold s | cold / plain | warm s | warm / plain | failed | proxy CPU s cold / warm "
        "| mounts CPU s cold / warm | PROPFINDs cold / warm | GETs cold / warm | MiB read cold |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for side in sides:
        cold = med(side, lambda r: r.cold.seconds)
        warm = med(side, lambda r: r.warm.seconds)
        failed = max(r[side].cold.errors + r[side].warm.errors for r in rounds)
        proxy = (
            f"{med(side, lambda r: r.proxy_cpu['cold']):.1f} / "
            f"{med(side, lambda r: r.proxy_cpu['warm']):.1f}"
            if rounds[0][side].proxy_cpu
            else "-"
        )
        mounts = (
            f"{med(side, lambda r: r.mounts_cpu['cold']):.1f} / "
            f"{med(side, lambda r: r.mounts_cpu['warm']):.1f}"
        )

        def count(method: str, state: str, side: str = side) -> float:
            return med(side, lambda result: result.requests[state].get(method, 0))

        lines.append(
            f"| {side} | {cold:.1f} | {cold / plain['cold']:.2f} | {warm:.2f} | "
            f"{warm / plain['warm']:.2f} | {failed} | {proxy} | {mounts} | "
            f"{count('PROPFIND', 'cold'):.0f} / {count('PROPFIND', 'warm'):.0f} | "
            f"{count('GET', 'cold'):.0f} / {count('GET', 'warm'):.0f} | "
            f"{count('bytes read', 'cold') / MIB:.0f} |"
        )
    lines += ["", "Peak memory (VmHWM, MiB, the largest over the rounds):", ""]
    names = sorted({name for r in rounds for side in sides for name in r[side].peaks})
    lines.append("| side | " + " | ".join(names) + " |")
    lines.append("|---" * (len(names) + 1) + "|")
    for side in sides:
        cells = []
        for name in names:
            peak = max((r[side].peaks.get(name, 0) for r in rounds), default=0)
            cells.append(f"{peak / MIB:.0f}" if peak else "-")
        lines.append(f"| {side} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _stop(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)  # so every mount and process is cleaned up


def main() -> None:
    """Run the rounds and print (or append) the report."""
    signal.signal(signal.SIGTERM, _stop)
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--items", type=int, default=20000, help="library size (20000)")
    parser.add_argument("--item-kib", default="64-512", help="item sizes, KiB (64-512)")
    parser.add_argument("--propfind-ms", type=float, default=3.0, help="listing delay (3)")
    parser.add_argument("--first-byte-ms", default="50", help="first-byte delay, MS or LO-HI")
    parser.add_argument("--workers", type=int, default=8, help="items probed at once, cold")
    parser.add_argument("--pause", type=float, default=31.0, help="seconds before warm (31)")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--sides", nargs="+", choices=SIDES, default=list(SIDES[:3]))
    parser.add_argument("--variant", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--rclone", help="the rclone binary (default: the one on PATH)")
    parser.add_argument("--write", action="store_true", help="append the report to RESULTS.md")
    args = parser.parse_args()
    options = ScanOptions(
        args.items, args.item_kib, args.propfind_ms, args.first_byte_ms, args.seed,
        args.workers, args.pause, args.rclone,
    )  # fmt: skip
    sides = list(args.sides)
    for variant in args.variant:
        sides += [f"{side} +{variant}" for side in args.sides if side != "plain"]
    # The same library the stand-ins build, for its UUIDs and library paths.
    sizes = parse_kib_range(args.item_kib)
    items = build_generated(Library(), args.items, seed=args.seed, sizes=sizes)
    started = time.monotonic()
    rounds = []
    for number in range(args.rounds):
        order = sides[number % len(sides) :] + sides[: number % len(sides)]
        with tempfile.TemporaryDirectory(prefix="shardproxy-scan-") as scratch:
            results = {}
            for index, side in enumerate(order):
                results[side] = measure_side(side, options, Path(scratch) / str(index), items)
                print(f"round {number + 1}: {side}: cold {results[side].cold}, "
                      f"warm {results[side].warm}", flush=True)  # fmt: skip
            rounds.append({side: results[side] for side in sides})
    text = report(rounds, options, (time.monotonic() - started) / 60)
    print(text)
    if args.write:
        with RESULTS.open("a") as results_file:
            results_file.write(text)


if __name__ == "__main__":
    main()
