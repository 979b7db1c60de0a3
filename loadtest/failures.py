"""What a player (Plex) sees through the library when a piece of the stack fails.

Starts the whole stack (``shardproxy.stack``) for a layout, reads some files so they are
cached, then for each failure (a shard's rclone crashed, shardproxy stopped, NzbDav
stopped) times a ``stat`` of a link, a read of a cached file and a read of an uncached
one, and prints what each returned. README's "When something fails" quotes a run.

    .venv/bin/python -m loadtest.failures [--layout links-unchanged|shard-links]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from shardproxy.deploy import Layout
from shardproxy.shards import ShardMap
from shardproxy.stack import LibraryLink, Stack

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layout", default=Layout.LINKS_UNCHANGED.value)
    layout = Layout(parser.parse_args().layout)
    shard_map = ShardMap.even(4)
    with tempfile.TemporaryDirectory(prefix="shardproxy-failures-") as folder:
        with Stack(Path(folder) / "stack", layout) as stack:
            links = stack.links
            for link in links:
                os.stat(link.link)  # a library scan: every listing cached
            of_shard2 = [link for link in links if shard_map.shard_of(link.uuid) == 2]
            others = [link for link in links if shard_map.shard_of(link.uuid) != 2]
            for link in (of_shard2[0], others[0]):
                link.link.read_bytes()
            print(f"layout {layout.value}; {len(links)} files; all listed, two read (cached)")

            stack.kill_mount("shard2")
            probe("shard 2's rclone crashed (its files):", of_shard2[0], of_shard2[1])
            time.sleep(2)
            probe("... two seconds later:", of_shard2[0], of_shard2[-1])
            stack.start_mount("shard2")

            stack.stop_proxy()
            probe("shardproxy stopped:", others[0], others[1])
            stack.start_proxy()

            stack.stop_standin()
            probe("NzbDav stopped (shardproxy up):", others[0], others[2])
            stack.start_standin()


if __name__ == "__main__":
    main()
