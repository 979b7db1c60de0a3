"""Unit tests of the shard map and of the path mapping between shard views and /.ids."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shardproxy.core.shards import (
    HEX_DIGITS,
    PASS_THROUGH,
    PassThrough,
    Refused,
    ShardMap,
    ShardMapError,
    ShardRoute,
    ViewPath,
    ViewPathError,
    _route_carefully,
    format_prefixes,
    owning_view_path,
    parse_prefixes,
    route,
    view_name,
    view_path,
    view_root,
)
from shardproxy.listing.policy import RootListingPolicy, ShardListingPolicy

FOUR = ShardMap.even(4)
UUID0 = "0123abcd-0000-4000-8000-000000000001"  # shard 0 of four
UUID9 = "961b00d8-1111-4222-8333-444455556666"  # shard 2 of four
UUID0_VIEW = "/.ids-s0/0/1/2/3/a/" + UUID0
UUID0_BACKEND = "/.ids/0/1/2/3/a/" + UUID0


def refused(result: object, status: int = 404) -> Refused:
    """The result as a Refused with ``status``, or a test failure."""
    assert isinstance(result, Refused), result
    assert result.status == status, result
    return result


# --- parse_prefixes / format_prefixes --------------------------------------------------


def test_parse_prefixes_reads_a_range() -> None:
    assert parse_prefixes("0-3") == frozenset("0123")


def test_parse_prefixes_reads_a_list() -> None:
    assert parse_prefixes("0,1,2,3") == frozenset("0123")


def test_parse_prefixes_reads_a_letter_range() -> None:
    assert parse_prefixes("8-b") == frozenset("89ab")


def test_parse_prefixes_reads_a_mix_with_spaces() -> None:
    assert parse_prefixes(" 0-2 , 9,c-d ") == frozenset("0129cd")


def test_parse_prefixes_lowercases_uppercase_characters() -> None:
    assert parse_prefixes("A-C,F") == frozenset("abcf")


def test_parse_prefixes_reads_a_one_character_range() -> None:
    assert parse_prefixes("7-7") == frozenset("7")


def test_parse_prefixes_refuses_an_empty_spec() -> None:
    with pytest.raises(ShardMapError, match=r"empty prefix list ' '"):
        parse_prefixes(" ")


def test_parse_prefixes_refuses_a_non_hex_character_and_names_it() -> None:
    with pytest.raises(ShardMapError, match=r"bad prefix 'g' in '0-3,g'"):
        parse_prefixes("0-3,g")


def test_parse_prefixes_refuses_a_two_character_item_and_names_it() -> None:
    with pytest.raises(ShardMapError, match=r"bad prefix '10' in '10'"):
        parse_prefixes("10")


def test_parse_prefixes_refuses_an_empty_item() -> None:
    with pytest.raises(ShardMapError, match=r"bad prefix '' in '0-3,'"):
        parse_prefixes("0-3,")


def test_parse_prefixes_refuses_a_backwards_range_and_names_it() -> None:
    with pytest.raises(ShardMapError, match=r"backwards range 'b-8' in 'b-8'"):
        parse_prefixes("b-8")


@pytest.mark.parametrize(
    ("chars", "spelling"),
    [
        ("", ""),
        ("0", "0"),
        ("0123", "0-3"),
        ("01239", "0-3,9"),
        ("01", "0-1"),
        ("0f", "0,f"),
        (HEX_DIGITS, "0-f"),
        ("02468ace", "0,2,4,6,8,a,c,e"),
        ("cdef3", "3,c-f"),
    ],
)
def test_format_prefixes_spells_runs_as_ranges(chars: str, spelling: str) -> None:
    assert format_prefixes(chars) == spelling


@given(st.sets(st.sampled_from(HEX_DIGITS), min_size=1))
def test_format_prefixes_round_trips_through_parse_prefixes(chars: set[str]) -> None:
    assert parse_prefixes(format_prefixes(chars)) == frozenset(chars)


# --- ShardMap ---------------------------------------------------------------------------


def test_even_split_of_four_gives_four_characters_each() -> None:
    assert [FOUR.prefixes_of(shard) for shard in range(4)] == ["0-3", "4-7", "8-b", "c-f"]


def test_even_split_of_three_follows_value_times_n_over_16() -> None:
    three = ShardMap.even(3)
    assert three.owner_of_char == tuple(value * 3 // 16 for value in range(16))
    assert [three.prefixes_of(shard) for shard in range(3)] == ["0-5", "6-a", "b-f"]


def test_even_split_of_one_gives_everything_to_shard_zero() -> None:
    assert ShardMap.even(1).owner_of_char == (0,) * 16


def test_even_split_of_sixteen_gives_one_character_each() -> None:
    assert ShardMap.even(16).owner_of_char == tuple(range(16))


@pytest.mark.parametrize("count", [0, 17, -1])
def test_even_split_refuses_a_count_outside_1_to_16(count: int) -> None:
    with pytest.raises(ShardMapError, match=rf"shard count {count} is out of range"):
        ShardMap.even(count)


def test_count_is_the_number_of_shards() -> None:
    assert FOUR.count == 4
    assert ShardMap.even(7).count == 7


def test_from_prefixes_builds_the_same_map_as_the_even_split() -> None:
    assert ShardMap.from_prefixes({0: "0-3", 1: "4-7", 2: "8-b", 3: "c-f"}) == FOUR


def test_from_prefixes_accepts_interleaved_characters() -> None:
    shard_map = ShardMap.from_prefixes({0: "0,2,4,6,8,a,c,e", 1: "1,3,5,7,9,b,d,f"})
    assert shard_map.owner_of_char == (0, 1) * 8


def test_from_prefixes_names_the_characters_of_a_gap() -> None:
    with pytest.raises(ShardMapError, match=r"characters 4-5,f belong to no shard \(gap\)"):
        ShardMap.from_prefixes({0: "0-3", 1: "6-e"})


def test_from_prefixes_names_the_character_and_shards_of_an_overlap() -> None:
    with pytest.raises(ShardMapError, match=r"character 7 belongs to shards 0, 1 \(overlap\)"):
        ShardMap.from_prefixes({0: "0-7", 1: "7-f"})


def test_from_prefixes_reports_gap_and_overlap_together() -> None:
    with pytest.raises(ShardMapError) as excinfo:
        ShardMap.from_prefixes({0: "0-8", 1: "8-e"})
    message = str(excinfo.value)
    assert "characters f belong to no shard (gap)" in message
    assert "character 8 belongs to shards 0, 1 (overlap)" in message


def test_from_prefixes_names_the_missing_shard_of_a_hole() -> None:
    with pytest.raises(ShardMapError, match=r"numbered \[0, 2\].*0\.\.1.*missing \[1\]"):
        ShardMap.from_prefixes({0: "0-7", 2: "8-f"})


def test_from_prefixes_names_the_shard_whose_spec_is_bad() -> None:
    with pytest.raises(ShardMapError, match=r"shard 1: bad prefix 'x' in '8-f,x'"):
        ShardMap.from_prefixes({0: "0-7", 1: "8-f,x"})


def test_from_prefixes_refuses_no_shards() -> None:
    with pytest.raises(ShardMapError, match="no shards given"):
        ShardMap.from_prefixes({})


def test_shard_of_reads_the_first_character_of_a_uuid() -> None:
    assert FOUR.shard_of(UUID9) == 2


def test_shard_of_accepts_uppercase() -> None:
    assert FOUR.shard_of("F") == 3


@pytest.mark.parametrize("value", ["", "g123", "-"])
def test_shard_of_refuses_a_value_not_starting_with_hex(value: str) -> None:
    with pytest.raises(ValueError, match="does not start with a hex character"):
        FOUR.shard_of(value)


def test_chars_of_lists_the_characters_a_shard_owns() -> None:
    assert FOUR.chars_of(2) == frozenset("89ab")


def test_view_root_is_dot_ids_dash_s_and_the_index() -> None:
    assert FOUR.view_root(3) == "/.ids-s3"


# --- route: pass-through ----------------------------------------------------------------


@pytest.mark.parametrize(
    "raw_path",
    [
        "/",
        "//",
        "/.ids",
        "/.ids/9/6/1/b/0/" + UUID9,
        "/content/movies/x.mkv",
        "/completed-symlinks/tv",
        "/nzbs/",
        "/.ids-sx/0",
        "/.ids-s",
        "/x/.ids-s0/0",
    ],
)
def test_paths_outside_the_shard_views_pass_through(raw_path: str) -> None:
    assert route(raw_path, FOUR) is PASS_THROUGH


# --- route: shard views -----------------------------------------------------------------


def test_view_root_maps_to_ids_root() -> None:
    assert route("/.ids-s1", FOUR) == ShardRoute(1, "/.ids")


def test_view_root_keeps_its_trailing_slash() -> None:
    assert route("/.ids-s1/", FOUR) == ShardRoute(1, "/.ids/")


def test_owned_first_level_maps_into_ids() -> None:
    assert route("/.ids-s2/9", FOUR) == ShardRoute(2, "/.ids/9")


def test_owned_file_maps_to_its_ids_path() -> None:
    assert route(UUID0_VIEW, FOUR) == ShardRoute(0, UUID0_BACKEND)


def test_uppercase_uuid_file_name_is_lowercased_upstream() -> None:
    assert route("/.ids-s0/0/1/2/3/a/" + UUID0.upper(), FOUR) == ShardRoute(0, UUID0_BACKEND)


def test_doubled_slashes_are_normalised() -> None:
    assert route("/.ids-s2//9///6/", FOUR) == ShardRoute(2, "/.ids/9/6/")


def test_doubled_slash_after_the_view_root_keeps_one_trailing_slash() -> None:
    assert route("/.ids-s0//", FOUR) == ShardRoute(0, "/.ids/")


def test_percent_encoded_level_is_decoded() -> None:
    assert route("/.ids-s0/%30/%31", FOUR) == ShardRoute(0, "/.ids/0/1")


def test_first_level_of_another_shard_is_404_naming_owner_and_prefixes() -> None:
    result = refused(route("/.ids-s0/9/6/1/b/0/" + UUID9, FOUR))
    assert result.reason == (
        "prefix '9' belongs to shard 2, not shard 0 (0-3); its files are under .ids-s2"
    )


def test_unknown_shard_index_is_404_naming_the_valid_views() -> None:
    result = refused(route("/.ids-s4/c", FOUR))
    assert result.reason == "no shard view '.ids-s4': shards are .ids-s0 to .ids-s3"


def test_shard_index_with_leading_zero_is_404() -> None:
    refused(route("/.ids-s01/4", FOUR))


def test_shard_index_of_thousands_of_digits_is_404() -> None:
    refused(route("/.ids-s" + "9" * 5000 + "/0", FOUR))


def test_uppercase_level_is_404_naming_it() -> None:
    result = refused(route("/.ids-s2/A", FOUR))
    assert result.reason == "level 1 'A' is not one lowercase hex character"


def test_non_hex_level_is_404_naming_its_depth() -> None:
    result = refused(route("/.ids-s0/0/1/g", FOUR))
    assert result.reason == "level 3 'g' is not one lowercase hex character"


def test_two_character_level_is_404() -> None:
    result = refused(route("/.ids-s0/01", FOUR))
    assert "'01' is not one lowercase hex character" in result.reason


def test_file_name_that_is_not_a_uuid_is_404_naming_it() -> None:
    result = refused(route("/.ids-s0/0/1/2/3/a/0123abcd.mkv", FOUR))
    assert result.reason == "file name '0123abcd.mkv' is not a UUID"


def test_file_under_folders_not_matching_its_uuid_is_404() -> None:
    # NzbDav would serve the file from any five folders; a shard must not reach it.
    result = refused(route("/.ids-s0/0/0/0/0/0/" + UUID9, FOUR))
    assert result.reason == (
        f"file {UUID9} is not stored under 0/0/0/0/0 (NzbDav stores it under 9/6/1/b/0)"
    )


def test_path_below_a_file_is_404() -> None:
    result = refused(route(UUID0_VIEW + "/extra", FOUR))
    assert result.reason == "path is deeper than .ids/h/h/h/h/h/<uuid>"


@pytest.mark.parametrize(
    "raw_path",
    [
        "/.ids-s0/..",
        "/.ids-s0/../.ids-s2/9",
        "/.ids-s0/./0",
        "/.ids-s0/%2e%2e/9",
        "/.ids-s0/%2E%2E",
        "/.ids-s0/.%2e/9",
        "/.ids-s0/%2e",
        "/content/../.ids/9",
    ],
)
def test_dot_segments_are_refused_encoded_or_not(raw_path: str) -> None:
    result = refused(route(raw_path, FOUR), 400)
    assert "dot segment" in result.reason


@pytest.mark.parametrize("raw_path", ["/.ids-s0/0%2f9", "/.ids-s0/0%2F9", "/.ids-s0/%5c9"])
def test_encoded_slashes_are_refused(raw_path: str) -> None:
    result = refused(route(raw_path, FOUR), 400)
    assert "hides a slash or NUL" in result.reason


def test_encoded_nul_is_refused() -> None:
    refused(route("/.ids-s0/0%00", FOUR), 400)


@pytest.mark.parametrize("raw_path", ["/.ids-s0/%zz", "/.ids-s0/%", "/.ids-s0/0%4"])
def test_bad_percent_escapes_are_refused_naming_the_segment(raw_path: str) -> None:
    result = refused(route(raw_path, FOUR), 400)
    assert repr(raw_path.rsplit("/", 1)[1]) in result.reason


def test_percent_encoded_invalid_utf8_is_refused() -> None:
    result = refused(route("/.ids-s0/%ff", FOUR), 400)
    assert "'%ff' is not valid percent-encoded UTF-8" in result.reason


def test_relative_path_is_refused() -> None:
    refused(route(".ids-s0/0", FOUR), 400)


# --- mapping back: view_path, owning_view_path ------------------------------------------


def test_view_path_of_the_ids_root_is_the_view_root() -> None:
    assert view_path("/.ids", 3, FOUR) == "/.ids-s3"
    assert view_path("/.ids/", 3, FOUR) == "/.ids-s3/"


def test_view_path_of_an_owned_file() -> None:
    assert view_path(UUID0_BACKEND, 0, FOUR) == UUID0_VIEW


def test_view_path_of_another_shards_entry_is_none() -> None:
    assert view_path("/.ids/9/6", 0, FOUR) is None


@pytest.mark.parametrize(
    "backend_path", ["/content/x", "/.idsx", "/.ids/0x", "/.ids/A", "/.ids//0", "/"]
)
def test_view_path_outside_the_owned_tree_is_none(backend_path: str) -> None:
    assert view_path(backend_path, 0, FOUR) is None


def test_owning_view_path_picks_the_owner_of_the_first_level() -> None:
    assert owning_view_path("/.ids/9/6/1/b/0/" + UUID9, FOUR) == "/.ids-s2/9/6/1/b/0/" + UUID9


@pytest.mark.parametrize("backend_path", ["/.ids", "/.ids/", "/content/x", "/.ids/z/1"])
def test_owning_view_path_of_a_path_no_shard_owns_is_none(backend_path: str) -> None:
    assert owning_view_path(backend_path, FOUR) is None


# --- listing policies --------------------------------------------------------------------


def test_shard_listing_keeps_owned_entries_under_the_view() -> None:
    policy = ShardListingPolicy(FOUR, 2)
    assert policy.client_paths("/.ids/9") == ("/.ids-s2/9",)


def test_shard_listing_drops_other_shards_entries() -> None:
    assert ShardListingPolicy(FOUR, 2).client_paths("/.ids/0") == ()


def test_shard_listing_shows_the_ids_root_as_the_view_root() -> None:
    assert ShardListingPolicy(FOUR, 1).client_paths("/.ids/") == ("/.ids-s1/",)


def test_root_listing_keeps_ordinary_entries_as_they_are() -> None:
    assert RootListingPolicy(FOUR).client_paths("/content") == ("/content",)


@pytest.mark.parametrize("backend_path", ["/.ids", "/.ids/"])
def test_root_listing_adds_one_view_folder_per_shard_after_ids(backend_path: str) -> None:
    assert RootListingPolicy(ShardMap.even(3)).client_paths(backend_path) == (
        backend_path,
        "/.ids-s0",
        "/.ids-s1",
        "/.ids-s2",
    )


def test_root_listing_does_not_add_views_below_ids() -> None:
    assert RootListingPolicy(FOUR).client_paths("/.ids/0") == ("/.ids/0",)


# --- properties ----------------------------------------------------------------------------


@st.composite
def shard_maps(draw: st.DrawFn) -> ShardMap:
    """A random partition of 0-f into N non-empty shards, built from its prefix spelling."""
    count = draw(st.integers(1, 16))
    order = draw(st.permutations(range(16)))
    # The first `count` characters of the shuffle seed one shard each; the rest go anywhere.
    owners = [0] * 16
    for position, value in enumerate(order):
        owners[value] = position if position < count else draw(st.integers(0, count - 1))
    prefixes = {
        shard: format_prefixes(HEX_DIGITS[v] for v in range(16) if owners[v] == shard)
        for shard in range(count)
    }
    shard_map = ShardMap.from_prefixes(prefixes)
    assert shard_map.owner_of_char == tuple(owners)
    return shard_map


uuids = st.uuids().map(str)


def shard_view_path(uuid: str, shard: int) -> str:
    return f"/.ids-s{shard}/{'/'.join(uuid[:5])}/{uuid}"


def backend_path_of(uuid: str) -> str:
    return f"/.ids/{'/'.join(uuid[:5])}/{uuid}"


@given(shard_maps(), uuids)
def test_property_owning_shard_routes_a_uuid_to_its_ids_path(
    shard_map: ShardMap, uuid: str
) -> None:
    owner = shard_map.shard_of(uuid)
    assert route(shard_view_path(uuid, owner), shard_map) == ShardRoute(
        owner, backend_path_of(uuid)
    )


@given(shard_maps(), uuids, st.data())
def test_property_every_other_shard_refuses_a_uuid_with_404(
    shard_map: ShardMap, uuid: str, data: st.DataObject
) -> None:
    owner = shard_map.shard_of(uuid)
    others = [shard for shard in range(shard_map.count) if shard != owner]
    if not others:
        return
    shard = data.draw(st.sampled_from(others))
    refused(route(shard_view_path(uuid, shard), shard_map))


@given(shard_maps(), uuids, st.integers(0, 6), st.booleans())
def test_property_view_path_round_trips_route(
    shard_map: ShardMap, uuid: str, depth: int, trailing_slash: bool
) -> None:
    owner = shard_map.shard_of(uuid)
    names = [*uuid[:5], uuid][:depth]
    client_path = "/".join([shard_map.view_root(owner), *names]) + ("/" if trailing_slash else "")
    routed = route(client_path, shard_map)
    assert isinstance(routed, ShardRoute)
    assert routed.shard == owner
    assert view_path(routed.backend_path, owner, shard_map) == client_path
    if depth:
        assert owning_view_path(routed.backend_path, shard_map) == client_path


@given(shard_maps(), uuids)
def test_property_owning_view_path_is_the_only_view_keeping_a_file(
    shard_map: ShardMap, uuid: str
) -> None:
    backend = backend_path_of(uuid)
    kept = [s for s in range(shard_map.count) if view_path(backend, s, shard_map) is not None]
    assert kept == [shard_map.shard_of(uuid)]
    assert owning_view_path(backend, shard_map) == shard_view_path(uuid, kept[0])


DOT_SEGMENTS = [".", "..", "%2e", "%2E", "%2e%2e", ".%2e", "../..", ""]
SLASHES_AND_ESCAPES = ["/", "%2f", "0%2F9", "%5c", "\\", "%00", "\x00", "%", "%4", "%zz", "%ff"]
VIEW_LOOKALIKES = [".ids", ".ids-s", ".ids-s0", ".ids-s1", ".ids-s3", ".ids-s00", ".ids-s16"]
ODD_NAMES = ["%2eids-s0", "%30", "%41", "%c3%a9", "A", "F", "\u00e9", "\uff10", "-", "?", "#", "~"]
HOSTILE_SEGMENTS = DOT_SEGMENTS + SLASHES_AND_ESCAPES + VIEW_LOOKALIKES + ODD_NAMES
segments = st.one_of(
    st.sampled_from(HOSTILE_SEGMENTS),
    st.sampled_from(HEX_DIGITS),
    st.sampled_from(HEX_DIGITS),
    uuids,
    uuids.map(str.upper),
    st.text(max_size=4),
)


@st.composite
def raw_paths(draw: st.DrawFn) -> str:
    """Mostly paths into a shard view, made of hostile and ordinary segments."""
    root = draw(st.sampled_from(["/.ids-s0", "/.ids-s1", "/.ids-s2", "/%2eids-s1", "/.ids", ""]))
    names = draw(st.lists(segments, max_size=8))
    if draw(st.booleans()):
        # Start from a real file path, so deep routes are reached, then damage it.
        uuid = draw(uuids)
        names = [*uuid[:5], uuid]
        index = draw(st.integers(0, len(names)))
        names[index:index] = draw(st.lists(segments, max_size=2))
    return root + "/" + "/".join(names)


@settings(max_examples=500)
@given(shard_maps(), raw_paths())
def test_property_random_paths_never_escape_ids_or_the_shard(
    shard_map: ShardMap, raw_path: str
) -> None:
    result = route(raw_path, shard_map)
    assert isinstance(result, (ShardRoute, PassThrough, Refused))
    if not isinstance(result, ShardRoute):
        return
    backend = result.backend_path
    assert 0 <= result.shard < shard_map.count
    assert backend in ("/.ids", "/.ids/") or backend.startswith("/.ids/")
    names = backend.split("/")[2:]
    assert "." not in names and ".." not in names
    assert "\\" not in backend and "\x00" not in backend
    named = [name for name in names if name]
    assert len(named) <= 6
    if named:
        assert shard_map.shard_of(named[0]) == result.shard
        assert all(len(name) == 1 and name in HEX_DIGITS for name in named[:5])
    if len(named) == 6:
        assert named[5][:5] == "".join(named[:5])
    assert view_path(backend, result.shard, shard_map) is not None


@given(shard_maps(), st.text())
def test_property_arbitrary_text_never_makes_route_raise(shard_map: ShardMap, text: str) -> None:
    for raw_path in ("/" + text, "/.ids-s0/" + text, text):
        route(raw_path, shard_map)


@given(
    shard=st.integers(0, 3),
    path=st.one_of(
        st.text(),
        st.builds(
            lambda head, tail: head + tail,
            st.sampled_from(["/.ids", "/.ids/", "/.ids-s1/", "/.idsx", "/content/", ""]),
            st.text(alphabet="0123456789abcdefg/xX.-", max_size=12),
        ),
    ),
)
def test_listing_policy_agrees_with_view_path(shard: int, path: str) -> None:
    mapped = view_path(path, shard, FOUR)
    expected = () if mapped is None else (mapped,)
    assert tuple(ShardListingPolicy(FOUR, shard).client_paths(path)) == expected


@st.composite
def plain_looking_view_paths(draw: st.DrawFn) -> str:
    """Paths near the shape route() takes a shortcut for, on both sides of its edge."""
    shard = draw(st.sampled_from(["0", "1", "3", "4", "00", "01", "15", "99"]))
    levels = draw(st.lists(st.sampled_from("0123456789abcdefA"), max_size=6))
    path = f"/.ids-s{shard}" + "".join("/" + level for level in levels)
    if draw(st.booleans()):
        uuid = draw(st.uuids()).hex if draw(st.booleans()) else str(draw(st.uuids()))
        start = "".join(levels[:5])
        if draw(st.booleans()) and len(start) == 5:
            uuid = start + uuid[5:]  # stored where NzbDav keeps it
        path += "/" + (uuid.upper() if draw(st.booleans()) else uuid)
    return path + draw(st.sampled_from(["", "/", "//"]))


@given(shard_map=shard_maps(), path=plain_looking_view_paths())
def test_route_shortcut_agrees_with_the_careful_route(shard_map: ShardMap, path: str) -> None:
    assert route(path, shard_map) == _route_carefully(path, shard_map)


def test_route_shortcut_maps_a_file_of_the_shard_in_lowercase() -> None:
    assert route(UUID0_VIEW, FOUR) == ShardRoute(0, UUID0_BACKEND)
    shouted = UUID0_VIEW.replace(UUID0, UUID0.upper())
    assert route(shouted, FOUR) == ShardRoute(0, UUID0_BACKEND)


# --- ViewPath: one parser and one spelling of .ids and .ids-s<N> paths ------------------


@given(shard_maps(), uuids, st.integers(0, 6), st.booleans())
def test_property_view_path_parse_and_format_round_trip(
    shard_map: ShardMap, uuid: str, depth: int, slash: bool
) -> None:
    owner = shard_map.shard_of(uuid)
    names = [*uuid[:5], uuid][:depth]
    place = ViewPath.parse(view_name(owner), names, shard_map, slash=slash)
    written = "/".join([view_root(owner), *names]) + ("/" if slash else "")
    assert str(place) == written
    assert ViewPath.from_plain(written, shard_map) == place
    assert place.backend_path == written.replace(view_root(owner), "/.ids", 1)


def test_view_path_of_a_uuid_is_in_its_owners_view() -> None:
    assert str(ViewPath.of_uuid(UUID9.upper(), FOUR)) == f"/.ids-s2/9/6/1/b/0/{UUID9}"


def test_view_path_of_the_ids_root_has_no_owner() -> None:
    place = ViewPath.parse(".ids", [], FOUR)
    assert place.owner(FOUR) is None
    assert str(place) == "/.ids"


def test_view_path_refuses_a_name_that_is_no_root() -> None:
    with pytest.raises(ViewPathError, match=r"'content' is neither \.ids nor a shard view"):
        ViewPath.parse("content", [], FOUR)


def test_view_path_from_plain_leaves_odd_paths_to_the_parser() -> None:
    assert ViewPath.from_plain("/.ids-s0/0/0/0/0/0/" + UUID9, FOUR) is None
    assert ViewPath.from_plain("/.ids-s0/%30", FOUR) is None
    assert ViewPath.from_plain("/.ids-s4/", FOUR) is None
