"""Listings from servers other than NzbDav: the shortcut reads them as the reference does.

The recorded listings (``tests/fixtures/listings``, by ``loadtest/record_listings.py``
from Apache, lighttpd, nginx, rclone serve webdav, Go's x/net/webdav and wsgidav) take
the shortcut; generated ones in the same spellings give what the reference gives, or are
declined; with one hostile thing put in, the shortcut never writes what the reference
would not.
"""

from __future__ import annotations

import copy

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shardproxy.core.shards import ShardMap
from shardproxy.listing import Filtered, ListingError, ResponsePolicy, filter_listing
from shardproxy.listing.fast import filter_fast
from shardproxy.listing.policy import ShardListingPolicy
from shardproxy.listing.reference import filter_reference
from tests.helpers.foreign import (
    HOSTILE,
    HOSTILE_IN_RESPONSE,
    foreign_listings,
    recorded,
    recordings,
)
from tests.helpers.listings import POLICIES, PROPERTY_SETTINGS

SHARD_ZERO = ShardListingPolicy(ShardMap.even(4), 0)
SHARD_ONE = ShardListingPolicy(ShardMap.even(4), 1)


def reference(policy: ResponsePolicy, body: bytes) -> Filtered | str:
    """The reference filter's result, or its error message."""
    try:
        return filter_reference(copy.deepcopy(policy), body)
    except ListingError as exc:
        return str(exc)


@pytest.mark.parametrize("name", recordings())
def test_recorded_listing_takes_the_shortcut_and_matches_the_reference(name: str) -> None:
    body = recorded(name)
    expected = filter_reference(SHARD_ZERO, body)
    assert filter_fast(SHARD_ZERO, body) == expected
    assert filter_listing(SHARD_ZERO, body) == expected
    assert b"/.ids-s0/0/1/2/3/" in expected.body and expected.dropped == 0


@pytest.mark.parametrize("name", recordings())
def test_recorded_listing_of_another_shard_is_emptied(name: str) -> None:
    body = recorded(name)
    expected = filter_reference(SHARD_ONE, body)
    assert filter_fast(SHARD_ONE, body) == expected
    assert expected.responses_out == 0


@PROPERTY_SETTINGS
@given(body=foreign_listings())
def test_shortcut_takes_foreign_spellings_and_writes_what_the_reference_writes(
    body: bytes,
) -> None:
    assert filter_fast(SHARD_ONE, body) == filter_reference(SHARD_ONE, body)


@PROPERTY_SETTINGS
@given(body=foreign_listings(), data=st.data())
def test_shortcut_agrees_on_foreign_spellings_with_any_policy(
    body: bytes, data: st.DataObject
) -> None:
    policy = data.draw(st.sampled_from([*POLICIES, lambda: SHARD_ONE]))()
    expected = reference(policy, body)
    fast = filter_fast(policy, body)
    assert fast is None or fast == expected


@PROPERTY_SETTINGS
@given(body=foreign_listings(hostile=True))
def test_shortcut_never_misreads_a_foreign_listing_with_a_hostile_part(body: bytes) -> None:
    expected = reference(SHARD_ONE, body)
    fast = filter_fast(SHARD_ONE, body)
    assert fast is None or fast == expected


def one_response(prop: str, *, response: str = "<D:response>") -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?><D:multistatus xmlns:D="DAV:">'
        f"{response}<D:href>/.ids/4/a</D:href><D:propstat><D:prop>{prop}</D:prop>"
        "<D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response></D:multistatus>"
    ).encode()


@pytest.mark.parametrize("bad", HOSTILE)
def test_shortcut_declines_each_hostile_part(bad: str) -> None:
    # Declared on the response as Apache does, so lp1 (DAV:) is in scope.
    apache = '<D:response xmlns:lp1="DAV:" xmlns:lp2="urn:x">'
    assert filter_fast(SHARD_ONE, one_response(bad, response=apache)) is None


@pytest.mark.parametrize("bad", HOSTILE_IN_RESPONSE)
def test_shortcut_declines_each_hostile_part_beside_the_propstat(bad: str) -> None:
    body = one_response("", response='<D:response xmlns:lp1="DAV:">')
    body = body.replace(b"</D:response>", bad.encode() + b"</D:response>")
    assert filter_fast(SHARD_ONE, body) is None


def test_repeated_root_declaration_on_an_inner_element_takes_the_shortcut() -> None:
    body = one_response('<D:resourcetype><D:collection xmlns:D="DAV:"/></D:resourcetype>')
    assert filter_fast(SHARD_ONE, body) == filter_reference(SHARD_ONE, body)


def test_response_declarations_in_scope_in_that_response_take_the_shortcut() -> None:
    body = one_response("<lp1:getetag>x</lp1:getetag>", response='<D:response xmlns:lp1="DAV:">')
    assert filter_fast(SHARD_ONE, body) == filter_reference(SHARD_ONE, body)


def test_responses_with_different_declarations_are_declined() -> None:
    first = one_response("<lp1:a/>", response='<D:response xmlns:lp1="urn:a">')
    second = b'<D:response xmlns:lp1="DAV:"><D:href>/.ids/4/b</D:href><D:propstat><D:prop>'
    second += b"<lp1:href>/.ids/7</lp1:href></D:prop></D:propstat></D:response>"
    body = first.replace(b"</D:multistatus>", second + b"</D:multistatus>")
    assert filter_fast(SHARD_ONE, body) is None
    assert reference(SHARD_ONE, body) != filter_reference(
        SHARD_ONE, body.replace(b"lp1:href", b"lp1:x")
    )


def test_prefixed_attribute_declared_on_the_root_takes_the_shortcut() -> None:
    body = one_response('<D:getlastmodified ns0:dt="d">x</D:getlastmodified>').replace(
        b'xmlns:D="DAV:"', b'xmlns:D="DAV:" xmlns:ns0="urn:x"'
    )
    assert filter_fast(SHARD_ONE, body) == filter_reference(SHARD_ONE, body)


def test_a_response_tag_declaring_a_prefix_twice_is_declined() -> None:
    body = one_response("<lp1:a/>", response='<D:response xmlns:lp1="DAV:" xmlns:lp1="urn:x">')
    assert isinstance(reference(SHARD_ONE, body), str)  # expat: duplicate attribute
    assert filter_fast(SHARD_ONE, body) is None
