"""A Plex-like library scan through the sharded stack against one plain rclone mount.

The demo's library (the sample plus four large films) is served by one NzbDav stand-in.
The sharded side is the whole stack (shardproxy, four shard mounts plus ``rest``,
mergerfs, the symlink library), started from the generated units; the plain side is one
`rclone mount` of the stand-in itself with the same flags and its own cache, and a
library of symlinks into it. A scan stats every link and reads the first MiB and one MiB
near the end of each file, as Plex does when it analyses media. Each side is scanned
cold (nothing cached), then warm; which side goes first alternates by round.

    .venv/bin/python -m loadtest.scan [--write]     # --write appends to loadtest/RESULTS.md
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path, PurePosixPath

from loadtest.bench import machine
from nzbdav_standin import uuid_path
from shardproxy.config.settings import HostPort
from shardproxy.core.shards import ShardMap
from shardproxy.tools.demo import demo_library
from shardproxy.tools.deploy.files import obscure
from shardproxy.tools.deploy.model import Layout, Mount, RcEndpoint, mount_argv
from shardproxy.tools.ports import free_port
from shardproxy.tools.stack_runner import PASSWORD, USER, Stack, clear_stale_mounts

MIB = 1024 * 1024
RESULTS = Path(__file__).with_name("RESULTS.md")


def scan(links: list[Path]) -> float:
    """Seconds to stat every link and read its first MiB and one MiB near its end."""
    started = time.monotonic()
    for link in links:
        size = os.stat(link).st_size
        with link.open("rb") as stream:
            stream.read(MIB)
            stream.seek(max(size - 2 * MIB, 0))
            stream.read(MIB)
    return time.monotonic() - started


class PlainMount:
    """One `rclone mount` of the stand-in itself: the deployment without shardproxy."""

    def __init__(self, stack: Stack, folder: Path) -> None:
        self.point = folder / "plain"
        self.cache = folder / "plain-cache"
        self.conf = folder / "plain.conf"
        self.conf.write_text(
            f"[plain]\ntype = webdav\nurl = {stack.standin_url}\nvendor = other\n"
            f"user = {USER}\npass = {obscure(PASSWORD, os.urandom(16))}\n"
        )
        mount = Mount(
            name="plain",
            mountpoint=PurePosixPath(self.point),
            cache_dir=PurePosixPath(self.cache),
            cache_mode="full",
            rc=RcEndpoint(HostPort("127.0.0.1", free_port()), "rclone", "plain"),
            max_size="off",
        )
        argv = mount_argv(stack.deployment, stack.programs, mount)
        argv[argv.index("--config") + 1] = str(self.conf)
        self.point.mkdir(parents=True)
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while not os.path.ismount(self.point):
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError("the plain rclone mount did not come up")
            time.sleep(0.05)
        self.links = []
        library = folder / "plain-library"
        for link in stack.links:
            plain = library / link.link.relative_to(stack.library_dir)
            plain.parent.mkdir(parents=True, exist_ok=True)
            plain.symlink_to(f"{self.point}{uuid_path(link.uuid)}")
            self.links.append(plain)

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)
        clear_stale_mounts(self.point)


def one_round(folder: Path, plain_first: bool) -> dict[str, float]:
    """A fresh stack and plain mount (cold caches): each side scanned cold, then warm."""
    times: dict[str, float] = {}
    with Stack(folder / "stack", Layout.LINKS_UNCHANGED, library=demo_library()) as stack:
        plain = PlainMount(stack, folder)
        try:
            sides = {"plain": plain.links, "sharded": [link.link for link in stack.links]}
            order = ["plain", "sharded"] if plain_first else ["sharded", "plain"]
            for state in ("cold", "warm"):
                for side in order:
                    times[f"{side} {state}"] = scan(sides[side])
        finally:
            plain.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--write", action="store_true", help="append the result to RESULTS.md")
    options = parser.parse_args()
    started = time.monotonic()
    rounds = []
    for number in range(options.rounds):
        with tempfile.TemporaryDirectory(prefix="shardproxy-scan-") as folder:
            rounds.append(one_round(Path(folder), plain_first=number % 2 == 0))
    files = len(demo_library().ids)
    medians = {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}
    lines = [
        "",
        "## Plex-like scan: sharded stack vs one plain rclone mount",
        "",
        f"Run on {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC with "
        f"`python -m loadtest.scan`, {(time.monotonic() - started) / 60:.1f} minutes, "
        f"{options.rounds} rounds (fresh stacks, so cold means nothing cached; which side "
        "goes first alternates); medians.",
        "",
        "Machine:",
        "",
        *machine(),
        "",
        f"The demo's library: {files} files (64 KiB to 1.5 GiB). A scan stats every link "
        "and reads the first MiB and one MiB near the end of each file. Sharded: shardproxy, "
        f"{ShardMap.even(4).count} shard mounts plus rest, mergerfs, links into the merged "
        "mount. Plain: one `rclone mount` of the stand-in with the same flags.",
        "",
        "| scan | plain rclone (s) | sharded stack (s) | sharded / plain |",
        "|---|---|---|---|",
    ]
    for state in ("cold", "warm"):
        plain, sharded = medians[f"plain {state}"], medians[f"sharded {state}"]
        lines.append(f"| {state} | {plain:.2f} | {sharded:.2f} | {sharded / plain:.2f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if options.write:
        with RESULTS.open("a") as results:
            results.write(text)


if __name__ == "__main__":
    main()
