"""Record Depth-1 listings from the six real WebDAV servers, as test fixtures.

    .venv/bin/python -m loadtest.record_listings [--servers apache lighttpd ...]

Each server (``loadtest.dav_servers``) serves the same tree; three listings of each are
written to ``tests/fixtures/listings/``: ``<server>-folders.xml`` (``/.ids/0/1/2/3/``, the
folder and its 16 sub-folders), ``<server>-files.xml`` (``/.ids/0/1/2/3/4/`` holding 3
files) and ``<server>-files-1500.xml.gz`` (the same folder holding 1,500 files, gzipped:
the benchmark's input). The bodies are kept byte for byte as the servers sent them; a
server that is not installed is skipped with what to install.
"""

from __future__ import annotations

import argparse
import gzip
import tempfile
import urllib.request
from pathlib import Path

from loadtest.dav_servers import FILES, FOLDERS, SERVERS, Missing, make_tree, serve

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "listings"
BIG = 1500


def propfind(url: str) -> bytes:
    """The body of a Depth-1 allprop PROPFIND (empty body, as rclone 1.60 sends)."""
    request = urllib.request.Request(url, method="PROPFIND", headers={"Depth": "1"})
    with urllib.request.urlopen(request, timeout=60) as reply:
        if reply.status != 207:
            raise RuntimeError(f"PROPFIND {url}: {reply.status}")
        body: bytes = reply.read()
        return body


def record(server: str, small: Path, big: Path, scratch: Path) -> None:
    """Write the three listings of ``server``."""
    with serve(server, small, scratch / "small") as url:
        (FIXTURES / f"{server}-folders.xml").write_bytes(propfind(url + FOLDERS))
        (FIXTURES / f"{server}-files.xml").write_bytes(propfind(url + FILES))
    with serve(server, big, scratch / "big") as url:
        body = propfind(url + FILES)
        (FIXTURES / f"{server}-files-{BIG}.xml.gz").write_bytes(gzip.compress(body, mtime=0))


def main() -> None:
    """Record every server asked for (all six by default)."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--servers", nargs="+", choices=SERVERS, default=list(SERVERS))
    options = parser.parse_args()
    FIXTURES.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="shardproxy-record-") as folder:
        scratch = Path(folder)
        scratch.chmod(0o755)  # Apache's workers run as www-data and must read the trees
        small, big = scratch / "small-tree", scratch / "big-tree"
        make_tree(small, 3)
        make_tree(big, BIG)
        for server in options.servers:
            try:
                record(server, small, big, scratch / server)
                print(f"{server}: recorded")
            except Missing as missing:
                print(f"{server}: not recorded: {missing}")


if __name__ == "__main__":
    main()
