"""The virtual ``.ids`` folders the proxy answers itself: ``listing.virtual`` and ``propfind``.

The property tests hold the listing to what NzbDav's answer becomes after the shard
filter, byte for byte: the stand-in's store and XML writer answer the PROPFIND that
the proxy would have forwarded (``/.ids/...`` with the client's Host and body), and
``filter_listing`` with the shard's policy turns it into what the client would get.
Bytes, not entries, because the proxy must be invisible: rclone 1.60 and the current
rclone read either answer the same only if nothing in them differs.
"""

from __future__ import annotations

import argparse
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nzbdav_standin import Library
from nzbdav_standin.davxml import XmlBodyError, multistatus, parse_propfind, render_response
from nzbdav_standin.hrefs import absolute_uri, child_url, request_url
from nzbdav_standin.store import Collection, Store, properties
from shardproxy.cli import add_setting_flags, serve_settings
from shardproxy.config.layers import load_settings
from shardproxy.core.shards import HEX_DIGITS, ShardMap, ViewPath
from shardproxy.listing import filter_listing
from shardproxy.listing.policy import ShardListingPolicy
from shardproxy.listing.propfind import (
    ALLPROP,
    DAV_NS,
    WIN32_NS,
    AskedProps,
    PropfindBodyError,
    PropMode,
    read_propfind,
)
from shardproxy.listing.virtual import (
    VIRTUAL_DATE,
    nzbdav_origin,
    render_virtual_folder,
    virtual_folder,
)
from tests.helpers.listings import PROPERTY_SETTINGS

SHARDS = ShardMap.even(4)  # shard 1 owns 4-7
STORE = Store(Library.sample(n_ids=8, seed=3))
RCLONE_BODY = (
    b'<?xml version="1.0"?>\n<d:propfind xmlns:d="DAV:">\n <d:prop>\n  <d:displayname/>\n'
    b"  <d:getlastmodified/>\n  <d:getcontentlength/>\n  <d:resourcetype/>\n </d:prop>\n"
    b"</d:propfind>\n"
)
DAV = "{DAV:}"


def standin_listing(host: str, backend_path: str, depth: int, body: bytes) -> bytes:
    """The stand-in's answer to ``PROPFIND backend_path`` with this Host, Depth and body.

    Its PROPFIND handler, composed from its store and XML writer: the first href is the
    request URL, each child's the parent's with one "/" cut and the name.
    """
    wanted = parse_propfind(body)
    folder = STORE.resolve(backend_path)
    assert isinstance(folder, Collection)
    original = request_url(host, backend_path, None)
    entries = [(original, folder)]
    if depth:
        entries += [(child_url(original, c.name), c) for c in STORE.children(folder)]
    responses = (render_response(absolute_uri(o), properties(e), wanted) for o, e in entries)
    return "".join(multistatus(responses)).encode()


def through_proxy(
    shard_map: ShardMap, folder: ViewPath, host: str, depth: int, body: bytes
) -> bytes:
    """What the client gets today: NzbDav's answer through the shard filter."""
    assert folder.shard is not None
    policy = ShardListingPolicy(shard_map, folder.shard)
    return filter_listing(policy, standin_listing(host, folder.backend_path, depth, body)).body


def virtual(shard_map: ShardMap, folder: ViewPath, host: str, depth: int, body: bytes) -> bytes:
    origin = nzbdav_origin(host)
    assert origin is not None
    return render(folder, origin, depth, read_propfind(body), shard_map)


def render(
    folder: ViewPath, origin: str, depth: int, asked: AskedProps, shard_map: ShardMap = SHARDS
) -> bytes:
    """render_virtual_folder without a cap."""
    body = render_virtual_folder(folder, origin, depth, asked, shard_map)
    assert body is not None
    return body


# --- strategies ------------------------------------------------------------------------


@st.composite
def shard_maps(draw: st.DrawFn) -> ShardMap:
    """Any partition of the 16 characters into shards numbered 0.. in order of first use."""
    raw = draw(st.lists(st.integers(0, 15), min_size=16, max_size=16))
    numbers: dict[int, int] = {}
    return ShardMap(tuple(numbers.setdefault(owner, len(numbers)) for owner in raw))


