"""The listing filter's behaviour, fed whole bodies and checked byte for byte."""

from __future__ import annotations

import copy
from collections.abc import Sequence

import pytest

from shardproxy.listing import ListingError, ResponsePolicy, filter_listing
from shardproxy.listing.reference import filter_reference
from tests.helpers.listings import (
    HEAD,
    MISSING,
    OK,
    TAIL,
    Fixed,
    Identity,
    RootListing,
    ShardOne,
    doc,
    folder,
    missing,
)


def run(policy: ResponsePolicy, data: bytes, *, base_path: str | None = None) -> bytes:
    """The filtered body; the reference filter (given its own policy) must agree."""
    reference = filter_reference(copy.deepcopy(policy), data, base_path=base_path).body
    out = filter_listing(policy, data, base_path=base_path).body
    assert out == reference
    return out


def fails(data: bytes, policy: ResponsePolicy | None = None) -> str:
    """The ListingError message for data, checking both filters say the same."""
    with pytest.raises(ListingError) as failure:
        filter_listing(policy or Identity(), data)
    with pytest.raises(ListingError) as reference:
        filter_reference(policy or Identity(), data)
    assert str(reference.value) == str(failure.value)
    return str(failure.value)


# -- hrefs ----------------------------------------------------------------------------


def test_nzbdav_listing_of_ids_keeps_the_shards_folders() -> None:
    url = "http://localhost:8080/.ids"
    data = doc(folder(url + "/", ".ids"), *(folder(f"{url}/{h}", h) for h in "0123456789abcdef"))
    expected = doc(folder(url + "-s1/", ".ids"), *(folder(f"{url}-s1/{h}", h) for h in "4567"))
    listing = filter_listing(ShardOne(), data)
    assert listing.body == expected
    assert (listing.responses_in, listing.responses_out, listing.bad_hrefs) == (17, 5, 0)
    assert listing.dropped == 12


def test_full_url_href_is_rewritten_keeping_scheme_and_host() -> None:
    data = doc(folder("http://localhost:8080/.ids/4", "4"))
    assert run(ShardOne(), data) == doc(folder("http://localhost:8080/.ids-s1/4", "4"))


def test_path_href_is_rewritten() -> None:
    data = doc(folder("/.ids/4/a", "a"))
    assert run(ShardOne(), data) == doc(folder("/.ids-s1/4/a", "a"))


def test_ids_root_is_rewritten_with_and_without_trailing_slash() -> None:
    data = doc(folder("http://h/.ids/", ".ids"), folder("http://h/.ids", ".ids"))
    assert run(ShardOne(), data) == doc(
        folder("http://h/.ids-s1/", ".ids"), folder("http://h/.ids-s1", ".ids")
    )


def test_entries_of_other_shards_are_dropped() -> None:
    data = doc(
        folder("/.ids", ".ids"),
        folder("/.ids/3", "3"),
        folder("/.ids/4", "4"),
        folder("/.ids/8", "8"),
    )
    assert run(ShardOne(), data) == doc(folder("/.ids-s1", ".ids"), folder("/.ids-s1/4", "4"))


def test_paths_outside_ids_are_dropped() -> None:
    data = doc(folder("http://h/content", "content"), folder("http://h/.idsx/4", "4"))
    assert run(ShardOne(), data) == doc()


def test_policy_sees_the_decoded_path_without_host_or_query() -> None:
    policy = ShardOne()
    run(policy, doc(folder("https://user@h:8443/.ids/4/a%20b%23c?x=1#frag", "n")))
    assert policy.seen == ["/.ids/4/a b#c"]


def test_raw_encoding_of_the_unchanged_tail_is_kept() -> None:
    href = "http://localhost:8080/.ids/9/6/1/b/0/x%20y%23%5Bz%5D%c3%a9"
    policy = Fixed({"/.ids/9/6/1/b/0/x y#[z]é": ("/.ids-s2/9/6/1/b/0/x y#[z]é",)})
    out = run(policy, doc(folder(href, "x")))
    assert out == doc(folder("http://localhost:8080/.ids-s2/9/6/1/b/0/x%20y%23%5Bz%5D%c3%a9", "x"))


def test_unencoded_characters_in_the_tail_are_kept() -> None:
    data = doc(folder("/.ids/4/a b[1]é", "x"))
    assert run(ShardOne(), data) == doc(folder("/.ids-s1/4/a b[1]é", "x"))


