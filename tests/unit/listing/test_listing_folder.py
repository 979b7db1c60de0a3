"""The bulk rewrite of a shard folder's listing (``listing.folder``) against the reference.

``filter_folder`` must give exactly what ``filter_reference`` gives (bytes and counts), or
decline (None); it must decline every body the reference refuses, and take the listings
NzbDav writes of a folder of sub-folders.
"""

from __future__ import annotations

import copy

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shardproxy.core.shards import ShardMap
from shardproxy.listing import Filtered, ListingError, filter_listing
from shardproxy.listing.folder import filter_folder
from shardproxy.listing.policy import ShardListingPolicy
from shardproxy.listing.reference import filter_reference
from tests.helpers.listings import (
    PROPERTY_SETTINGS,
    Listing,
    broken,
    listings,
    nzbdav_listings,
    unusual,
)

SHARD_ONE = ShardListingPolicy(ShardMap.even(4), 1)
HEX = "0123456789abcdef"


def folder_agrees(policy: ShardListingPolicy, body: bytes, base_path: str | None = None) -> bool:
    """filter_folder gives what the reference gives, or declines; True if it took the body."""
    try:
        expected: Filtered | str = filter_reference(
            copy.deepcopy(policy), body, base_path=base_path
        )
    except ListingError as exc:
        expected = str(exc)
    taken = filter_folder(policy, body, base_path=base_path)
    if taken is not None:
        assert taken == expected
    return taken is not None


def nzbdav_folder(folder: str, names: list[str], *, host: str = "http://127.0.0.1:8080") -> bytes:
    """NzbDav's allprop listing of ``folder`` and its sub-folders, as it writes it."""

    def response(href: str, name: str) -> str:
        return (
            f"<D:response><D:href>{href}</D:href><D:propstat><D:prop>"
            f"<D:displayname>{name}</D:displayname>"
            "<D:resourcetype><D:collection /></D:resourcetype>"
            "<D:getlastmodified>Mon, 01 Jan 0001 00:00:00 GMT</D:getlastmodified>"
            "<Z:Win32FileAttributes>00000010</Z:Win32FileAttributes>"
            "<D:getcontentlength>0</D:getcontentlength><D:iscollection>1</D:iscollection>"
            "</D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response>"
        )

    own = response(host + folder + "/", folder.rpartition("/")[2])
    entries = "".join(response(f"{host}{folder}/{name}", name) for name in names)
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<D:multistatus xmlns:D="DAV:" xmlns:Z="urn:schemas-microsoft-com:">'
        f"{own}{entries}</D:multistatus>"
    ).encode()


def test_a_folder_of_sixteen_sub_folders_is_rewritten_by_its_url() -> None:
    body = nzbdav_folder("/.ids/4/a/b/c", list(HEX))
    taken = filter_folder(SHARD_ONE, body)
    assert taken is not None
    assert taken.body == body.replace(b"/.ids/4/", b"/.ids-s1/4/")
    assert (taken.responses_in, taken.responses_out, taken.bad_hrefs) == (17, 17, 0)
    assert filter_listing(SHARD_ONE, body) == taken


def test_the_folder_href_without_its_slash_is_rewritten_too() -> None:
    body = nzbdav_folder("/.ids/5/0", ["1", "2"]).replace(b"/.ids/5/0/</", b"/.ids/5/0</")
    assert b"<D:href>http://127.0.0.1:8080/.ids/5/0</D:href>" in body
    taken = filter_folder(SHARD_ONE, body)
    assert taken is not None
    assert b"<D:href>http://127.0.0.1:8080/.ids-s1/5/0</D:href>" in taken.body
    assert folder_agrees(SHARD_ONE, body)


def test_uuid_names_are_plain() -> None:
    names = ["4c3a6f60-1d1e-4a3b-9f1e-0123456789ab", "4c3a6f61-0000-4000-8000-000000000000"]
    assert folder_agrees(SHARD_ONE, nzbdav_folder("/.ids/4/c/3/a/6", names))


