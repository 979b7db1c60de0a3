"""The streaming multistatus filter, fed bytes and checked byte for byte."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from urllib.parse import quote, unquote, urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shardproxy import multistatus
from shardproxy.listing.policy import ShardListingPolicy
from shardproxy.multistatus import (
    MultistatusError,
    MultistatusFilter,
    ResponsePolicy,
    _ExpatFilter,
    _parse_href,
    _split_plain_href,
    filter_multistatus,
)
from shardproxy.shards import ShardMap

DAV = "{DAV:}"
HEAD = (
    b'<?xml version="1.0" encoding="utf-8"?>'
    b'<D:multistatus xmlns:D="DAV:" xmlns:Z="urn:schemas-microsoft-com:">'
)
TAIL = b"</D:multistatus>"
OK = "<D:status>HTTP/1.1 200 OK</D:status>"
MISSING = "<D:status>HTTP/1.1 404 Not Found</D:status>"


# -- policies -----------------------------------------------------------------------


class ShardOne:
    """Shard 1 of four: /.ids/<4-7>/... shown under /.ids-s1, everything else dropped."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def client_paths(self, backend_path: str) -> Sequence[str]:
        self.seen.append(backend_path)
        if backend_path != "/.ids" and not backend_path.startswith("/.ids/"):
            return ()
        rest = backend_path[len("/.ids") :]
        if rest in ("", "/"):
            return ("/.ids-s1" + rest,)
        if rest[1] in "4567" and rest[2:3] in ("", "/"):
            return ("/.ids-s1" + rest,)
        return ()


class Identity:
    def client_paths(self, backend_path: str) -> Sequence[str]:
        return (backend_path,)


class RootListing:
    """/.ids is shown as itself and as two shard folders; everything else as is."""

    def client_paths(self, backend_path: str) -> Sequence[str]:
        if backend_path == "/.ids":
            return ("/.ids", "/.ids-s0", "/.ids-s1")
        return (backend_path,)


@dataclass
class Fixed:
    """Maps given paths as told; anything else is dropped."""

    table: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def client_paths(self, backend_path: str) -> Sequence[str]:
        return self.table.get(backend_path, ())


# -- documents ----------------------------------------------------------------------


def folder(href: str, name: str, *, first: str = "", p: str = "D") -> str:
    """One NzbDav folder <response>, one line; first is put before the 200 propstat."""
    return (
        f"<{p}:response><{p}:href>{href}</{p}:href>{first}<{p}:propstat><{p}:prop>"
        f"<{p}:displayname>{name}</{p}:displayname>"
        f"<{p}:resourcetype><{p}:collection /></{p}:resourcetype>"
        f"<{p}:getlastmodified>Mon, 01 Jan 0001 00:00:00 GMT</{p}:getlastmodified>"
        f"<Z:Win32FileAttributes>00000010</Z:Win32FileAttributes>"
        f"<{p}:getcontentlength>0</{p}:getcontentlength>"
        f"<{p}:iscollection>1</{p}:iscollection></{p}:prop>"
        f"<{p}:status>HTTP/1.1 200 OK</{p}:status></{p}:propstat></{p}:response>"
    )


def missing(prop: str = "getetag") -> str:
    return f"<D:propstat><D:prop><D:{prop} /></D:prop>{MISSING}</D:propstat>"


def doc(*responses: str) -> bytes:
    return HEAD + "".join(responses).encode() + TAIL


def run(
    policy: ResponsePolicy,
    data: bytes,
    chunks: Iterable[int] | None = None,
    *,
    base_path: str | None = None,
) -> bytes:
    """Filter data, cut into chunks of the given sizes (one chunk if None)."""
    listing = MultistatusFilter(policy, base_path=base_path)
    out = []
    at = 0
    for size in [len(data)] if chunks is None else chunks:
        out.append(listing.feed(data[at : at + size]))
        at += size
    out.append(listing.feed(data[at:]))
    out.append(listing.close())
    return b"".join(out)


def one_byte_at_a_time(data: bytes) -> list[int]:
    return [1] * len(data)


# -- hrefs ----------------------------------------------------------------------------