def test_changed_leading_part_is_percent_encoded() -> None:
    policy = Fixed({"/.ids/4/f": ("/my views/#1/4/f",)})
    out = run(policy, doc(folder("/.ids/4/f", "f")))
    assert out == doc(folder("/my%20views/%231/4/f", "f"))


def test_encoded_leading_segment_is_decoded_for_the_policy() -> None:
    out = run(ShardOne(), doc(folder("/%2Eids/4/x%2Fy", "x")))
    assert out == doc(folder("/.ids-s1/4/x%2Fy", "x"))


def test_entities_in_hrefs_are_decoded_and_escaped_again() -> None:
    policy = ShardOne()
    out = run(policy, doc(folder("/.ids/4/a&amp;b&#60;c&gt;", "a")))
    assert policy.seen == ["/.ids/4/a&b<c>"]
    assert out == doc(folder("/.ids-s1/4/a&amp;b&lt;c&gt;", "a"))


def test_cdata_href_is_read_and_rewritten() -> None:
    out = run(ShardOne(), doc(folder("<![CDATA[/.ids/4/a&b]]>", "a")))
    assert out == doc(folder("/.ids-s1/4/a&amp;b", "a"))


def test_whitespace_around_an_href_is_kept() -> None:
    out = run(ShardOne(), doc(folder("\n  /.ids/4\n", "4")))
    assert out == doc(folder("\n  /.ids-s1/4\n", "4"))


def test_query_and_fragment_are_kept() -> None:
    out = run(ShardOne(), doc(folder("http://h/.ids/4?a=1&amp;b=2#f", "4")))
    assert out == doc(folder("http://h/.ids-s1/4?a=1&amp;b=2#f", "4"))


def test_unchanged_href_is_copied_verbatim() -> None:
    data = doc(folder("http://h:1/%63ontent/a&#32;b", "a"))
    assert run(Identity(), data) == data


def test_url_without_a_path_reads_as_the_root() -> None:
    policy = Fixed({"/": ("/",)})
    data = doc(folder("http://localhost:8080", "root"))
    assert run(policy, data) == data


def test_relative_href_is_resolved_against_the_base_path() -> None:
    policy = ShardOne()
    out = run(policy, doc(folder("4/a%20b", "a")), base_path="/.ids/")
    assert policy.seen == ["/.ids/4/a b"]
    assert out == doc(folder("/.ids-s1/4/a%20b", "a"))


def test_relative_href_without_a_base_path_reaches_the_policy_as_is() -> None:
    policy = ShardOne()
    assert run(policy, doc(folder("a%20b", "a"))) == doc()
    assert policy.seen == ["a b"]


def test_empty_href_element_is_the_base_path() -> None:
    data = HEAD + f"<D:response><D:href/>{OK}</D:response>".encode() + TAIL
    out = run(ShardOne(), data, base_path="/.ids/4/")
    assert (
        out == HEAD + f"<D:response><D:href>/.ids-s1/4/</D:href>{OK}</D:response>".encode() + TAIL
    )


# -- bad hrefs ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "href", ["/.ids/4/100%", "/.ids/4/%zz", "/.ids/4/%ff", "/.ids/4/%2E%2E/x", "/.ids/4/%2e"]
)
def test_undecodable_or_escaping_href_drops_its_response_and_is_counted(href: str) -> None:
    listing = filter_listing(ShardOne(), doc(folder(href, "x"), folder("/.ids/4", "4")))
    out = listing.body
    assert out == doc(folder("/.ids-s1/4", "4"))
    assert (listing.bad_hrefs, listing.responses_in, listing.responses_out) == (1, 2, 1)


def test_dot_segments_are_resolved_before_the_policy_sees_the_path() -> None:
    policy = ShardOne()
    out = run(policy, doc(folder("/.ids/4/../8/x", "x"), folder("http://h/.ids/8/./../5/y/.", "y")))
    assert policy.seen == ["/.ids/8/x", "/.ids/5/y/"]
    assert out == doc(folder("http://h/.ids-s1/5/y/", "y"))


def test_response_without_href_is_dropped_and_counted() -> None:
    listing = filter_listing(
        Identity(), HEAD + f"<D:response>{OK}</D:response><D:response/>".encode() + TAIL
    )
    out = listing.body
    assert out == doc()
    assert listing.bad_hrefs == 2