def test_declines_what_it_cannot_rewrite_by_one_prefix() -> None:
    # /.ids itself: the view keeps only the shard's levels.
    assert filter_folder(SHARD_ONE, nzbdav_folder("/.ids", list(HEX))) is None
    # Another shard's folder: nothing of it is shown.
    assert filter_folder(SHARD_ONE, nzbdav_folder("/.ids/0/1", list(HEX))) is None
    # An entry with other tags than the first (no iscollection).
    body = nzbdav_folder("/.ids/4/1", ["a", "b"])
    at = body.rindex(b"<D:iscollection>")
    other = body[:at] + body[body.index(b"</D:prop>", at) :]
    assert filter_folder(SHARD_ONE, other) is None
    assert filter_listing(SHARD_ONE, other) == filter_reference(SHARD_ONE, other)
    # A name to escape or decode, and an entry of another folder.
    assert filter_folder(SHARD_ONE, nzbdav_folder("/.ids/4/1", ["a", "b%20c"])) is None
    odd = nzbdav_folder("/.ids/4/1", ["a", "b"]).replace(b"/.ids/4/1/b<", b"/.ids/4/2/b<")
    assert filter_folder(SHARD_ONE, odd) is None


def nzbdav_files(folder: str, files: list[tuple[str, int, str]]) -> bytes:
    """NzbDav's allprop listing of a fifth-level folder: the folder, then its files."""
    listing = nzbdav_folder(folder, [])
    entries = "".join(
        f"<D:response><D:href>http://127.0.0.1:8080{folder}/{name}</D:href><D:propstat><D:prop>"
        f"<D:displayname>{name}</D:displayname><D:getcontentlength>{size}</D:getcontentlength>"
        "<D:getcontenttype>application/octet-stream</D:getcontenttype>"
        f"<D:getlastmodified>{modified}</D:getlastmodified>"
        "<Z:Win32FileAttributes>00000080</Z:Win32FileAttributes>"
        "<D:resourcetype><D:item /></D:resourcetype><D:iscollection>0</D:iscollection>"
        "</D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response>"
        for name, size, modified in files
    )
    return listing.replace(b"</D:multistatus>", entries.encode() + b"</D:multistatus>")


FILES = [
    ("4c3a6f60-1d1e-4a3b-9f1e-0123456789ab", 1234567890, "Sat, 01 Mar 2025 12:00:00 GMT"),
    ("4c3a6f61-0000-4000-8000-000000000000", 42, "Sun, 02 Mar 2025 08:30:00 GMT"),
    ("4c3a6f62-0000-4000-8000-000000000000", 0, "Mon, 03 Mar 2025 23:59:59 GMT"),
]


def test_files_differing_in_size_and_date_are_rewritten_by_the_folder_url() -> None:
    body = nzbdav_files("/.ids/4/c/3/a/6", FILES)
    taken = filter_folder(SHARD_ONE, body)
    assert taken is not None
    assert taken.body == body.replace(b"/.ids/4/", b"/.ids-s1/4/")
    assert (taken.responses_in, taken.responses_out) == (4, 4)
    assert folder_agrees(SHARD_ONE, body)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b">42<", b">4&bad;2<"),  # a reference XML refuses, in one file's text only
        (b">42<", b">4\x012<"),
        (b">42<", b">42</D:getcontentlength><D:x><"),  # another tag
        (b"000000000000</D:href>", b"000000000000/x</D:href>"),  # a name with a "/"
    ],
)
def test_declines_files_that_differ_in_more_than_text(old: bytes, new: bytes) -> None:
    body = nzbdav_files("/.ids/4/c/3/a/6", FILES)
    assert old in body
    changed = body.replace(old, new, 1)
    assert filter_folder(SHARD_ONE, changed) is None
    assert folder_agrees(SHARD_ONE, changed) is False


def test_declines_a_folder_whose_first_entry_is_kept_and_others_are_not() -> None:
    # /.ids lists every level; shard 1 keeps 4-7 only, so no one prefix fits them all.
    body = nzbdav_folder("/.ids", ["4", "5", "0", "c"])
    # (A plain displayname for /.ids itself, so that only the policy can say no.)
    body = body.replace(b"<D:displayname>.ids<", b"<D:displayname>ids<")
    assert filter_folder(SHARD_ONE, body) is None
    assert filter_listing(SHARD_ONE, body).responses_out == 3


SIXTEEN = nzbdav_folder("/.ids/4/a", list(HEX))