def test_nzbdav_listing_of_ids_keeps_the_shards_folders() -> None:
    url = "http://localhost:8080/.ids"
    data = doc(folder(url + "/", ".ids"), *(folder(f"{url}/{h}", h) for h in "0123456789abcdef"))
    expected = doc(folder(url + "-s1/", ".ids"), *(folder(f"{url}-s1/{h}", h) for h in "4567"))
    listing = MultistatusFilter(ShardOne())
    assert listing.feed(data) + listing.close() == expected
    assert (listing.responses_in, listing.responses_out, listing.bad_hrefs) == (17, 5, 0)


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
    listing = MultistatusFilter(ShardOne())
    out = listing.feed(doc(folder(href, "x"), folder("/.ids/4", "4"))) + listing.close()
    assert out == doc(folder("/.ids-s1/4", "4"))
    assert (listing.bad_hrefs, listing.responses_in, listing.responses_out) == (1, 2, 1)


def test_dot_segments_are_resolved_before_the_policy_sees_the_path() -> None:
    policy = ShardOne()
    out = run(policy, doc(folder("/.ids/4/../8/x", "x"), folder("http://h/.ids/8/./../5/y/.", "y")))
    assert policy.seen == ["/.ids/8/x", "/.ids/5/y/"]
    assert out == doc(folder("http://h/.ids-s1/5/y/", "y"))


def test_response_without_href_is_dropped_and_counted() -> None:
    listing = MultistatusFilter(Identity())
    out = listing.feed(HEAD + f"<D:response>{OK}</D:response><D:response/>".encode() + TAIL)
    out += listing.close()
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
    listing = MultistatusFilter(RootListing())
    assert listing.feed(data) + listing.close() == expected
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
    assert run(ShardOne(), data, one_byte_at_a_time(data)) == expected


def test_multibyte_characters_split_across_chunks() -> None:
    data = doc(folder("/.ids/4/é中😀", "é中😀"), folder("/.ids", "é中😀"))
    expected = doc(folder("/.ids-s1/4/é中😀", "é中😀"), folder("/.ids-s1", "é中😀"))
    assert run(ShardOne(), data, one_byte_at_a_time(data)) == expected
    assert run(ShardOne(), data, [len(HEAD) + 30, 1, 1, 1]) == expected


def test_each_response_is_sent_as_soon_as_it_ends() -> None:
    first, second = folder("/.ids/4", "4"), folder("/.ids/5", "5")
    data = doc(first, second)
    listing = MultistatusFilter(ShardOne())
    cut = len(HEAD) + len(first.encode())
    assert listing.feed(data[: cut - 1]) == HEAD
    assert listing.feed(data[cut - 1 : cut]) == folder("/.ids-s1/4", "4").encode()
    assert listing.feed(data[cut:]) == folder("/.ids-s1/5", "5").encode()
    assert listing.close() == TAIL


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


def test_truncated_listing_fails_on_close_with_the_byte_count() -> None:
    data = doc(folder("/.ids/4", "4"))[:-40]
    listing = MultistatusFilter(ShardOne())
    assert listing.feed(data) == HEAD
    where = f"inside the <response> that starts at byte {len(HEAD)}"
    with pytest.raises(MultistatusError, match=rf"ended early after {len(data)} bytes {where}"):
        listing.close()


def test_listing_missing_its_closing_tag_fails_on_close() -> None:
    data = doc(folder("/.ids/4", "4"))[: -len(TAIL)]
    listing = MultistatusFilter(ShardOne())
    listing.feed(data)
    with pytest.raises(MultistatusError, match=rf"multistatus ended early after {len(data)} bytes"):
        listing.close()


def test_empty_body_fails_on_close() -> None:
    with pytest.raises(MultistatusError, match="ended early after 0 bytes: no element found"):
        MultistatusFilter(Identity()).close()


def test_mismatched_tag_fails_with_its_byte_offset() -> None:
    data = HEAD + b"<D:response><D:href>/x</D:prop></D:response>" + TAIL
    offset = data.index(b"</D:prop>") + len(b"</")
    with pytest.raises(
        MultistatusError, match=rf"malformed multistatus at byte {offset} .*mismatched tag"
    ):
        MultistatusFilter(Identity()).feed(data)


def test_garbage_fails() -> None:
    with pytest.raises(MultistatusError, match="malformed multistatus at byte 0"):
        MultistatusFilter(Identity()).feed(b"Internal Server Error")


def test_html_error_page_is_not_a_multistatus() -> None:
    with pytest.raises(
        MultistatusError,
        match=r"expected a \{DAV:\}multistatus root element at byte 15, found html",
    ):
        MultistatusFilter(Identity()).feed(b"<!-- oops -->\n <html><body/></html>")