def test_policy_returning_a_string_is_a_type_error() -> None:
    class Wrong:
        def client_paths(self, backend_path: str) -> Sequence[str]:
            return backend_path

    with pytest.raises(TypeError):
        run(Wrong(), doc(folder("/a", "a")))


# -- namespaces -----------------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["d", "a", "lp1"])
def test_any_prefix_for_dav_is_understood(prefix: str) -> None:
    def with_prefix(href: str) -> bytes:
        head = f'<{prefix}:multistatus xmlns:{prefix}="DAV:" xmlns:Z="urn:z">'
        body = folder(href, "4", p=prefix) + folder("/.ids/9", "9", p=prefix)
        return f'<?xml version="1.0"?>{head}{body}</{prefix}:multistatus>'.encode()

    assert run(ShardOne(), with_prefix("/.ids/4")) == with_prefix("/.ids-s1/4").replace(
        folder("/.ids/9", "9", p=prefix).encode(), b""
    )


def test_default_namespace_is_understood() -> None:
    def listing(*hrefs: str) -> bytes:
        body = "".join(
            f"<response><href>{h}</href><propstat><prop><displayname>x</displayname></prop>"
            "<status>HTTP/1.1 200 OK</status></propstat></response>"
            for h in hrefs
        )
        return f'<multistatus xmlns="DAV:">{body}</multistatus>'.encode()

    assert run(ShardOne(), listing("/.ids/4", "/.ids/c")) == listing("/.ids-s1/4")


def test_elements_of_other_namespaces_are_not_dav_elements() -> None:
    data = doc(
        '<D:response><X:href xmlns:X="urn:x">/.ids/4</X:href><D:href>/.ids/5</D:href>'
        f"<D:propstat><D:prop><X:displayname xmlns:X='urn:x'>y</X:displayname></D:prop>{OK}"
        "</D:propstat></D:response>"
    )
    out = run(RootListing(), data.replace(b"/.ids/5", b"/.ids"))
    assert out.count(b"<D:response>") == 3
    assert out.count(b'<X:href xmlns:X="urn:x">/.ids/4</X:href>') == 3
    assert out.count(b"<X:displayname xmlns:X='urn:x'>y</X:displayname>") == 3


# -- propstat order -------------------------------------------------------------------


def test_404_propstats_move_after_the_200_propstat() -> None:
    data = doc(folder("/.ids/4", "4", first=missing("getetag") + missing("creationdate")))
    ok_part = folder("/.ids-s1/4", "4").removesuffix("</D:response>")
    expected = ok_part + missing("getetag") + missing("creationdate") + "</D:response>"
    assert run(ShardOne(), data) == doc(expected)


def test_propstats_already_2xx_first_are_untouched() -> None:
    data = doc(folder("/x", "x").replace("</D:response>", missing() + "</D:response>"))
    assert run(Identity(), data) == data


def test_response_with_only_404_propstats_is_kept_as_is() -> None:
    data = doc(f"<D:response><D:href>/x</D:href>{missing('a')}{missing('b')}</D:response>")
    assert run(Identity(), data) == data


def test_reordering_keeps_the_whitespace_between_propstats_in_place() -> None:
    bad = f"<D:propstat><D:prop><D:a/></D:prop>{MISSING}</D:propstat>"
    good = f"<D:propstat><D:prop><D:b/></D:prop>{OK}</D:propstat>"
    forbidden = "<D:status>HTTP/1.1 403 Forbidden</D:status>"
    other = f"<D:propstat><D:prop><D:c/></D:prop>{forbidden}</D:propstat>"
    body = "<D:response>\n <D:href>/x</D:href>\n {}\n {}\n  {}\n</D:response>"
    data = doc(body.format(bad, good, other))
    assert run(Identity(), data) == doc(body.format(good, bad, other))


def test_2xx_propstats_keep_their_order_among_themselves() -> None:
    created = "<D:propstat><D:prop><D:b/></D:prop><D:status>HTTP/1.1 201 Created</D:status>"
    created += "</D:propstat>"
    good = f"<D:propstat><D:prop><D:c/></D:prop>{OK}</D:propstat>"
    data = doc(f"<D:response><D:href>/x</D:href>{missing()}{created}{good}</D:response>")
    expected = doc(f"<D:response><D:href>/x</D:href>{created}{good}{missing()}</D:response>")
    assert run(Identity(), data) == expected


