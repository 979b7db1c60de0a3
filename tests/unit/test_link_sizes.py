"""Listed sizes of .rclonelink files grow by what the rewrite adds; nothing else changes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shardproxy.core.rclonelink import MAX_LINK_BYTES
from shardproxy.listing.linksizes import GrownListing, LinkListingError, grow_link_sizes


def response(href: str, length: str | None, *, first_404: bool = False) -> str:
    props = "<D:displayname>x</D:displayname>"
    if length is not None:
        props += f"<D:getcontentlength>{length}</D:getcontentlength>"
    missing = (
        "<D:propstat><D:prop><D:getetag/></D:prop><D:status>HTTP/1.1 404 Not Found</D:status>"
        "</D:propstat>"
    )
    ok = f"<D:propstat><D:prop>{props}</D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat>"
    return f"<D:response><D:href>{href}</D:href>{missing if first_404 else ''}{ok}</D:response>"


def listing(*responses: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?><D:multistatus xmlns:D="DAV:" '
        f'xmlns:Z="urn:schemas-microsoft-com:">{"".join(responses)}</D:multistatus>'
    ).encode()


LINK = "http://proxy:8765/completed-symlinks/movies/Film%20(2020)/Film%20(2020).mkv.rclonelink"


def grown(body: bytes) -> bytes:
    return grow_link_sizes(body, 3, MAX_LINK_BYTES).body


def test_only_rclonelink_sizes_grow() -> None:
    folder = "http://proxy:8765/completed-symlinks/movies/Film%20(2020)"
    nfo = folder + "/extra.nfo"

    def body(link_size: str) -> bytes:
        return listing(
            response(folder, "0"),
            response(LINK, link_size, first_404=True),
            response(nfo, "54"),
            response(folder + "/empty.rclonelink", None),
        )

    assert grown(body("54")) == body("57")


def test_a_link_outside_completed_symlinks_keeps_its_size() -> None:
    body = listing(response("/content/movies/x.rclonelink", "54"))
    assert grown(body) == body


def test_other_prefixes_for_the_dav_namespace_work() -> None:
    body = (
        b'<a:multistatus xmlns:a="DAV:"><a:response><a:href>/completed-symlinks/t/j/n.rclonelink'
        b"</a:href><a:propstat><a:prop><a:getcontentlength> 60 </a:getcontentlength></a:prop>"
        b"</a:propstat></a:response></a:multistatus>"
    )
    assert b"<a:getcontentlength>63</a:getcontentlength>" in grown(body)


def test_malformed_listings_and_sizes_are_errors() -> None:
    with pytest.raises(LinkListingError, match="well-formed"):
        grown(b"<D:multistatus xmlns:D='DAV:'><D:response>")
    with pytest.raises(LinkListingError, match="not a number"):
        grown(listing(response(LINK, "lots")))


@given(st.lists(st.tuples(st.booleans(), st.integers(0, 10**12)), max_size=20))
def test_each_link_grows_once_and_the_rest_is_byte_for_byte(
    entries: list[tuple[bool, int]],
) -> None:
    names = [
        f"/completed-symlinks/c/j/f{i}" + (".rclonelink" if link else ".mkv")
        for i, (link, _) in enumerate(entries)
    ]
    before = listing(*(response(n, str(size)) for n, (_, size) in zip(names, entries, strict=True)))
    after = listing(
        *(
            response(n, str(size + 3 if link and size <= MAX_LINK_BYTES else size))
            for n, (link, size) in zip(names, entries, strict=True)
        )
    )
    assert grown(before) == after


def test_a_link_too_big_to_rewrite_keeps_its_size_and_is_named() -> None:
    big = str(MAX_LINK_BYTES + 1)
    body = listing(response(LINK, big), response(LINK.replace("Film", "Other"), "54"))
    assert grow_link_sizes(body, 3, MAX_LINK_BYTES) == GrownListing(
        listing(response(LINK, big), response(LINK.replace("Film", "Other"), "57")), (LINK,)
    )


def test_a_link_exactly_at_the_limit_still_grows() -> None:
    at = str(MAX_LINK_BYTES)
    assert grown(listing(response(LINK, at))) == listing(response(LINK, str(MAX_LINK_BYTES + 3)))


def test_a_listing_with_a_doctype_is_refused() -> None:
    body = b'<!DOCTYPE m [<!ENTITY a "x">]>' + listing(response(LINK, "54"))
    with pytest.raises(LinkListingError, match="DOCTYPE"):
        grown(body)