def test_multistatus_of_another_namespace_is_refused() -> None:
    with pytest.raises(MultistatusError, match=r"found \{urn:x\}multistatus"):
        MultistatusFilter(Identity()).feed(b'<multistatus xmlns="urn:x"/>')


def test_unbound_prefix_fails() -> None:
    with pytest.raises(MultistatusError, match="unbound prefix"):
        MultistatusFilter(Identity()).feed(b"<D:multistatus></D:multistatus>")


def test_junk_after_the_root_fails() -> None:
    listing = MultistatusFilter(Identity())
    with pytest.raises(MultistatusError, match="junk after document element"):
        listing.feed(doc() + b"<D:response/>")


def test_doctype_is_refused() -> None:
    data = b'<!DOCTYPE m [<!ENTITY a "aaaa">]><D:multistatus xmlns:D="DAV:"/>'
    with pytest.raises(MultistatusError, match="DOCTYPE"):
        MultistatusFilter(Identity()).feed(data)


def test_utf16_listing_is_refused() -> None:
    data = '<?xml version="1.0" encoding="utf-16"?><D:multistatus xmlns:D="DAV:"/>'.encode("utf-16")
    with pytest.raises(MultistatusError, match="encoding"):
        MultistatusFilter(Identity()).feed(data)


def test_a_failure_is_raised_again_on_later_calls() -> None:
    listing = MultistatusFilter(Identity())
    with pytest.raises(MultistatusError) as first:
        listing.feed(b"<nope")
        listing.feed(b"/>")
    with pytest.raises(MultistatusError) as again:
        listing.feed(b"more")
    assert again.value is first.value
    with pytest.raises(MultistatusError):
        listing.close()


def test_feed_after_close_is_a_programming_error() -> None:
    listing = MultistatusFilter(Identity())
    listing.feed(doc())
    listing.close()
    assert listing.close() == b""
    with pytest.raises(RuntimeError):
        listing.feed(b" ")


# -- properties -----------------------------------------------------------------------
# Generated listings: entries inside and outside the shard, hrefs as full URLs, paths or
# relative references, percent-encoded in several styles, any DAV: prefix, optional
# pretty-printing, 404 propstats before, after or instead of the 200 one.

NAME_CHARS = "ab Z09-_.~%#?[]&<>'\"=+;:,@!$é中😀/"
HOSTS = ["http://localhost:8080", "https://nzbdav.example:443", "http://[::1]:8080"]
LAYOUTS = ["ok", "404-last", "404-only", "status"]


def _encode_segment(segment: str, style: str) -> str:
    if style == "strict":
        return quote(segment, safe="")
    if style == "dotnet":
        return quote(segment, safe="!$&'()*+,;=:@")
    if style == "lower":
        return re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), quote(segment, safe=""))
    # Only what must be escaped for the path to read back the same: a raw IRI.
    return "".join({"%": "%25", "?": "%3F", "#": "%23", "/": "%2F"}.get(c, c) for c in segment)


def _xml_text(text: str, charrefs: bool) -> str:
    if charrefs:
        table = {"&": "&#38;", "<": "&#60;", ">": "&#62;"}
    else:
        table = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
    return "".join(table.get(c, c) for c in text)


@dataclass
class Entry:
    path: str  # decoded
    raw: str  # percent-encoded absolute path
    href: str  # the href as written (before XML escaping)
    layout: str  # one of LAYOUTS or "404-first"


@dataclass
class Listing:
    data: bytes
    entries: list[Entry]
    host: str  # scheme and authority of full-URL hrefs, else ""
    base_path: str | None


def _no_dot_segment(name: str) -> bool:
    return all(piece not in (".", "..") for piece in name.split("/"))


names = st.text(NAME_CHARS, min_size=1, max_size=8).filter(_no_dot_segment)


@st.composite
def paths(draw: st.DrawFn) -> list[str]:
    """A decoded path as its segments."""
    kind = draw(st.sampled_from(["root", "shard", "shard", "other-shard", "elsewhere"]))
    if kind == "root":
        return [".ids", *draw(st.sampled_from([[], [""]]))]
    if kind == "elsewhere":
        top = draw(st.sampled_from(["content", "nzbs", ".ids-s1", ".idsx"]))
        return [top, *draw(st.lists(names, max_size=2))]
    first = draw(st.sampled_from("4567" if kind == "shard" else "012389abcdef"))
    return [".ids", first, *draw(st.lists(names, max_size=3))]