def test_response_level_status_is_kept() -> None:
    data = doc(f"<D:response><D:href>/.ids/4/f</D:href>{MISSING}</D:response>")
    assert run(ShardOne(), data) == doc(
        f"<D:response><D:href>/.ids-s1/4/f</D:href>{MISSING}</D:response>"
    )


def test_several_hrefs_of_a_status_response_are_mapped_each_on_its_own() -> None:
    hrefs = "<D:href>/.ids/4/a</D:href><D:href>/.ids/8/b</D:href><D:href>/.ids/5/c</D:href>"
    data = doc(f"<D:response>{hrefs}{MISSING}</D:response>")
    kept = "<D:href>/.ids-s1/4/a</D:href><D:href>/.ids-s1/5/c</D:href>"
    assert run(ShardOne(), data) == doc(f"<D:response>{kept}{MISSING}</D:response>")


def test_status_response_whose_hrefs_all_go_is_dropped() -> None:
    data = doc(f"<D:response><D:href>/.ids/8/a</D:href><D:href>/b</D:href>{MISSING}</D:response>")
    assert run(ShardOne(), data) == doc()


def test_status_response_href_can_be_cloned() -> None:
    data = doc(f"<D:response><D:href>/.ids</D:href><D:href>/x</D:href>{MISSING}</D:response>")
    hrefs = "".join(f"<D:href>{h}</D:href>" for h in ["/.ids", "/.ids-s0", "/.ids-s1", "/x"])
    assert run(RootListing(), data) == doc(f"<D:response>{hrefs}{MISSING}</D:response>")


# -- clones ---------------------------------------------------------------------------


def test_clones_get_their_own_href_and_displayname() -> None:
    data = doc(folder("http://localhost:8080/", "/"), folder("http://localhost:8080/.ids", ".ids"))
    expected = doc(
        folder("http://localhost:8080/", "/"),
        folder("http://localhost:8080/.ids", ".ids"),
        folder("http://localhost:8080/.ids-s0", ".ids-s0"),
        folder("http://localhost:8080/.ids-s1", ".ids-s1"),
    )
    listing = filter_listing(RootListing(), data)
    assert listing.body == expected
    assert (listing.responses_in, listing.responses_out) == (2, 4)


def test_clones_without_displayname_differ_only_in_href() -> None:
    data = doc(
        f"<D:response><D:href>/.ids</D:href><D:propstat><D:prop/>{OK}</D:propstat></D:response>"
    )
    expected = doc(
        *(
            f"<D:response><D:href>{h}</D:href><D:propstat><D:prop/>{OK}</D:propstat></D:response>"
            for h in ("/.ids", "/.ids-s0", "/.ids-s1")
        )
    )
    assert run(RootListing(), data) == expected


def test_clone_displayname_is_escaped_and_may_be_non_ascii() -> None:
    policy = Fixed({"/a": ("/a", "/b&c/", "/é<1>")})
    out = run(policy, doc(folder("/a", "a")))
    assert out == doc(
        folder("/a", "a"), folder("/b&amp;c/", "b&amp;c"), folder("/%C3%A9%3C1%3E", "é&lt;1&gt;")
    )


def test_empty_displayname_element_gets_text_in_clones() -> None:
    body = (
        "<D:response><D:href>{}</D:href><D:propstat><D:prop>{}</D:prop>{}</D:propstat></D:response>"
    )
    data = doc(body.format("/.ids", '<D:displayname a="/>" />', OK))
    expected = doc(
        *(
            body.format(h, f'<D:displayname a="/>">{h[1:]}</D:displayname>', OK)
            for h in ("/.ids", "/.ids-s0", "/.ids-s1")
        )
    )
    assert run(RootListing(), data) == expected


def test_displayname_of_a_404_propstat_moved_in_a_clone_is_rewritten() -> None:
    hidden = (
        f"<D:propstat><D:prop><D:displayname>.ids</D:displayname></D:prop>{MISSING}</D:propstat>"
    )
    good = f"<D:propstat><D:prop><D:b/></D:prop>{OK}</D:propstat>"
    data = doc(f"<D:response><D:href>/.ids</D:href>{hidden}{good}</D:response>")
    out = run(Fixed({"/.ids": ("/.ids", "/s")}), data)
    assert out == doc(
        f"<D:response><D:href>/.ids</D:href>{good}{hidden}</D:response>",
        f"<D:response><D:href>/s</D:href>{good}{hidden.replace('.ids', 's')}</D:response>",
    )


