"""CPU per PROPFIND listing of the multistatus filter: the fast path against _ExpatFilter.

    .venv/bin/python -m loadtest.multistatus_speed [--rounds N]

The listings come from the NzbDav stand-in, run in-process: a Depth-1 PROPFIND of
``/.ids/0/1/2/3/`` (the folder itself and its 16 sub-folders, one line, full-URL hrefs),
filtered as the bench's ``/.ids-s0/0/1/2/3/`` is (``--shards 4``, shard 0: every entry
kept, every href rewritten): by the streaming filters fed the body as one chunk, and by
filter_multistatus, which the proxy uses for a listing that fits one read buffer. Two
request bodies: allprop (what rclone 1.60.1 sends; the fast path) and one asking for
getetag too (NzbDav answers each entry with a 404 propstat first, which the filter
reorders through _ExpatFilter). Figures are the best round's
mean over many listings, garbage collection on, as in a server. Timings only: nothing
here asserts a speed.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import time
from collections.abc import Callable

from aiohttp.test_utils import TestClient, TestServer

from nzbdav_standin import Library, make_standin_app
from shardproxy.multistatus import MultistatusFilter, _ExpatFilter, filter_multistatus
from shardproxy.shards import ShardListingPolicy, ShardMap

FOLDER = "/.ids/0/1/2/3/"
Filtering = Callable[[ShardListingPolicy, bytes], bytes]
ALLPROP = b""
WITH_GETETAG = (
    b'<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:"><D:prop>'
    b"<D:displayname/><D:getlastmodified/><D:getcontentlength/><D:resourcetype/>"
    b"<D:getetag/></D:prop></D:propfind>"
)


async def fetch_listings() -> dict[str, bytes]:
    """The stand-in's replies to a Depth-1 PROPFIND of FOLDER, by request body."""
    app = make_standin_app(Library(), user=None, password=None)
    async with TestClient(TestServer(app)) as client:
        listings = {}
        for name, body in (("allprop", ALLPROP), ("getetag, 404 first", WITH_GETETAG)):
            reply = await client.request("PROPFIND", FOLDER, headers={"Depth": "1"}, data=body)
            assert reply.status == 207, reply.status
            listings[name] = await reply.read()
        return listings


def streaming(filter_class: Callable[..., MultistatusFilter | _ExpatFilter]) -> Filtering:
    """Filter a body as one chunk with a new filter_class, as the proxy streams listings."""

    def filter_body(policy: ShardListingPolicy, body: bytes) -> bytes:
        listing = filter_class(policy)
        return listing.feed(body) + listing.close()

    return filter_body


def per_listing(filter_body: Filtering, body: bytes, rounds: int) -> float:
    """Best round's mean µs to filter body once, construction included."""
    policy = ShardListingPolicy(ShardMap.even(4), 0)
    count = max(1, 20_000 // (len(body) // 256 + 1))
    best = float("inf")
    gc.enable()
    filter_body(policy, body)  # what the process learns from a first listing
    for _round in range(rounds):
        start = time.perf_counter()
        for _ in range(count):
            filter_body(policy, body)
        best = min(best, (time.perf_counter() - start) / count)
    return best * 1e6


def main() -> None:
    """Print µs per listing for each listing and filter."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="rounds per figure (best counts)")
    options = parser.parse_args()
    listings = asyncio.run(fetch_listings())
    for name, body in listings.items():
        responses = body.count(b"<D:response>")
        slow = per_listing(streaming(_ExpatFilter), body, options.rounds)
        fast = per_listing(streaming(MultistatusFilter), body, options.rounds)
        whole = per_listing(filter_multistatus, body, options.rounds)
        print(
            f"{name}: {responses} responses, {len(body)} bytes: "
            f"_ExpatFilter {slow:.1f} µs, MultistatusFilter {fast:.1f} µs "
            f"({slow / fast:.1f}x, {fast / responses:.2f} µs per response), "
            f"filter_multistatus {whole:.1f} µs"
        )


if __name__ == "__main__":
    main()