@st.composite
def listings(draw: st.DrawFn, *, allow_404_first: bool = True) -> Listing:
    prefix = draw(st.sampled_from(["D", "d", "a", ""]))
    space = draw(st.sampled_from(["", "\n", "\n  ", "\r\n\t"]))
    style = draw(st.sampled_from(["url", "path", "relative"]))
    charrefs = draw(st.booleans())
    layouts = [*LAYOUTS, "404-first"] if allow_404_first else LAYOUTS
    q = f"{prefix}:" if prefix else ""
    xmlns = f'xmlns:{prefix}="DAV:"' if prefix else 'xmlns="DAV:"'

    entries: list[Entry] = []
    host = draw(st.sampled_from(HOSTS)) if style == "url" else ""
    for parts in draw(st.lists(paths(), max_size=8)):
        encoding = draw(st.sampled_from(["strict", "dotnet", "lower", "raw"]))
        raw = "/" + "/".join(_encode_segment(part, encoding) for part in parts)
        href = host + raw
        if style == "relative":  # relative to /.ids/
            inside = raw.startswith("/.ids/") and len(raw) > len("/.ids/")
            href = raw.removeprefix("/.ids/") if inside else ".." + raw
        layout = draw(st.sampled_from(layouts))
        entries.append(Entry("/" + "/".join(parts), raw, href, layout))

    def element(name: str, content: str) -> str:
        return f"{space}<{q}{name}>{content}</{q}{name}>"

    def propstat(status: str, props: str) -> str:
        return element("propstat", element("prop", props) + element("status", status) + space)

    body = []
    for entry in entries:
        name = _xml_text(entry.path.rstrip("/").rpartition("/")[2], charrefs)
        good = propstat(
            "HTTP/1.1 200 OK",
            element("displayname", name)
            + element("resourcetype", f"<{q}collection/>")
            + '<Z:Win32FileAttributes xmlns:Z="urn:schemas-microsoft-com:">'
            + "00000010</Z:Win32FileAttributes>",
        )
        bad = propstat("HTTP/1.1 404 Not Found", f"<{q}getetag/>")
        inner = {
            "ok": good,
            "404-first": bad + good,
            "404-last": good + bad,
            "404-only": bad,
            "status": element("status", "HTTP/1.1 200 OK"),
        }[entry.layout]
        body.append(
            element("response", element("href", _xml_text(entry.href, charrefs)) + inner + space)
        )
    root = f"<{q}multistatus {xmlns}>{''.join(body)}{space}</{q}multistatus>"
    text = f'<?xml version="1.0" encoding="utf-8"?>{space}{root}{space}'
    return Listing(text.encode(), entries, host, "/.ids/" if style == "relative" else None)


@st.composite
def chunkings(draw: st.DrawFn, size: int) -> list[int]:
    """Chunk sizes that cut size bytes at arbitrary places."""
    cuts = sorted(draw(st.sets(st.integers(1, max(1, size - 1)), max_size=12)))
    return [b - a for a, b in zip([0, *cuts], cuts, strict=False)]


def shard_one_paths(listing: Listing) -> list[str]:
    return [p for entry in listing.entries for p in ShardOne().client_paths(entry.path)]


def written_hrefs(out: bytes) -> list[str]:
    """The href texts of a well-formed multistatus, in order."""
    root = ET.fromstring(out)
    return [
        href.text or ""
        for response in root.iter(f"{DAV}response")
        for href in response.findall(f"{DAV}href")
    ]


def decoded_path(href: str, base_path: str | None) -> str:
    """What a client makes of a written href (relative ones here are relative to /.ids/)."""
    path = urlsplit(href).path
    if base_path is not None and not path.startswith("/"):
        path = "/" + path.removeprefix("../") if path.startswith("../") else base_path + path
    return unquote(path, errors="strict")


PROPERTY_SETTINGS = settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@PROPERTY_SETTINGS
@given(listing=listings(), data=st.data())
def test_output_is_well_formed_and_independent_of_chunking(
    listing: Listing, data: st.DataObject
) -> None:
    base = listing.base_path
    whole = run(ShardOne(), listing.data, base_path=base)
    ET.fromstring(whole)
    chunks = data.draw(chunkings(len(listing.data)))
    assert run(ShardOne(), listing.data, chunks, base_path=base) == whole
    assert run(ShardOne(), listing.data, one_byte_at_a_time(listing.data), base_path=base) == whole


@PROPERTY_SETTINGS
@given(listing=listings())
def test_output_holds_exactly_the_kept_responses_with_mapped_hrefs(listing: Listing) -> None:
    out = run(ShardOne(), listing.data, base_path=listing.base_path)
    decoded = [decoded_path(href, listing.base_path) for href in written_hrefs(out)]
    assert decoded == shard_one_paths(listing)