@st.composite
def virtual_folders(draw: st.DrawFn, shard_map: ShardMap) -> ViewPath:
    """A folder above the fifth level in some shard's view."""
    shard = draw(st.integers(0, shard_map.count - 1))
    owned = [c for c in HEX_DIGITS if shard_map.shard_of(c) == shard]
    depth = draw(st.integers(0, 4))
    levels = ""
    if depth:
        levels = draw(st.sampled_from(owned)) + "".join(
            draw(st.lists(st.sampled_from(HEX_DIGITS), min_size=depth - 1, max_size=depth - 1))
        )
    return ViewPath(shard, levels, "", draw(st.booleans()))


_LABEL = st.from_regex(r"[A-Za-z0-9-]{1,8}", fullmatch=True)
_NAME_END = st.from_regex(r"[A-Za-z][A-Za-z0-9-]{0,7}", fullmatch=True)
_OCTET = st.integers(0, 255).map(str)
hosts = st.tuples(
    st.one_of(
        st.tuples(st.lists(_LABEL, max_size=3), _NAME_END).map(lambda p: ".".join([*p[0], p[1]])),
        st.lists(_OCTET, min_size=4, max_size=4).map(".".join),
    ),
    st.one_of(
        st.just(""),
        st.sampled_from([":80", ":8765", ":3000"]),
        st.integers(1, 65535).map(lambda p: f":{p}"),
    ),
).map("".join)

_PROP_NAMES = [
    ("D", "displayname"),
    ("D", "resourcetype"),
    ("D", "getlastmodified"),
    ("D", "getcontentlength"),
    ("D", "iscollection"),
    ("D", "quota-used-bytes"),
    ("D", "getetag"),
    ("D", "creationdate"),
    ("D", "getcontenttype"),
    ("Z", "Win32FileAttributes"),
    ("Z", "Win32CreationTime"),
    ("", "plain"),
    ("x", "quota"),
    ("q", 'odd&"<ns'),
]
_NAMESPACES = {"D": "DAV:", "Z": "urn:schemas-microsoft-com:", "x": "http://apple.com/ns"}


def _prop_element(prefix: str, local: str) -> str:
    if prefix == "q":
        return '<odd xmlns="urn:a&amp;&quot;b&lt;c"/>'
    return f"<{prefix}:{local}/>" if prefix else f"<{local}/>"


@st.composite
def propfind_bodies(draw: st.DrawFn) -> bytes:
    """PROPFIND bodies as clients write them, and odd ones NWebDav still reads."""
    if draw(st.booleans()) and draw(st.booleans()):
        return draw(st.sampled_from([b"", RCLONE_BODY, b'<other xmlns="urn:x"/>']))
    children = []
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["propname", "allprop", "include", "prop", "unknown"]))
        names = draw(st.lists(st.sampled_from(_PROP_NAMES), max_size=5))
        inner = "".join(_prop_element(prefix, local) for prefix, local in names)
        children.append(f"<D:{kind}>{inner}</D:{kind}>" if inner else f"<D:{kind}/>")
    declarations = " ".join(f'xmlns:{p}="{ns}"' for p, ns in _NAMESPACES.items())
    text = f'<?xml version="1.0" encoding="utf-8"?><D:propfind {declarations}>'
    return (text + "".join(children) + "</D:propfind>").encode()


# --- properties ------------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(data=st.data(), shard_map=shard_maps(), host=hosts, depth=st.integers(0, 1))
def test_listing_is_nzbdavs_answer_through_the_shard_filter(
    data: st.DataObject, shard_map: ShardMap, host: str, depth: int
) -> None:
    folder = data.draw(virtual_folders(shard_map))
    body = data.draw(propfind_bodies())
    expected = through_proxy(shard_map, folder, host, depth, body)
    assert virtual(shard_map, folder, host, depth, body) == expected


@PROPERTY_SETTINGS
@given(body=propfind_bodies())
def test_propfind_body_is_read_as_nwebdav_reads_it(body: bytes) -> None:
    theirs = parse_propfind(body)
    ours = read_propfind(body)
    assert ours.mode.value == theirs.mode.value
    assert ours.names == theirs.names


@PROPERTY_SETTINGS
@given(host=hosts)
def test_origin_is_the_one_nzbdav_writes(host: str) -> None:
    assert nzbdav_origin(host) == absolute_uri(request_url(host, "/", None))[:-1]


# --- examples --------------------------------------------------------------------------


def hrefs_and_names(body: bytes) -> list[tuple[str, str]]:
    root = ET.fromstring(body)
    return [
        (r.findtext(f"{DAV}href") or "", r.findtext(f".//{DAV}displayname") or "")
        for r in root.iter(f"{DAV}response")
    ]


