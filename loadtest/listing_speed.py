"""CPU per shard-view listing of the listing filter: filter_listing against its peers.

    .venv/bin/python -m loadtest.listing_speed [--rounds N]

Listings, each filtered as shard 0 of four filters it (every entry kept, every href
rewritten): NzbDav-style (the stand-in's Depth-1 PROPFIND of ``/.ids/0/1/2/3/``: the folder
and its 16 sub-folders, one line, full-URL hrefs), NzbDav-style with 1,500 files (a
fifth-level folder, far more than a real library puts in one), and the listings recorded
from six real servers (``tests/fixtures/listings``, see ``loadtest/record_listings.py``):
Apache, lighttpd, nginx, rclone serve webdav, Go's x/net/webdav and wsgidav, each of a
folder of 16 sub-folders and of a folder of 1,500 files. Peers measured in the same run:
expat parsing the body with no handlers (the floor of any filter that parses), and the
reference filter alone. Figures are CPU time (process time, so other processes on the
machine count less), the best of the rounds, each round timing every filter in turn.
Timings only: nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from xml.parsers import expat

from aiohttp.test_utils import TestClient, TestServer

from loadtest.dav_servers import SERVERS
from nzbdav_standin import Library, make_standin_app
from shardproxy.core.shards import ShardMap
from shardproxy.listing import ShardListingPolicy, filter_listing
from shardproxy.listing.reference import filter_reference

Filtering = Callable[[ShardListingPolicy, bytes], object]
FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "listings"


async def nzbdav_listings() -> dict[str, bytes]:
    """The stand-in's Depth-1 listings of a hex folder and of a folder of 1,500 files."""
    library = Library()
    for n in range(1500):
        file_id = uuid.UUID(int=(0x01234 << 108) | n)
        library.add(f"/.ids/0/1/2/3/4/{file_id}", 1_000_000 + n, uuid=file_id)
    app = make_standin_app(library, user=None, password=None)
    listings = {}
    async with TestClient(TestServer(app)) as client:
        for name, folder in (
            ("NzbDav-style, 17 folders", "/.ids/0/1/2/3/"),
            ("NzbDav-style, 1,500 files", "/.ids/0/1/2/3/4/"),
        ):
            reply = await client.request("PROPFIND", folder, headers={"Depth": "1"})
            assert reply.status == 207, reply.status
            listings[name] = await reply.read()
    return listings


def recorded_listings() -> dict[str, bytes]:
    """The recorded listings of the six servers: 16 sub-folders, and 1,500 files."""
    found = {}
    for server in SERVERS:
        for name, label in (
            (f"{server}-folders.xml", "17 folders"),
            (f"{server}-files-1500.xml.gz", "1,500 files"),
        ):
            path = FIXTURES / name
            if path.exists():
                data = path.read_bytes()
                found[f"{server}, {label}"] = (
                    gzip.decompress(data) if name.endswith(".gz") else data
                )
    return found


def expat_alone(_policy: ShardListingPolicy, body: bytes) -> None:
    """Parse body with no handlers: what any parsing filter pays at least."""
    expat.ParserCreate(namespace_separator=" ").Parse(body, True)


FILTERS: dict[str, Filtering] = {
    "expat alone": expat_alone,
    "reference": filter_reference,
    "filter_listing": filter_listing,
}


def best_times(body: bytes, rounds: int) -> dict[str, float]:
    """Best round's CPU µs per listing for each filter, the filters taking turns."""
    policy = ShardListingPolicy(ShardMap.even(4), 0)
    count = max(1, 4000 // (len(body) // 256 + 1))
    best = dict.fromkeys(FILTERS, float("inf"))
    for _round in range(rounds):
        for name, filter_body in FILTERS.items():
            start = time.process_time()
            for _ in range(count):
                filter_body(policy, body)
            best[name] = min(best[name], (time.process_time() - start) / count * 1e6)
    return best


def main() -> None:
    """Print µs per listing and the ratios for each listing."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10, help="rounds per figure (best counts)")
    options = parser.parse_args()
    listings = asyncio.run(nzbdav_listings())
    listings.update(recorded_listings())
    policy = ShardListingPolicy(ShardMap.even(4), 0)
    for name, body in listings.items():
        assert filter_listing(policy, body) == filter_reference(policy, body)
        best = best_times(body, options.rounds)
        floor, reference, listing = best["expat alone"], best["reference"], best["filter_listing"]
        print(
            f"{name} ({len(body)} bytes): expat alone {floor:.1f} µs, reference "
            f"{reference:.1f} µs, filter_listing {listing:.1f} µs "
            f"({listing / reference:.2f}x the reference, {listing / floor:.2f}x expat alone)"
        )


if __name__ == "__main__":
    main()
