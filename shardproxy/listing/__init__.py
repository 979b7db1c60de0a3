"""WebDAV listings (PROPFIND multistatus bodies) as shard views show them.

``filter_listing`` is the one entry point: a whole body in, the filtered body and its
counts out, or ListingError. ``reference`` is the specification (expat sees every
element); ``fast`` is a shortcut for NzbDav's listings, property-tested against it, and
``folder`` a quicker one still for a shard folder's listing, tested the same way;
``href`` parses and encodes hrefs; ``policy`` says which entries a view keeps.
"""

from __future__ import annotations

from shardproxy.listing.errors import Filtered, ListingError
from shardproxy.listing.fast import filter_fast
from shardproxy.listing.folder import filter_folder
from shardproxy.listing.policy import ResponsePolicy, RootListingPolicy, ShardListingPolicy
from shardproxy.listing.reference import filter_reference

__all__ = [
    "Filtered",
    "ListingError",
    "ResponsePolicy",
    "RootListingPolicy",
    "ShardListingPolicy",
    "filter_listing",
]


def filter_listing(
    policy: ResponsePolicy, body: bytes, *, base_path: str | None = None
) -> Filtered:
    """The listing ``body`` as ``policy`` shows it, with counts; ListingError if malformed.

    ``base_path`` (the percent-encoded path asked of the backend) resolves relative hrefs.
    """
    if isinstance(policy, ShardListingPolicy):
        folder = filter_folder(policy, body, base_path=base_path)
        if folder is not None:
            return folder
    return filter_fast(policy, body, base_path=base_path) or filter_reference(
        policy, body, base_path=base_path
    )
