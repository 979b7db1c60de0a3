"""A backend's own Location mapped to the proxy's origin as the client used it."""

from __future__ import annotations

from yarl import URL

from shardproxy.core.location import client_location

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