@PROPERTY_SETTINGS
@given(listing=listings())
def test_rewritten_hrefs_change_only_the_leading_part(listing: Listing) -> None:
    out = run(ShardOne(), listing.data, base_path=listing.base_path)
    kept = [e for e in listing.entries if ShardOne().client_paths(e.path)]
    expected = [listing.host + "/.ids-s1" + e.raw.removeprefix("/.ids") for e in kept]
    assert written_hrefs(out) == expected


@PROPERTY_SETTINGS
@given(listing=listings())
def test_clones_carry_their_own_href_and_displayname(listing: Listing) -> None:
    policy = RootListing()
    out = run(policy, listing.data, base_path=listing.base_path)
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
    root = ET.fromstring(run(ShardOne(), listing.data, base_path=listing.base_path))
    for response in root.iter(f"{DAV}response"):
        statuses = [
            (propstat.findtext(f"{DAV}status") or "").split()[1]
            for propstat in response.findall(f"{DAV}propstat")
        ]
        if "200" in statuses:
            assert statuses[0] == "200"


@PROPERTY_SETTINGS
@given(listing=listings(allow_404_first=False), data=st.data())
def test_identity_policy_without_404_first_changes_nothing(
    listing: Listing, data: st.DataObject
) -> None:
    chunks = data.draw(chunkings(len(listing.data)))
    assert run(Identity(), listing.data, chunks, base_path=listing.base_path) == listing.data


@PROPERTY_SETTINGS
@given(listing=listings(allow_404_first=False), chunk=st.integers(1, 64))
def test_output_lags_input_by_at_most_one_response_and_one_chunk(
    listing: Listing, chunk: int
) -> None:
    responses = re.findall(rb"<(?:\w+:)?response>.*?</(?:\w+:)?response>", listing.data, re.DOTALL)
    largest = max(map(len, responses), default=0)
    # What may wait besides: the prolog and root start tag, or whitespace between responses.
    slack = listing.data.index(b"multistatus ") + 40
    stream = MultistatusFilter(Identity(), base_path=listing.base_path)
    sent = 0
    for at in range(0, len(listing.data), chunk):
        sent += len(stream.feed(listing.data[at : at + chunk]))
        received = min(at + chunk, len(listing.data))
        assert received - sent <= largest + chunk + slack


# -- the fast path against _ExpatFilter ------------------------------------------------
# MultistatusFilter slices out most responses without expat calling back into Python;
# _ExpatFilter sees every element through expat's callbacks. Fed the same bytes, cut the
# same way, they must write the same bytes, count the same, and fail at the same call
# with the same message.


class Scatter:
    """Keeps, drops or moves each path under one of several heads, by its length."""

    def client_paths(self, backend_path: str) -> Sequence[str]:
        kind = len(backend_path) % 5
        if kind == 0:
            return ()
        if kind == 1:
            return (backend_path,)
        if kind == 2:
            return ("/my views/#1" + backend_path,)
        second = backend_path.find("/", 1)
        rest = backend_path[second:] if second > 0 else ""
        return (f"/s{len(backend_path) % 3}" + rest,)


POLICIES = [ShardOne, Identity, RootListing, Scatter]
# Content that is well-formed anywhere inside an element, and takes a response off the
# fast path or tests how it ends.
CONTENT = [
    "<!-- c -->",
    "<![CDATA[x]]>",
    "<?pi x?>",
    "&amp;",
    "&#38;",
    "\r\n",
    " \t",
    "é",
    "]",
    "<D:responsedescription>d</D:responsedescription>",
    '<X:a xmlns:X="urn:x"><D:href>/.ids/5</D:href></X:a>',
    '<X:response xmlns:X="urn:x"/>',
    '<D:status xmlns:D="DAV:">HTTP/1.1 404 x</D:status>',
    "<D:propstat><D:prop/><D:status>HTTP/1.1 404 x</D:status></D:propstat>",
    "<D:propstat><D:prop/></D:propstat>",
]
# Bytes that break a body wherever they land (or, by chance, do not).
BREAKAGE = [b"<", b">", b"&", b"&bad;", b"]]>", b"\x01", b"\xff", b"\xef\xbf\xbe", b"</x>"]