def test_view_root_lists_only_the_first_characters_the_shard_owns() -> None:
    body = render(ViewPath(1, "", "", True), "http://p:8", 1, ALLPROP)
    assert hrefs_and_names(body) == [
        ("http://p:8/.ids-s1/", ".ids"),
        ("http://p:8/.ids-s1/4", "4"),
        ("http://p:8/.ids-s1/5", "5"),
        ("http://p:8/.ids-s1/6", "6"),
        ("http://p:8/.ids-s1/7", "7"),
    ]


def test_a_folder_below_the_root_lists_all_sixteen_without_trailing_slashes() -> None:
    body = render(ViewPath(1, "4a", "", False), "http://p", 1, ALLPROP)
    found = hrefs_and_names(body)
    assert found[0] == ("http://p/.ids-s1/4/a", "a")
    assert found[1:] == [(f"http://p/.ids-s1/4/a/{c}", c) for c in HEX_DIGITS]


def test_depth_zero_is_the_folder_alone() -> None:
    body = render(ViewPath(2, "8", "", False), "http://p", 0, ALLPROP)
    assert hrefs_and_names(body) == [("http://p/.ids-s2/8", "8")]


def test_every_folder_is_a_collection_dated_year_one() -> None:
    body = render(ViewPath(0, "0123", "", True), "http://p", 1, ALLPROP)
    responses = list(ET.fromstring(body).iter(f"{DAV}response"))
    assert len(responses) == 17
    for response in responses:
        assert response.find(f".//{DAV}resourcetype/{DAV}collection") is not None
        assert response.findtext(f".//{DAV}getlastmodified") == VIRTUAL_DATE
        assert response.findtext(".//{urn:schemas-microsoft-com:}Win32FileAttributes") == "00000010"
        assert response.findtext(f".//{DAV}status") == "HTTP/1.1 200 OK"


def test_a_property_no_folder_has_gets_a_404_propstat_after_the_200_one() -> None:
    asked = AskedProps(PropMode.SELECTED, ((DAV_NS, "getetag"), (DAV_NS, "displayname")))
    body = render(ViewPath(0, "1", "", False), "http://p", 0, asked)
    statuses = [s.text for s in ET.fromstring(body).iter(f"{DAV}status")]
    assert statuses == ["HTTP/1.1 200 OK", "HTTP/1.1 404 Not Found"]
    assert b"<D:prop><D:displayname>1</D:displayname></D:prop>" in body


def test_rclone_current_gets_the_four_properties_it_asks_for_in_its_order() -> None:
    asked = read_propfind(RCLONE_BODY)
    body = render(ViewPath(3, "c", "", True), "http://p", 0, asked)
    prop = ET.fromstring(body).find(f".//{DAV}prop")
    assert prop is not None
    assert [child.tag for child in prop] == [
        f"{DAV}displayname",
        f"{DAV}getlastmodified",
        f"{DAV}getcontentlength",
        f"{DAV}resourcetype",
    ]


@pytest.mark.parametrize(
    ("backend_path", "expected"),
    [
        ("/.ids", ViewPath(1, "", "", False)),
        ("/.ids/", ViewPath(1, "", "", True)),
        ("/.ids/4", ViewPath(1, "4", "", False)),
        ("/.ids/4/f/0/a/", ViewPath(1, "4f0a", "", True)),
    ],
)
def test_folders_above_the_fifth_level_are_virtual(backend_path: str, expected: ViewPath) -> None:
    assert virtual_folder(backend_path, 1, SHARDS) == expected


@pytest.mark.parametrize(
    "backend_path",
    [
        "/.ids/4/f/0/a/b",  # a fifth-level folder lists files: NzbDav's
        "/.ids/4/f/0/a/b/",
        "/.ids/4/f/0/a/b/4f0ab123-0000-4000-8000-000000000000",
        "/.ids/8",  # shard 2's
        "/.ids/4/g",
        "/.ids/4/ab",
        "/.ids//4",
        "/.idsx",
        "/.ids/4?x",
        "/content/4",
    ],
)
def test_other_paths_are_not_virtual(backend_path: str) -> None:
    assert virtual_folder(backend_path, 1, SHARDS) is None


