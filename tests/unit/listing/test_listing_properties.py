"""Properties of the listing filter on generated listings; the shortcut against the reference.

``filter_fast`` must give exactly what ``filter_reference`` gives (bytes and counts), or
decline (None); it must decline every body the reference refuses.
"""

from __future__ import annotations

import copy
import xml.etree.ElementTree as ET

from hypothesis import given
from hypothesis import strategies as st

from shardproxy.core.shards import ShardMap
from shardproxy.listing import Filtered, ListingError, ResponsePolicy, filter_listing
from shardproxy.listing.fast import filter_fast
from shardproxy.listing.policy import ShardListingPolicy
from shardproxy.listing.reference import filter_reference
from tests.helpers.listings import (
    DAV,
    POLICIES,
    PROPERTY_SETTINGS,
    Identity,
    Listing,
    RootListing,
    ShardOne,
    broken,
    decoded_path,
    listings,
    nzbdav_listings,
    shard_one_paths,
    unusual,
    written_hrefs,
)

SHARD_ONE = ShardListingPolicy(ShardMap.even(4), 1)


def reference(policy: ResponsePolicy, body: bytes, base_path: str | None) -> Filtered | str:
    """The reference filter's result, or its error message."""
    try:
        return filter_reference(copy.deepcopy(policy), body, base_path=base_path)
    except ListingError as exc:
        return str(exc)


def assert_fast_agrees(policy: ResponsePolicy, body: bytes, base_path: str | None) -> bool:
    """filter_fast gives what the reference gives, or declines; True if it took the body."""
    expected = reference(policy, body, base_path)
    fast = filter_fast(policy, body, base_path=base_path)
    if fast is not None:
        assert fast == expected
    return fast is not None


@PROPERTY_SETTINGS
@given(listing=listings())
def test_output_is_well_formed(listing: Listing) -> None:
    ET.fromstring(filter_listing(ShardOne(), listing.data, base_path=listing.base_path).body)


@PROPERTY_SETTINGS
@given(listing=listings())
def test_output_holds_exactly_the_kept_responses_with_mapped_hrefs(listing: Listing) -> None:
    out = filter_listing(ShardOne(), listing.data, base_path=listing.base_path).body
    decoded = [decoded_path(href, listing.base_path) for href in written_hrefs(out)]
    assert decoded == shard_one_paths(listing)


@PROPERTY_SETTINGS
@given(listing=listings())
def test_rewritten_hrefs_change_only_the_leading_part(listing: Listing) -> None:
    out = filter_listing(ShardOne(), listing.data, base_path=listing.base_path).body
    kept = [e for e in listing.entries if ShardOne().client_paths(e.path)]
    expected = [listing.host + "/.ids-s1" + e.raw.removeprefix("/.ids") for e in kept]
    assert written_hrefs(out) == expected


@PROPERTY_SETTINGS
@given(listing=listings())
def test_clones_carry_their_own_href_and_displayname(listing: Listing) -> None:
    policy = RootListing()
    out = filter_listing(policy, listing.data, base_path=listing.base_path).body
    expected = [(p, e) for e in listing.entries for p in policy.client_paths(e.path)]
    responses = ET.fromstring(out).findall(f"{DAV}response")
    hrefs = [decoded_path(r.findtext(f"{DAV}href") or "", listing.base_path) for r in responses]
    assert hrefs == [path for path, _entry in expected]
    for response, (path, entry) in zip(responses, expected, strict=True):
        displayname = response.findtext(f"{DAV}propstat/{DAV}prop/{DAV}displayname")
        if entry.layout in ("status", "404-only"):
            assert displayname is None
        elif entry.path == "/.ids":
            assert displayname == path[1:]
        else:
            assert displayname == entry.path.rstrip("/").rpartition("/")[2]


@PROPERTY_SETTINGS
@given(listing=listings())
def test_first_propstat_of_each_kept_response_is_2xx_when_it_has_one(listing: Listing) -> None:
    out = filter_listing(ShardOne(), listing.data, base_path=listing.base_path).body
    for response in ET.fromstring(out).iter(f"{DAV}response"):
        statuses = [
            (propstat.findtext(f"{DAV}status") or "").split()[1]
            for propstat in response.findall(f"{DAV}propstat")
        ]
        if "200" in statuses:
            assert statuses[0] == "200"


@PROPERTY_SETTINGS
@given(listing=listings(allow_404_first=False))
def test_identity_policy_without_404_first_changes_nothing(listing: Listing) -> None:
    filtered = filter_listing(Identity(), listing.data, base_path=listing.base_path)
    assert filtered.body == listing.data


# -- the shortcut against the reference ------------------------------------------------


@PROPERTY_SETTINGS
@given(body=nzbdav_listings(tidy=True))
def test_shortcut_takes_what_nzbdav_writes_and_writes_what_the_reference_writes(
    body: bytes,
) -> None:
    # Without this the agreement tests below would pass with a shortcut that declines all.
    assert assert_fast_agrees(SHARD_ONE, body, None)


@PROPERTY_SETTINGS
@given(body=nzbdav_listings())
def test_shortcut_agrees_on_nzbdav_listings(body: bytes) -> None:
    assert_fast_agrees(SHARD_ONE, body, None)


@PROPERTY_SETTINGS
@given(listing=listings(), data=st.data())
def test_shortcut_agrees_on_generated_listings(listing: Listing, data: st.DataObject) -> None:
    policy = data.draw(st.sampled_from([*POLICIES, lambda: SHARD_ONE]))()
    assert_fast_agrees(policy, listing.data, listing.base_path)


@PROPERTY_SETTINGS
@given(listing=listings(), data=st.data())
def test_shortcut_agrees_on_unusual_listings(listing: Listing, data: st.DataObject) -> None:
    body = data.draw(unusual(listing))
    policy = data.draw(st.sampled_from([*POLICIES, lambda: SHARD_ONE]))()
    assert_fast_agrees(policy, body, listing.base_path)


@PROPERTY_SETTINGS
@given(data=st.data())
def test_shortcut_declines_what_the_reference_refuses(data: st.DataObject) -> None:
    source = data.draw(st.sampled_from(["nzbdav", "generated"]))
    if source == "nzbdav":
        body, base_path = data.draw(nzbdav_listings()), None
    else:
        listing = data.draw(listings())
        body, base_path = data.draw(unusual(listing)), listing.base_path
    body = data.draw(broken(body))
    policy = data.draw(st.sampled_from([*POLICIES, lambda: SHARD_ONE]))()
    assert_fast_agrees(policy, body, base_path)