def outcome(
    filter_class: type[MultistatusFilter] | type[_ExpatFilter],
    policy: ResponsePolicy,
    data: bytes,
    chunks: list[int],
    base_path: str | None,
) -> tuple[bytes, int, int, int] | tuple[str, int]:
    """(output, responses in, out, bad hrefs); or the error and how many calls went well."""
    listing = filter_class(policy, base_path=base_path)
    out = []
    at = 0
    try:
        for size in [*chunks, len(data) - sum(chunks)]:
            out.append(listing.feed(data[at : at + size]))
            at += size
        out.append(listing.close())
    except MultistatusError as exc:
        return str(exc), len(out)
    return b"".join(out), listing.responses_in, listing.responses_out, listing.bad_hrefs


@st.composite
def unusual(draw: st.DrawFn, listing: Listing) -> bytes:
    """The listing with content inserted after tags and tags spelt differently."""
    data = listing.data
    if draw(st.booleans()):
        data = data.replace(b"<D:response>", b"<D:response >", 1)
    if draw(st.booleans()):
        data = data.replace(b"</D:response>", b"</D:response\n>", 1)
    if draw(st.booleans()):  # a second prefix for DAV:, used by one response
        data = data.replace(b'xmlns:D="DAV:"', b'xmlns:D="DAV:" xmlns:q="DAV:"', 1)
        data = data.replace(b"<D:response>", b"<q:response>", 1)
        data = data.replace(b"</D:response>", b"</q:response>", 1)
    if draw(st.booleans()):  # not UTF-8: every byte reads as a character
        data = data.replace(b'encoding="utf-8"', b'encoding="ISO-8859-1"')
    tag_ends = [m.end() for m in re.finditer(rb">", data)][1:-1]  # inside the root
    for _ in range(draw(st.integers(0, 3))):
        if tag_ends:
            at = draw(st.sampled_from(tag_ends))
            snippet = draw(st.sampled_from(CONTENT)).encode()
            data = data[:at] + snippet + data[at:]
            tag_ends = [end + len(snippet) if end > at else end for end in tag_ends]
    return data


@st.composite
def broken(draw: st.DrawFn, data: bytes) -> bytes:
    """data with bytes inserted, deleted or cut off at random places."""
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(data)))
        edit = draw(st.sampled_from(["insert", "delete", "truncate"]))
        if edit == "insert":
            data = data[:at] + draw(st.sampled_from(BREAKAGE)) + data[at:]
        elif edit == "delete":
            data = data[:at] + data[at + draw(st.integers(1, 8)) :]
        else:
            data = data[:at]
    return data


@PROPERTY_SETTINGS
@given(listing=listings(), data=st.data())
def test_fast_path_writes_what_expat_filter_writes(listing: Listing, data: st.DataObject) -> None:
    chunks = data.draw(chunkings(len(listing.data)))
    policy = data.draw(st.sampled_from(POLICIES))
    fast = outcome(MultistatusFilter, policy(), listing.data, chunks, listing.base_path)
    reference = outcome(_ExpatFilter, policy(), listing.data, chunks, listing.base_path)
    assert fast == reference


@PROPERTY_SETTINGS
@given(listing=listings(), data=st.data())
def test_fast_path_matches_expat_filter_on_unusual_listings(
    listing: Listing, data: st.DataObject
) -> None:
    body = data.draw(unusual(listing))
    chunks = data.draw(chunkings(len(body)))
    policy = data.draw(st.sampled_from(POLICIES))
    fast = outcome(MultistatusFilter, policy(), body, chunks, listing.base_path)
    assert fast == outcome(_ExpatFilter, policy(), body, chunks, listing.base_path)


@PROPERTY_SETTINGS
@given(listing=listings(), data=st.data())
def test_fast_path_fails_where_expat_filter_fails(listing: Listing, data: st.DataObject) -> None:
    body = data.draw(broken(data.draw(unusual(listing))))
    chunks = data.draw(chunkings(len(body)))
    policy = data.draw(st.sampled_from(POLICIES))
    fast = outcome(MultistatusFilter, policy(), body, chunks, listing.base_path)
    assert fast == outcome(_ExpatFilter, policy(), body, chunks, listing.base_path)


HREF_CHARS = "ab/.%2E?#: \t"
HREF_STARTS = ["http://", "https://", "/", "//", "HTTP://", "ftp://", "", " /"]


