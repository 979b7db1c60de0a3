"""What a player (Plex) sees through the library when a piece of the stack fails.

Starts the whole stack (``shardproxy.tools.stack_runner``) for a layout, reads some files
so they are cached, then for each failure (a shard's rclone crashed, shardproxy stopped, NzbDav
stopped) times a ``stat`` of a link, a read of a cached file and a read of an uncached
one, and prints what each returned. docs/operations.md, "What Plex sees when something
fails", quotes a run.

    .venv/bin/python -m loadtest.failures [--layout links-unchanged|shard-links]
        [--no-virtual-levels]

``--no-virtual-levels`` has the proxy ask NzbDav for its virtual ``.ids`` folders too,
as it did before it answered them itself: the peer for the "NzbDav stopped" figures.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from shardproxy.core.shards import ShardMap
from shardproxy.tools.deploy.model import Layout
from shardproxy.tools.stack_runner import LibraryLink, Stack

LIMIT = 300.0  # seconds a single probe may take before it is reported as hanging


def timed(action: Callable[[], object]) -> str:
    """``ok 0.01 s`` or ``Errno 5 (Input/output error) after 2.3 s`` or ``hangs``."""
    outcome: list[str] = []
    started = time.monotonic()

    def run() -> None:
        try:
            action()
            outcome.append("ok")
        except OSError as error:
            outcome.append(f"errno {error.errno} ({os.strerror(error.errno or 0)})")

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(LIMIT)
    seconds = time.monotonic() - started
    return f"{outcome[0]} after {seconds:.1f} s" if outcome else f"still hanging after {LIMIT} s"


def probe(title: str, cached: LibraryLink, uncached: LibraryLink) -> None:
    print(f"\n{title}")
    print(f"  stat of a link           {timed(lambda: os.stat(uncached.link))}")
    print(f"  read of a cached file    {timed(cached.link.read_bytes)}")
    print(f"  read of an uncached file {timed(uncached.link.read_bytes)}")


def by_shard(links: list[LibraryLink]) -> dict[int, list[LibraryLink]]:
    shard_map = ShardMap.even(4)
    found: dict[int, list[LibraryLink]] = {n: [] for n in range(4)}
    for link in links:
        found[shard_map.shard_of(link.uuid)].append(link)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layout", default=Layout.LINKS_UNCHANGED.value)
    parser.add_argument("--no-virtual-levels", action="store_true")
    args = parser.parse_args()
    layout = Layout(args.layout)
    overrides = {"virtual_levels": not args.no_virtual_levels}
    with tempfile.TemporaryDirectory(prefix="shardproxy-failures-") as folder:
        with Stack(Path(folder) / "stack", layout, settings_overrides=overrides) as stack:
            for link in stack.links:
                os.stat(link.link)  # a library scan: every listing cached
            shards = by_shard(stack.links)
            cached = [shards[0][0], shards[1][0], shards[2][0], shards[3][0]]
            for link in cached:
                link.link.read_bytes()
            print(
                f"layout {layout.value}; {len(stack.links)} files, all listed, one per shard "
                f"read; virtual_levels {'off' if args.no_virtual_levels else 'on'}"
            )

            playing = cached[2].link.open("rb")
            playing.read(1024)
            stack.kill_mount("shard2")
            print("\nshard 2's rclone crashed while one of its files was playing:")
            print(f"  the next read of that open file {timed(lambda: playing.read(65536))}")
            with contextlib.suppress(OSError):
                playing.close()
            probe("right after the crash (shard 2's files):", cached[2], shards[2][1])
            time.sleep(2)
            probe("two seconds later:", cached[2], shards[2][2])
            stack.start_mount("shard2")

            stack.stop_proxy()
            probe("shardproxy stopped:", cached[0], shards[0][1])
            stack.start_proxy()

            stack.stop_standin()
            probe("NzbDav stopped (shardproxy up):", cached[3], shards[3][1])
            stack.start_standin()


if __name__ == "__main__":
    main()
