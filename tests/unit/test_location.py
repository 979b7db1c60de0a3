"""A backend's own Location mapped to the proxy's origin as the client used it."""

from __future__ import annotations

import pytest
from yarl import URL

from shardproxy.core.location import client_location, view_location
from shardproxy.core.shards import ShardMap

BACKEND = URL("http://127.0.0.1:8080")


def test_nginx_folder_redirect_with_the_clients_host_and_backend_port_is_mapped() -> None:
    got = client_location("http://proxy.lan:8080/content/", BACKEND, "proxy.lan:8765", "http")
    assert got == "http://proxy.lan:8765/content/"


def test_the_backends_own_host_and_port_are_mapped_with_query_and_encoding() -> None:
    location = "http://127.0.0.1:8080/content/a%20b/?x=1#f"
    got = client_location(location, BACKEND, "127.0.0.1:8765", "https")
    assert got == "https://127.0.0.1:8765/content/a%20b/?x=1#f"


def test_a_client_host_without_port_gives_a_location_without_port() -> None:
    assert client_location("http://nas:8080/x/", BACKEND, "nas", "http") == "http://nas/x/"


def test_other_servers_relative_locations_and_no_host_stay_as_they_are() -> None:
    assert client_location("http://other:8080/x", BACKEND, "nas:8765", "http") == (
        "http://other:8080/x"
    )
    assert client_location("http://127.0.0.1:9999/x", BACKEND, "nas:8765", "http") == (
        "http://127.0.0.1:9999/x"
    )
    assert client_location("/content/", BACKEND, "nas:8765", "http") == "/content/"
    assert client_location("http://127.0.0.1:8080/x", BACKEND, None, "http") == (
        "http://127.0.0.1:8080/x"
    )
    assert client_location("http://[bad", BACKEND, "nas:8765", "http") == "http://[bad"


# --- view_location: a shard request's Location stays in its view --------------------------

FOUR = ShardMap.even(4)  # shard 1 owns 4-7


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("http://proxy/.ids/", "http://proxy/.ids-s1/"),
        ("http://proxy/.ids", "http://proxy/.ids-s1"),
        ("/.ids/4/5/?a=1#top", "/.ids-s1/4/5/?a=1#top"),
        ("/.ids/%34/", "/.ids-s1/%34/"),
        ("/.ids-s1/4/", "/.ids-s1/4/"),
        ("5/", "/.ids-s1/5/"),  # relative to /.ids/4
        ("/content/tv/", "/content/tv/"),
        ("http://elsewhere/content/", "http://elsewhere/content/"),
    ],
)
def test_a_location_in_the_view_or_in_pass_through_space_is_kept_there(
    location: str, expected: str
) -> None:
    assert view_location(location, 1, FOUR, "/.ids/4") == expected


@pytest.mark.parametrize(
    "location",
    [
        "http://nzbdav:3000/.ids/0/",  # shard 0's prefix
        "/.ids-s0/0/",  # another view
        "/.ids-s9/",  # no such view
        "/.ids/x/",  # no hex level: no shard owns it
        "/content/../.ids/0/",  # a dot segment
        "/.ids/4%2F0/",  # an encoded slash
        "http://[bad",
    ],
)
def test_a_location_out_of_the_view_is_none(location: str) -> None:
    assert view_location(location, 1, FOUR, "/.ids/4") is None