@PROPERTY_SETTINGS
@given(start=st.sampled_from(HREF_STARTS), rest=st.text(HREF_CHARS, max_size=12))
def test_plain_href_split_is_what_href_parsing_gives(start: str, rest: str) -> None:
    text = start + rest
    plain = _split_plain_href(text)
    if plain is not None:
        href = _parse_href(text, "/base/")
        assert href is not None
        assert (href.lead, href.rest, href.trail) == ("", "", "")
        assert (href.prefix, href.raw_path, href.decoded) == (plain[0], plain[1], plain[1])


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize(
    "leaves",
    [["", "a", "b>c", "d"], ["a>", "b", "c"], ["", ".", "..", "e f", "g "], ["a", "b/c", "d"]],
)
def test_entries_of_one_folder_are_written_as_expat_filter_writes_them(
    policy: type[ResponsePolicy], leaves: list[str]
) -> None:
    # Raw ">" (escaped when rewritten), dot segments, spaces and deeper paths among
    # entries that share the folder of the first.
    for host in ("", "http://h:1"):
        data = doc(*(folder(f"{host}/.ids/4/{leaf}", "x") for leaf in leaves))
        for chunks in ([], [len(HEAD) + 300]):
            fast = outcome(MultistatusFilter, policy(), data, chunks, None)
            assert fast == outcome(_ExpatFilter, policy(), data, chunks, None)


# -- whole bodies, and listings the shard policy rewrites by prefix ----------------------
# NzbDav's listings of its /.ids tree: hex folders and UUID files under one folder, which
# ShardListingPolicy rewrites by swapping "/.ids/" for its view root. Some entries step
# off that path (another shard's, an odd name, a 404 propstat first) so that runs break.

SHARD_ONE_POLICY = ShardListingPolicy(ShardMap.even(4), 1)
HEX = "0123456789abcdef"


@st.composite
def nzbdav_listings(draw: st.DrawFn) -> bytes:
    # Half are as NzbDav writes them for a folder of the shard: all covered by the rewrite.
    tidy = draw(st.booleans())
    prefix = draw(st.sampled_from(["D", "d", ""]))
    space = draw(st.sampled_from(["", "", "\n", "\r\n  "]))
    host = draw(st.sampled_from(["http://127.0.0.1:8080", "https://[::1]:443", "", "HTTP://h"]))
    q = f"{prefix}:" if prefix else ""
    xmlns = f'xmlns:{prefix}="DAV:"' if prefix else 'xmlns="DAV:"'
    levels = draw(st.lists(st.sampled_from(HEX), min_size=1, max_size=4))
    levels[0] = draw(st.sampled_from("4567" if tidy or draw(st.booleans()) else HEX))
    folder = "/.ids/" + "/".join(levels)
    name = st.one_of(st.sampled_from(HEX), st.uuids().map(str))
    if not tidy:
        name = st.one_of(name, st.sampled_from(["a b", "x%41", "&amp;", "é", "..", "-_", "a>"]))
    entries = [(folder + "/", levels[-1])]
    entries += [(f"{folder}/{leaf}", leaf) for leaf in draw(st.lists(name, max_size=17))]
    if not tidy and draw(st.booleans()):  # one entry of another folder, maybe another shard's
        stray = ("/.ids/" + draw(st.sampled_from(HEX)), "x")
        entries.insert(draw(st.integers(0, len(entries))), stray)

    def element(name: str, content: str) -> str:
        return f"{space}<{q}{name}>{content}</{q}{name}>"

    body = []
    for path, leaf in entries:
        props = element("displayname", leaf) + element("getcontentlength", "0")
        good = element("propstat", element("prop", props) + element("status", "HTTP/1.1 200 OK"))
        bad = element(
            "propstat", element("prop", f"<{q}getetag/>") + element("status", "HTTP/1.1 404 x")
        )
        inner = bad + good if not tidy and draw(st.integers(0, 3)) == 0 else good
        body.append(element("response", element("href", host + path) + inner))
    root = f"<{q}multistatus {xmlns}>{''.join(body)}{space}</{q}multistatus>"
    return f'<?xml version="1.0" encoding="utf-8"?>{space}{root}{space}'.encode()


def whole(policy: ResponsePolicy, data: bytes, base_path: str | None = None) -> bytes | str:
    """filter_multistatus's output, or its error."""
    try:
        return filter_multistatus(policy, data, base_path=base_path)
    except MultistatusError as exc:
        return str(exc)


def expected(policy: ResponsePolicy, data: bytes, base_path: str | None = None) -> bytes | str:
    """_ExpatFilter's output for the whole body, or its error."""
    return outcome(_ExpatFilter, policy, data, [], base_path)[0]