# -- byte faithfulness and streaming --------------------------------------------------


def test_prolog_whitespace_comments_and_other_root_children_are_copied() -> None:
    data = (
        b"\xef\xbb\xbf<?xml version='1.0' encoding='UTF-8' ?>\n<!-- listing -->\n"
        b"<D:multistatus xmlns:D='DAV:'  >\n  <D:response>\n    <D:href>/.ids/4</D:href>\n"
        b"    <D:status>HTTP/1.1 200 OK</D:status>\n  </D:response>\n  <D:response>\n"
        b"    <D:href>/.ids/9</D:href>\n    <D:status>HTTP/1.1 200 OK</D:status>\n  </D:response>\n"
        b"  <D:responsedescription>done</D:responsedescription>\n</D:multistatus >\n<?pi x?>\n"
    )
    expected = data.replace(b"/.ids/4", b"/.ids-s1/4").replace(
        b"<D:response>\n    <D:href>/.ids/9</D:href>\n    <D:status>HTTP/1.1 200 OK</D:status>\n"
        b"  </D:response>",
        b"",
    )
    assert run(ShardOne(), data) == expected


def test_multibyte_characters_are_kept() -> None:
    data = doc(folder("/.ids/4/é中😀", "é中😀"), folder("/.ids", "é中😀"))
    expected = doc(folder("/.ids-s1/4/é中😀", "é中😀"), folder("/.ids-s1", "é中😀"))
    assert run(ShardOne(), data) == expected


def test_latin1_document_gets_character_references_in_new_text() -> None:
    data = (
        b'<?xml version="1.0" encoding="ISO-8859-1"?><D:multistatus xmlns:D="DAV:">'
        b"<D:response><D:href>/.ids</D:href><D:propstat><D:prop><D:displayname>\xe9</D:displayname>"
        b"</D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response></D:multistatus>"
    )
    out = run(Fixed({"/.ids": ("/.ids", "/\xe9")}), data)
    assert b"<D:href>/%C3%A9</D:href>" in out
    assert b"<D:displayname>&#233;</D:displayname>" in out
    assert b"<D:displayname>.ids</D:displayname>" in out


# -- errors ---------------------------------------------------------------------------


def test_truncated_listing_fails_with_the_byte_count() -> None:
    data = doc(folder("/.ids/4", "4"))[:-40]
    where = f"inside the <response> that starts at byte {len(HEAD)}"
    assert fails(data, ShardOne()).startswith(
        f"multistatus ended early after {len(data)} bytes {where}"
    )


def test_listing_missing_its_closing_tag_fails() -> None:
    data = doc(folder("/.ids/4", "4"))[: -len(TAIL)]
    assert fails(data).startswith(f"multistatus ended early after {len(data)} bytes:")


def test_empty_body_fails() -> None:
    assert fails(b"") == "multistatus ended early after 0 bytes: no element found"


def test_mismatched_tag_fails_with_its_byte_offset() -> None:
    data = HEAD + b"<D:response><D:href>/x</D:prop></D:response>" + TAIL
    offset = data.index(b"</D:prop>") + len(b"</")
    assert fails(data) == f"malformed multistatus at byte {offset}: mismatched tag"


def test_garbage_fails() -> None:
    assert fails(b"Internal Server Error").startswith("malformed multistatus at byte 0:")


def test_html_error_page_is_not_a_multistatus() -> None:
    message = fails(b"<!-- oops -->\n <html><body/></html>")
    assert message == "expected a {DAV:}multistatus root element at byte 15, found html"


def test_multistatus_of_another_namespace_is_refused() -> None:
    assert "found {urn:x}multistatus" in fails(b'<multistatus xmlns="urn:x"/>')


def test_unbound_prefix_fails() -> None:
    assert "unbound prefix" in fails(b"<D:multistatus></D:multistatus>")


def test_junk_after_the_root_fails() -> None:
    assert "junk after document element" in fails(doc() + b"<D:response/>")


def test_doctype_is_refused() -> None:
    data = b'<!DOCTYPE m [<!ENTITY a "aaaa">]><D:multistatus xmlns:D="DAV:"/>'
    assert "DOCTYPE" in fails(data)


def test_utf16_listing_is_refused() -> None:
    data = '<?xml version="1.0" encoding="utf-16"?><D:multistatus xmlns:D="DAV:"/>'.encode("utf-16")
    assert "encoding" in fails(data)