@pytest.mark.parametrize(
    "broken_body",
    [
        # A reference XML refuses in text every entry shares.
        SIXTEEN.replace(b"Mon, 01", b"&bad; 01"),
        SIXTEEN.replace(b"00000010", b"0000\x010"),
        # In the folder's own displayname only.
        SIXTEEN.replace(b"<D:displayname>a<", b"<D:displayname>&bad;<", 1),
        # Before the first response, after the last.
        SIXTEEN.replace(b"<D:response>", b"<x><D:response>", 1),
        SIXTEEN.replace(b"<D:response>", b"\x01<D:response>", 1),
        SIXTEEN.replace(b"</D:multistatus>", b"</D:multistatusx>"),
    ],
    ids=["entity", "control", "own-name", "open-tag", "lead-control", "root-end"],
)
def test_declines_what_the_reference_refuses_in_the_parts_it_does_not_compare(
    broken_body: bytes,
) -> None:
    assert broken_body != SIXTEEN
    with pytest.raises(ListingError):
        filter_reference(SHARD_ONE, broken_body)
    assert filter_folder(SHARD_ONE, broken_body) is None


def test_declines_a_body_broken_in_an_entry_it_does_not_parse() -> None:
    body = nzbdav_folder("/.ids/4/a", list(HEX))
    # The last entry loses an end tag: only a whole comparison with the first notices.
    end_tags = b"</D:iscollection></D:prop>"
    at = body.rindex(end_tags)
    cut = body[:at] + b"</D:prop>" + body[at + len(end_tags) :]
    assert filter_folder(SHARD_ONE, cut) is None
    assert folder_agrees(SHARD_ONE, cut) is False


@PROPERTY_SETTINGS
@given(
    levels=st.lists(st.sampled_from(HEX), min_size=1, max_size=4),
    names=st.lists(st.one_of(st.sampled_from(HEX), st.uuids().map(str)), min_size=1, max_size=17),
    host=st.sampled_from(["http://127.0.0.1:8080", "https://[::1]:443", ""]),
)
def test_takes_every_nzbdav_folder_of_the_shard(
    levels: list[str], names: list[str], host: str
) -> None:
    levels[0] = "4567"[HEX.index(levels[0]) % 4]
    body = nzbdav_folder("/.ids/" + "/".join(levels), names, host=host)
    # Without this the agreement tests below would pass with a path that declines all.
    assert folder_agrees(SHARD_ONE, body)


@PROPERTY_SETTINGS
@given(body=nzbdav_listings())
def test_agrees_on_nzbdav_listings(body: bytes) -> None:
    folder_agrees(SHARD_ONE, body)


@PROPERTY_SETTINGS
@given(listing=listings(), data=st.data())
def test_agrees_on_generated_and_unusual_listings(listing: Listing, data: st.DataObject) -> None:
    body = data.draw(st.sampled_from([listing.data, data.draw(unusual(listing))]))
    folder_agrees(SHARD_ONE, body, listing.base_path)


@PROPERTY_SETTINGS
@given(data=st.data())
def test_declines_what_the_reference_refuses(data: st.DataObject) -> None:
    levels = data.draw(st.lists(st.sampled_from(HEX), min_size=1, max_size=4))
    names = data.draw(st.lists(st.sampled_from(HEX), min_size=1, max_size=17))
    source = data.draw(st.sampled_from(["folder", "nzbdav"]))
    if source == "folder":
        body = nzbdav_folder("/.ids/4/" + "/".join(levels), names)
    else:
        body = data.draw(nzbdav_listings())
    folder_agrees(SHARD_ONE, data.draw(broken(body)))


@PROPERTY_SETTINGS
@given(
    folder=st.lists(st.sampled_from(HEX + "xz"), max_size=5).map("/".join),
    leaf=st.one_of(st.sampled_from(HEX), st.uuids().map(str), st.just("")),
    shards=st.integers(1, 16),
    data=st.data(),
)
def test_folder_view_is_what_client_paths_says_for_the_folder_and_each_entry(
    folder: str, leaf: str, shards: int, data: st.DataObject
) -> None:
    policy = ShardListingPolicy(ShardMap.even(shards), data.draw(st.integers(0, shards - 1)))
    folder_path = "/.ids/" + folder + "/" if folder else "/.ids/"
    view = policy.folder_view(folder_path)
    if view is not None:
        assert policy.client_paths(folder_path + leaf) == (view + leaf,)
        assert policy.client_paths(folder_path.rstrip("/")) == (view.rstrip("/"),)


def test_an_entry_that_names_the_folder_again_is_rewritten_like_the_folder() -> None:
    body = nzbdav_folder("/.ids/4/a", ["b", "c"])
    again = body.replace(b"/.ids/4/a/c</D:href>", b"/.ids/4/a/</D:href>", 1)
    taken = filter_folder(SHARD_ONE, again)
    assert taken is not None
    assert taken.body.count(b"/.ids-s1/4/a/</D:href>") == 2
    assert folder_agrees(SHARD_ONE, again)