@PROPERTY_SETTINGS
@given(data=st.data())
def test_prefix_rewritten_listings_are_what_expat_filter_writes(data: st.DataObject) -> None:
    body = data.draw(nzbdav_listings())
    chunks = data.draw(chunkings(len(body)))
    reference = outcome(_ExpatFilter, SHARD_ONE_POLICY, body, chunks, None)
    assert outcome(MultistatusFilter, SHARD_ONE_POLICY, body, chunks, None) == reference
    # Twice: the second time the root and shapes are known and the shortcut may be taken.
    for _ in range(2):
        assert whole(SHARD_ONE_POLICY, body) == expected(SHARD_ONE_POLICY, body)


@PROPERTY_SETTINGS
@given(data=st.data())
def test_whole_body_filter_fails_where_expat_filter_fails(data: st.DataObject) -> None:
    body = data.draw(nzbdav_listings())
    whole(SHARD_ONE_POLICY, body)  # its root and shapes become known
    broken_body = data.draw(broken(body))
    assert whole(SHARD_ONE_POLICY, broken_body) == expected(SHARD_ONE_POLICY, broken_body)


@PROPERTY_SETTINGS
@given(listing=listings(), data=st.data())
def test_whole_body_filter_matches_expat_filter_on_any_listing(
    listing: Listing, data: st.DataObject
) -> None:
    body = data.draw(unusual(listing))
    policy = data.draw(st.sampled_from([*POLICIES, lambda: SHARD_ONE_POLICY]))
    for _ in range(2):
        got = whole(policy(), body, listing.base_path)
        assert got == expected(policy(), body, listing.base_path)


def test_listing_seen_before_is_rewritten_without_a_parser(monkeypatch: pytest.MonkeyPatch) -> None:
    data = doc(*(folder(f"http://h:1/.ids/4/{leaf}", leaf) for leaf in ("", "5", "6")))
    expected = data.replace(b"/.ids/4/", b"/.ids-s1/4/")
    assert filter_multistatus(SHARD_ONE_POLICY, data) == expected  # learns root and shape

    class NoParser:
        def __init__(self, *_args: object, **_kwargs: object) -> None:
            raise AssertionError("the shortcut should not need a filter")

    monkeypatch.setattr(multistatus, "MultistatusFilter", NoParser)
    monkeypatch.setattr(multistatus.expat, "ParserCreate", NoParser)
    assert filter_multistatus(SHARD_ONE_POLICY, data) == expected
    # An entry of another shard in the same shape is dropped, which takes the filter.
    other = doc(folder("http://h:1/.ids/4/", "4"), folder("http://h:1/.ids/0", "0"))
    with pytest.raises(AssertionError, match="shortcut"):
        filter_multistatus(SHARD_ONE_POLICY, other)


def test_prefix_in_other_text_of_a_run_is_left_alone() -> None:
    data = doc(folder("http://h:1/.ids/4/", "/.ids/4"), folder("http://h:1/.ids/4/5", "5"))
    want = doc(folder("http://h:1/.ids-s1/4/", "/.ids/4"), folder("http://h:1/.ids-s1/4/5", "5"))
    for _ in range(2):
        assert run(SHARD_ONE_POLICY, data) == want
        assert filter_multistatus(SHARD_ONE_POLICY, data) == want


@pytest.mark.parametrize(
    "ending",
    [b"", b"</D:multistatus", b"</D:multistatus><x/>", b"</D:multistatus>x", b"</D:multi>"],
)
def test_whole_body_ends_with_its_root_end_tag_or_fails(ending: bytes) -> None:
    good = doc(folder("/.ids/4/", "4"), folder("/.ids/4/5", "5"))
    assert filter_multistatus(SHARD_ONE_POLICY, good) == good.replace(b"/.ids/", b"/.ids-s1/")
    data = good.removesuffix(TAIL) + ending
    with pytest.raises(MultistatusError) as failure:
        filter_multistatus(SHARD_ONE_POLICY, data)
    assert str(failure.value) == expected(SHARD_ONE_POLICY, data)


def test_whole_body_with_space_and_comment_after_its_root_is_copied() -> None:
    good = doc(folder("/.ids/4/", "4"))
    filter_multistatus(SHARD_ONE_POLICY, good)
    for tail in (b"\r\n ", b"<!-- done -->\n"):
        assert filter_multistatus(SHARD_ONE_POLICY, good + tail) == (
            good.replace(b"/.ids/", b"/.ids-s1/") + tail
        )
