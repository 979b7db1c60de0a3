"""`shardproxy demo --mount DIR`: the whole system on this machine, until Ctrl-C.

An NzbDav stand-in with sample files and a few large films (test equipment from the
separate ``nzbdav_standin`` package, imported only here), shardproxy, one `rclone mount`
per shard plus `rest`, mergerfs, and a Plex-style library of symlinks, all started from
the files `shardproxy gen` writes. Everything lives in DIR and is removed on exit.
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from shardproxy.tools.deploy.model import Layout
from shardproxy.tools.stack_runner import (
    OWN_FOLDERS,
    PASSWORD,
    PID_FILE,
    RC_PASS,
    RC_USER,
    USER,
    Stack,
)

MIB = 1024 * 1024
# One large film per shard (first hex characters 0, 4, 8, c), so every cache fills.
FILMS = (
    ("Big Buck Bunny (2008)", "0b0e1f3a-6c52-4d2e-9a57-2f1a8f7f2b01", 1024),
    ("Sintel (2010)", "4c1d2e3f-7a8b-4c9d-8e0f-1a2b3c4d5e02", 768),
    ("Tears of Steel (2012)", "8d2e3f4a-8b9c-4dae-9f10-2b3c4d5e6f03", 1536),
    ("Elephants Dream (2006)", "ce3f4a5b-9cad-4ebf-a011-3c4d5e6f7a04", 512),
)
OWN = (*OWN_FOLDERS, PID_FILE)


def demo_library() -> Any:
    """The sample library plus the large films (content is generated as it is read)."""
    from nzbdav_standin import Library

    library = Library.sample(n_ids=24, seed=2024)
    for title, uuid, mib in FILMS:
        name = title.replace(" ", ".").replace("(", "").replace(")", "")
        library.add(f"/content/movies/{title}/{name}.2160p.mkv", mib * MIB, uuid=uuid)
    return library


def check_mount_dir(root: Path) -> None:
    """Refuse a folder holding anything but a previous demo's leftovers."""
    if root.exists() and any(entry.name not in OWN for entry in root.iterdir()):
        raise SystemExit(
            f"shardproxy demo: {root} is not empty; give a new or empty folder, "
            "which the demo removes again when it stops"
        )


def du(path: Path) -> int:
    """Bytes a folder's files take on disk (rclone's cache files are sparse)."""
    return sum(p.stat().st_blocks * 512 for p in path.rglob("*") if p.is_file())


def show(stack: Stack) -> None:
    """Read through one symlink and print where everything is."""
    film = next(link for link in stack.links if link.uuid == FILMS[2][1])
    print(f"\nReading 64 MiB of {film.link.name} through its symlink ...")
    with film.link.open("rb") as stream:
        for _ in range(64):
            stream.read(MIB)
    print(f"  {film.link}\n    -> {film.target}")
    print("\nCache use per disk (each shard caches only its own files; rest caches none):")
    for mount in (*(f"shard{n}" for n in range(stack.shards)), "rest"):
        print(f"  {mount:7} {du(stack.cache_dir(mount)) / MIB:8.1f} MiB  {stack.cache_dir(mount)}")
    merged = stack.deployment.merged
    print(
        f"""
Where to look:
  library (what Plex scans)   {stack.library_dir}
  mergerfs (what links reach) {merged}
  shard mounts                {stack.root / "mnt" / "shards"}
  generated files             {stack.etc}   (the units these processes run)
  logs                        {stack.logs}
  NzbDav stand-in             {stack.standin_url}  (user {USER}, password {PASSWORD})
  shardproxy                  http://127.0.0.1:{stack.proxy_port}
  its RC endpoint             http://127.0.0.1:{stack.rc_port}  (user {RC_USER}, password {RC_PASS})
  its status page             http://127.0.0.1:{stack.admin_port}/

Try:
  ls -lR {stack.library_dir / "movies"} | head -20
  dd if="{film.link}" of=/dev/null bs=1M count=512 status=progress
  watch du -sh {stack.root / "cache"}/*
  kill the rclone of shard 2 (pid {stack.processes["shard2"].pid}) and play a film of
  shard 2 again: it is read through `rest`, uncached, shardproxy's log says so and the
  status page shows shard 2 as serving through fallback."""
    )


def run_demo(*, mount: str, layout: str, shards: int, once: bool) -> int:
    """Entry point of `shardproxy demo`."""
    root = Path(mount).absolute()
    check_mount_dir(root)
    # A folder holding only a crashed demo's leftovers was made by a demo: remove it too.
    ours = not root.exists() or any(root.iterdir())

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    stack = Stack(root, Layout(layout), shards=shards, library=demo_library())
    print(f"Starting the whole stack in {root} ({layout}, {shards} shards) ...", flush=True)
    try:
        with stack:
            print(f"  {len(stack.links)} links in the library; {shards} shards, rest, mergerfs")
            show(stack)
            if not once:
                print("\nRunning until Ctrl-C.", flush=True)
                threading.Event().wait()
    except KeyboardInterrupt:
        pass
    except RuntimeError as exc:
        print(f"shardproxy demo: {exc}", file=sys.stderr)
        return 1
    leftovers = [name for name in OWN if (root / name).exists()]
    if leftovers:
        print(f"shardproxy demo: could not remove {leftovers} from {root}", file=sys.stderr)
        return 1
    if ours and root.exists() and not any(root.iterdir()):
        root.rmdir()
    print("\nStopped: everything unmounted, the demo's folders removed.")
    return 0