@pytest.mark.parametrize(
    ("host", "origin"),
    [
        ("proxy", "http://proxy"),
        ("Proxy.LAN:8765", "http://proxy.lan:8765"),
        ("127.0.0.1:80", "http://127.0.0.1"),
        ("shardproxy:65535", "http://shardproxy:65535"),
    ],
)
def test_origin_is_lowercase_without_port_80(host: str, origin: str) -> None:
    assert nzbdav_origin(host) == origin


@pytest.mark.parametrize(
    "host",
    [
        None,
        "",
        "[::1]:8765",  # .NET rewrites IPv6 literals
        "127.1",  # and short or hex IPv4 forms
        "0x7f.0.0.1",
        "127.000.0.1",
        "proxy:080",
        "proxy:",
        "proxy:65536",
        "a_b",
        "proxy.",
        "user@proxy",
        "proxy/x",
    ],
)
def test_hosts_nzbdav_may_spell_otherwise_get_no_origin(host: str | None) -> None:
    assert nzbdav_origin(host) is None


def test_an_empty_body_is_allprop() -> None:
    assert read_propfind(b"") == ALLPROP


def test_rclone_current_body_asks_for_four_dav_properties() -> None:
    assert read_propfind(RCLONE_BODY) == AskedProps(
        PropMode.SELECTED,
        (
            (DAV_NS, "displayname"),
            (DAV_NS, "getlastmodified"),
            (DAV_NS, "getcontentlength"),
            (DAV_NS, "resourcetype"),
        ),
    )


def test_the_last_mode_element_decides() -> None:
    body = b'<D:propfind xmlns:D="DAV:"><D:prop><D:getetag/></D:prop><D:propname/></D:propfind>'
    assert read_propfind(body) == AskedProps(PropMode.NAMES, ((DAV_NS, "getetag"),))


def test_include_asks_for_everything_and_more() -> None:
    body = (
        b'<propfind xmlns="DAV:" xmlns:z="urn:schemas-microsoft-com:">'
        b"<include><z:Win32LastAccessTime/></include></propfind>"
    )
    assert read_propfind(body) == AskedProps(
        PropMode.ALL | PropMode.SELECTED, ((WIN32_NS, "Win32LastAccessTime"),)
    )


@pytest.mark.parametrize(
    "body",
    [
        b'<!DOCTYPE p [<!ENTITY a "aaaa">]><D:propfind xmlns:D="DAV:"><D:prop/></D:propfind>',
        b'<D:propfind xmlns:D="DAV:"><D:prop>',
        b"<D:propfind/>",  # an undeclared prefix
        b'<D:propfind xmlns:D="DAV:">&undefined;</D:propfind>',
    ],
)
def test_bodies_nzbdav_refuses_are_refused(body: bytes) -> None:
    with pytest.raises(XmlBodyError):
        parse_propfind(body)
    with pytest.raises(PropfindBodyError):
        read_propfind(body)


def the_setting(argv: list[str], environ: dict[str, str], toml: str, tmp_path: Path) -> bool:
    parser = argparse.ArgumentParser()
    add_setting_flags(parser, serve_settings())
    flags = vars(parser.parse_args(argv))
    config = tmp_path / "shardproxy.toml"
    config.write_text(toml)
    settings = load_settings(flags, config_file=str(config), environ=environ, need_backend=False)
    return settings.virtual_levels


def test_the_setting_is_on_by_default_and_every_layer_turns_it_off(tmp_path: Path) -> None:
    assert the_setting([], {}, "", tmp_path)
    assert not the_setting(["--no-virtual-levels"], {}, "", tmp_path)
    assert not the_setting([], {"SHARDPROXY_VIRTUAL_LEVELS": "0"}, "", tmp_path)
    assert not the_setting([], {}, "virtual_levels = false\n", tmp_path)
    on_again = the_setting(["--virtual-levels"], {}, "virtual_levels = false\n", tmp_path)
    assert on_again


def test_a_listing_over_the_cap_is_not_written() -> None:
    many = tuple((DAV_NS, f"missing{n}") for n in range(500))
    asked = AskedProps(PropMode.SELECTED, many)
    folder = ViewPath(1, "4", "", True)
    whole = render(folder, "http://p", 1, asked)
    assert len(whole) > 1_000_000
    fits = render_virtual_folder(folder, "http://p", 1, asked, SHARDS, max_bytes=len(whole))
    assert fits == whole
    assert (
        render_virtual_folder(folder, "http://p", 1, asked, SHARDS, max_bytes=len(whole) - 1)
        is None
    )
    assert render_virtual_folder(folder, "http://p", 1, asked, SHARDS, max_bytes=10_000) is None
