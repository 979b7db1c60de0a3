"""CPU per shard-view listing of the listing filter: filter_listing against its peers.

    .venv/bin/python -m loadtest.listing_speed [--rounds N]

Three listings, each filtered as shard 0 of four filters it (every entry kept, every href
rewritten): NzbDav-style (the stand-in's Depth-1 PROPFIND of ``/.ids/0/1/2/3/``: the folder
and its 16 sub-folders, one line, full-URL hrefs), NzbDav-style with 1,500 files (a
fifth-level folder, far more than a real library puts in one), and Apache-style (mod_dav's
pretty-printed replies, namespace declarations on each response; the shortcut declines
those and the reference filter reads them). Peers measured in the same run: expat parsing
the body with no handlers (the floor of any filter that parses), and the reference filter
alone. Figures are CPU time (process time, so other processes on the machine count
less), the best of the rounds, each round timing every filter in turn. Timings only:
nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections.abc import Callable
from xml.parsers import expat

from aiohttp.test_utils import TestClient, TestServer

from nzbdav_standin import Library, make_standin_app
from shardproxy.core.shards import ShardMap
from shardproxy.listing import ShardListingPolicy, filter_listing
from shardproxy.listing.reference import filter_reference

Filtering = Callable[[ShardListingPolicy, bytes], object]


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


def apache_style(folder: str = "/.ids/0/1/2/3/") -> bytes:
    """A listing of folder and its 16 sub-folders as Apache's mod_dav writes one."""

    def response(path: str) -> str:
        return (
            '<D:response xmlns:lp1="DAV:" xmlns:lp2="http://apache.org/dav/props/">\n'
            f"<D:href>{path}</D:href>\n<D:propstat>\n<D:prop>\n"
            "<lp1:resourcetype><D:collection/></lp1:resourcetype>\n"
            "<lp1:creationdate>2024-05-01T10:00:00Z</lp1:creationdate>\n"
            "<lp1:getlastmodified>Wed, 01 May 2024 10:00:00 GMT</lp1:getlastmodified>\n"
            '<lp1:getetag>"1000-5f5c1a2b3c4d5"</lp1:getetag>\n'
            "<D:supportedlock>\n<D:lockentry>\n<D:lockscope><D:exclusive/></D:lockscope>\n"
            "<D:locktype><D:write/></D:locktype>\n</D:lockentry>\n"
            "<D:lockentry>\n<D:lockscope><D:shared/></D:lockscope>\n"
            "<D:locktype><D:write/></D:locktype>\n</D:lockentry>\n</D:supportedlock>\n"
            "<D:lockdiscovery/>\n<D:getcontenttype>httpd/unix-directory</D:getcontenttype>\n"
            "</D:prop>\n<D:status>HTTP/1.1 200 OK</D:status>\n</D:propstat>\n</D:response>\n"
        )

    paths = [folder, *(f"{folder}{c}/" for c in "0123456789abcdef")]
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<D:multistatus xmlns:D="DAV:" xmlns:ns0="DAV:">\n'
        + "".join(map(response, paths))
        + "</D:multistatus>\n"
    ).encode()


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
    listings["Apache-style, 17 folders"] = apache_style()
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
