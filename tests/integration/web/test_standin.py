"""The NzbDav stand-in reproduces NzbDav's WebDAV quirks, checked through real HTTP."""

from __future__ import annotations

import asyncio
import base64
import sys
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import ClientPayloadError, ClientSession, encode_basic_auth, web
from aiohttp.test_utils import TestClient

from nzbdav_standin import (
    READ_LOG,
    REQUEST_LOG,
    Library,
    expected_bytes,
    make_standin_app,
    uuid_path,
)

AUTH = {"Authorization": encode_basic_auth("admin", "secret")}
EPISODE_UUID = "961b00d8-3bd1-4bd6-9a8b-2f0c6e1f7a42"
EPISODE = "/content/tv/Show.S01E01.1080p/Show.S01E01.1080p.mkv"
MOVIE_UUID = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
MOVIE_FOLDER = "/content/movies/Film #1 [2020] & Amélie"
EPISODE_SIZE = 300_000
DAV = "{DAV:}"

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[..., Awaitable[Client]]


def small_library() -> Library:
    library = Library()
    library.add(EPISODE, EPISODE_SIZE, uuid=EPISODE_UUID)
    library.add(f"{MOVIE_FOLDER}/Film.2020.mkv", 5_000, uuid=MOVIE_UUID)
    library.add_bytes("/nzbs/tv/Queued.Show.S02E01.nzb", b"<nzb/>")
    return library


@pytest.fixture
def library() -> Library:
    return small_library()


@pytest.fixture
async def client(aiohttp_client: MakeClient, library: Library) -> Client:
    return await aiohttp_client(make_standin_app(library))


async def propfind(
    client: Client, path: str, *, depth: str | None = "1", body: bytes = b"", **kwargs: Any
) -> tuple[int, dict[str, str], str]:
    headers = {**AUTH, **kwargs.pop("headers", {})}
    if depth is not None:
        headers["Depth"] = depth
    async with client.request("PROPFIND", path, headers=headers, data=body, **kwargs) as response:
        return response.status, dict(response.headers), await response.text()


def hrefs(xml: str) -> list[str]:
    return [e.text or "" for e in ET.fromstring(xml).iter(f"{DAV}href")]


def responses(xml: str) -> list[ET.Element]:
    return list(ET.fromstring(xml).iter(f"{DAV}response"))


async def get(client: Client, path: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    async with client.get(path, headers={**AUTH, **headers}) as response:
        return response.status, dict(response.headers), await response.read()


# --- PROPFIND format ------------------------------------------------------------------


async def test_propfind_reply_is_one_line_under_nzbdav_root(client: Client) -> None:
    status, headers, body = await propfind(client, "/")
    assert status == 207
    assert headers["Content-Type"] == 'text/xml; charset="utf-8"'
    assert "\n" not in body
    assert body.startswith(
        '<?xml version="1.0" encoding="utf-8"?>'
        '<D:multistatus xmlns:D="DAV:" xmlns:Z="urn:schemas-microsoft-com:">'
    )


async def test_hrefs_are_full_urls_built_from_the_host_header(client: Client) -> None:
    _, _, body = await propfind(client, "/.ids", headers={"Host": "nzbdav.example:8080"})
    assert hrefs(body)[:3] == [
        "http://nzbdav.example:8080/.ids",
        "http://nzbdav.example:8080/.ids/0",
        "http://nzbdav.example:8080/.ids/1",
    ]


async def test_host_is_lowercased_and_default_port_dropped_like_dotnet(client: Client) -> None:
    _, _, body = await propfind(client, "/.ids", depth="0", headers={"Host": "NzbDav.LAN:80"})
    assert hrefs(body) == ["http://nzbdav.lan/.ids"]


async def test_first_href_keeps_trailing_slash_and_child_folders_have_none(client: Client) -> None:
    _, _, body = await propfind(client, "/content/", headers={"Host": "h"})
    assert hrefs(body)[:3] == [
        "http://h/content/",
        "http://h/content/tv",
        "http://h/content/movies",
    ]


async def test_hrefs_are_percent_encoded_like_dotnet_absolute_uri(client: Client) -> None:
    _, _, body = await propfind(client, "/content/movies", headers={"Host": "h"})
    assert hrefs(body)[1] == "http://h/content/movies/Film%20%231%20%5B2020%5D%20&%20Am%C3%A9lie"
    assert "%5D%20&amp;%20Am%C3%A9lie</D:href>" in body


async def test_request_path_is_reencoded_for_the_first_href(client: Client) -> None:
    _, _, body = await propfind(
        client,
        "/content/movies/Film%20%231%20%5B2020%5D%20%26%20Am%C3%A9lie/",
        depth="0",
        headers={"Host": "h"},
    )
    assert hrefs(body) == ["http://h/content/movies/Film%20%231%20%5B2020%5D%20&%20Am%C3%A9lie/"]


async def test_folder_properties_come_in_nzbdav_order(client: Client) -> None:
    _, _, body = await propfind(client, "/.ids/9", depth="0")
    assert (
        "<D:prop><D:displayname>9</D:displayname><D:resourcetype><D:collection /></D:resourcetype>"
        "<D:getlastmodified>Mon, 01 Jan 0001 00:00:00 GMT</D:getlastmodified>"
        "<Z:Win32FileAttributes>00000010</Z:Win32FileAttributes>"
        "<D:quota-available-bytes>9223372036854775807</D:quota-available-bytes>"
        "<D:quota-used-bytes>0</D:quota-used-bytes><D:getcontentlength>0</D:getcontentlength>"
        "<D:iscollection>1</D:iscollection></D:prop><D:status>HTTP/1.1 200 OK</D:status>"
    ) in body


async def test_file_properties_have_item_resourcetype_and_no_etag(client: Client) -> None:
    _, _, body = await propfind(client, uuid_path(EPISODE_UUID), depth="0")
    assert (
        f"<D:prop><D:displayname>{EPISODE_UUID}</D:displayname>"
        f"<D:getcontentlength>{EPISODE_SIZE}</D:getcontentlength>"
        "<D:getcontenttype>application/octet-stream</D:getcontenttype>"
        "<D:getlastmodified>Wed, 01 Jan 2025 12:00:00 GMT</D:getlastmodified>"
        "<Z:Win32FileAttributes>00000080</Z:Win32FileAttributes>"
        "<D:resourcetype><D:item /></D:resourcetype><D:iscollection>0</D:iscollection></D:prop>"
    ) in body
    assert "getetag" not in body
    assert "creationdate" not in body


async def test_content_type_follows_the_extension(client: Client) -> None:
    _, _, body = await propfind(client, EPISODE, depth="0")
    assert "<D:getcontenttype>video/x-matroska</D:getcontenttype>" in body


async def test_missing_properties_get_their_own_404_propstats_before_the_200(
    client: Client,
) -> None:
    ask = (
        b'<?xml version="1.0"?><D:propfind xmlns:D="DAV:" xmlns:x="urn:x"><D:prop>'
        b"<D:getetag/><D:getcontentlength/><x:custom/></D:prop></D:propfind>"
    )
    _, _, body = await propfind(client, uuid_path(EPISODE_UUID), depth="0", body=ask)
    propstats = responses(body)[0].findall(f"{DAV}propstat")
    statuses = [p.findtext(f"{DAV}status") for p in propstats]
    assert statuses == ["HTTP/1.1 404 Not Found", "HTTP/1.1 404 Not Found", "HTTP/1.1 200 OK"]
    assert [child.tag for child in propstats[0].find(f"{DAV}prop") or []] == [f"{DAV}getetag"]
    assert [child.tag for child in propstats[1].find(f"{DAV}prop") or []] == ["{urn:x}custom"]
    assert [child.tag for child in propstats[2].find(f"{DAV}prop") or []] == [
        f"{DAV}getcontentlength"
    ]


async def test_a_request_for_only_missing_properties_has_no_200_propstat(client: Client) -> None:
    ask = b'<propfind xmlns="DAV:"><prop><getetag/></prop></propfind>'
    _, _, body = await propfind(client, "/", depth="0", body=ask)
    statuses = [e.text for e in ET.fromstring(body).iter(f"{DAV}status")]
    assert statuses == ["HTTP/1.1 404 Not Found"]


async def test_propname_lists_names_without_a_prop_element(client: Client) -> None:
    ask = b'<propfind xmlns="DAV:"><propname/></propfind>'
    _, _, body = await propfind(client, "/README", depth="0", body=ask)
    assert (
        "<D:propstat><D:displayname /><D:getcontentlength /><D:getcontenttype />"
        "<D:getlastmodified /><Z:Win32FileAttributes /><D:resourcetype /><D:iscollection />"
        "<D:status>HTTP/1.1 200 OK</D:status></D:propstat>"
    ) in body


async def test_malformed_propfind_body_is_500(client: Client) -> None:
    status, _, _ = await propfind(client, "/", body=b"<propfind")
    assert status == 500


async def test_missing_depth_means_infinity_and_walks_the_subtree(client: Client) -> None:
    _, _, body = await propfind(client, "/content/tv", depth=None, headers={"Host": "h"})
    assert hrefs(body) == [
        "http://h/content/tv",
        "http://h/content/tv/Show.S01E01.1080p",
        "http://h/content/tv/Show.S01E01.1080p/Show.S01E01.1080p.mkv",
    ]


async def test_large_listings_stream_without_content_length(client: Client) -> None:
    status, headers, body = await propfind(client, "/.ids/0/0", depth="infinity")
    assert status == 207
    assert "Content-Length" not in headers
    assert len(responses(body)) == 1 + 16 + 16**2 + 16**3


# --- the tree -------------------------------------------------------------------------


async def test_root_lists_nzbdav_folders_then_readme(client: Client) -> None:
    _, _, body = await propfind(client, "/", headers={"Host": "h"})
    assert hrefs(body) == [
        "http://h/",
        "http://h/nzbs",
        "http://h/content",
        "http://h/completed-symlinks",
        "http://h/.ids",
        "http://h/README",
    ]


async def test_content_lists_configured_categories_even_when_empty(client: Client) -> None:
    _, _, body = await propfind(client, "/content", headers={"Host": "h"})
    assert hrefs(body)[1:] == [
        "http://h/content/tv",
        "http://h/content/movies",
        "http://h/content/uncategorized",
        "http://h/content/audio",
        "http://h/content/software",
    ]


async def test_ids_levels_list_all_sixteen_children_dated_year_one(client: Client) -> None:
    _, _, body = await propfind(client, "/.ids/f/f/", headers={"Host": "h"})
    assert hrefs(body)[1:] == [f"http://h/.ids/f/f/{c}" for c in "0123456789abcdef"]
    dates = {e.text for e in ET.fromstring(body).iter(f"{DAV}getlastmodified")}
    assert dates == {"Mon, 01 Jan 0001 00:00:00 GMT"}


async def test_fifth_level_lists_the_files_with_that_prefix(client: Client) -> None:
    _, _, body = await propfind(client, "/.ids/9/6/1/b/0", headers={"Host": "h"})
    assert hrefs(body) == ["http://h/.ids/9/6/1/b/0", f"http://h{uuid_path(EPISODE_UUID)}"]


async def test_any_five_level_path_resolves_any_uuid(client: Client) -> None:
    status, _, body = await get(client, f"/.ids/0/0/0/0/0/{EPISODE_UUID.upper()}")
    assert status == 200
    assert body == expected_bytes(uuid_path(EPISODE_UUID), EPISODE_SIZE, 0, EPISODE_SIZE - 1)


@pytest.mark.parametrize("level", ["g", "A", "10", "%20"])
async def test_a_level_that_is_not_one_lowercase_hex_char_is_404(
    client: Client, level: str
) -> None:
    status, _, _ = await propfind(client, f"/.ids/9/{level}")
    assert status == 404


async def test_a_file_name_that_is_not_a_guid_is_500(client: Client) -> None:
    status, _, _ = await propfind(client, "/.ids/9/6/1/b/0/not-a-guid")
    assert status == 500


async def test_an_unknown_guid_is_404(client: Client) -> None:
    status, _, _ = await get(client, uuid_path("11111111-2222-4333-8444-555555555555"))
    assert status == 404


async def test_rclonelink_holds_the_ids_target_under_the_mount_dir(
    aiohttp_client: MakeClient, library: Library
) -> None:
    client = await aiohttp_client(make_standin_app(library, mount_dir="/mnt/media/"))
    link = EPISODE.replace("/content/", "/completed-symlinks/") + ".rclonelink"
    status, _, body = await get(client, link)
    assert status == 200
    assert body.decode() == f"/mnt/media/.ids/9/6/1/b/0/{EPISODE_UUID}"


async def test_get_on_a_collection_is_204(client: Client) -> None:
    status, headers, body = await get(client, "/.ids/9")
    assert (status, body) == (204, b"")
    assert headers["Last-Modified"] == "Mon, 01 Jan 0001 00:00:00 GMT"


async def test_non_webdav_paths_are_not_webdav(client: Client) -> None:
    status, _, _ = await propfind(client, "/api")
    assert status != 207
    async with client.get("/health") as response:
        assert (response.status, await response.text()) == (200, "Healthy")


# --- GET and Range ---------------------------------------------------------------------


def episode_bytes(start: int, end_inclusive: int) -> bytes:
    return expected_bytes(uuid_path(EPISODE_UUID), EPISODE_SIZE, start, end_inclusive)


async def test_content_and_ids_paths_serve_the_same_expected_bytes(client: Client) -> None:
    _, _, by_content = await get(client, EPISODE)
    _, _, by_id = await get(client, uuid_path(EPISODE_UUID))
    assert by_content == by_id == episode_bytes(0, EPISODE_SIZE - 1)


async def test_partial_range_is_206_with_content_range(client: Client) -> None:
    status, headers, body = await get(client, EPISODE, Range="bytes=100-199")
    assert status == 206
    assert headers["Content-Range"] == f"bytes 100-199/{EPISODE_SIZE}"
    assert body == episode_bytes(100, 199)


async def test_suffix_range_returns_the_first_n_plus_one_bytes(client: Client) -> None:
    status, headers, body = await get(client, EPISODE, Range="bytes=-500")
    assert status == 206
    assert headers["Content-Range"] == f"bytes 0-500/{EPISODE_SIZE}"
    assert body == episode_bytes(0, 500)


async def test_whole_file_range_is_200_with_content_range(client: Client) -> None:
    status, headers, body = await get(client, EPISODE, Range="bytes=0-")
    assert status == 200
    assert headers["Content-Range"] == f"bytes 0-{EPISODE_SIZE - 1}/{EPISODE_SIZE}"
    assert len(body) == EPISODE_SIZE


async def test_end_past_the_end_is_clamped(client: Client) -> None:
    status, headers, body = await get(client, EPISODE, Range=f"bytes=299990-{10**9}")
    assert status == 206
    assert headers["Content-Range"] == f"bytes 299990-299999/{EPISODE_SIZE}"
    assert body == episode_bytes(299_990, 299_999)


async def test_start_past_the_end_is_416_with_star_content_range(client: Client) -> None:
    status, headers, body = await get(client, EPISODE, Range=f"bytes={EPISODE_SIZE}-")
    assert (status, body) == (416, b"")
    assert headers["Content-Range"] == f"bytes */{EPISODE_SIZE}"
    assert headers["Content-Length"] == "0"


async def test_only_the_first_range_counts(client: Client) -> None:
    status, headers, body = await get(client, EPISODE, Range="bytes=10-19,100-199")
    assert status == 206
    assert headers["Content-Range"] == f"bytes 10-19/{EPISODE_SIZE}"
    assert body == episode_bytes(10, 19)


async def test_if_range_that_is_not_a_date_drops_the_range(client: Client) -> None:
    status, headers, body = await get(client, EPISODE, Range="bytes=10-19", **{"If-Range": '"x"'})
    assert status == 200
    assert "Content-Range" not in headers
    assert len(body) == EPISODE_SIZE


async def test_if_range_date_keeps_the_range_without_comparing(client: Client) -> None:
    status, _, body = await get(
        client, EPISODE, Range="bytes=10-19", **{"If-Range": "Mon, 01 Jan 2001 00:00:00 GMT"}
    )
    assert (status, body) == (206, episode_bytes(10, 19))


async def test_malformed_range_is_500(client: Client) -> None:
    status, _, _ = await get(client, EPISODE, Range="items=0-1")
    assert status == 500


async def test_get_sends_no_etag_but_last_modified_and_accept_ranges(client: Client) -> None:
    _, headers, _ = await get(client, EPISODE, Range="bytes=0-0")
    assert "ETag" not in headers
    assert headers["Last-Modified"] == "Wed, 01 Jan 2025 12:00:00 GMT"
    assert headers["Accept-Ranges"] == "bytes"
    assert headers["Content-Type"] == "video/x-matroska"


async def test_missing_articles_is_404_on_get_but_head_looks_fine(
    aiohttp_client: MakeClient,
) -> None:
    library = Library()
    library.add("/content/tv/Gone/Gone.mkv", 1000, missing_articles=True)
    client = await aiohttp_client(make_standin_app(library))
    assert (await get(client, "/content/tv/Gone/Gone.mkv"))[0] == 404
    async with client.head("/content/tv/Gone/Gone.mkv", headers=AUTH) as response:
        assert (response.status, response.headers["Content-Length"]) == (200, "1000")


async def test_articles_missing_mid_file_cut_the_connection(aiohttp_client: MakeClient) -> None:
    library = Library()
    library.add("/content/tv/Half/Half.mkv", 500_000, missing_after=200_000)
    client = await aiohttp_client(make_standin_app(library))
    async with client.get("/content/tv/Half/Half.mkv", headers=AUTH) as response:
        assert response.status == 200
        with pytest.raises(ClientPayloadError):
            await response.read()
    assert (await get(client, "/content/tv/Half/Half.mkv", Range="bytes=200000-"))[0] == 404


async def test_broken_file_is_500(aiohttp_client: MakeClient) -> None:
    library = Library()
    library.add("/content/tv/Bad/Bad.mkv", 1000, broken=True)
    client = await aiohttp_client(make_standin_app(library))
    assert (await get(client, "/content/tv/Bad/Bad.mkv"))[0] == 500


async def test_a_client_that_leaves_stops_the_read(aiohttp_client: MakeClient) -> None:
    library = Library()
    size = 256 * 1024 * 1024
    library.add("/content/movies/Long/Long.mkv", size)
    app = make_standin_app(library)
    client = await aiohttp_client(app)
    response = await client.get("/content/movies/Long/Long.mkv", headers=AUTH)
    await response.content.readexactly(64 * 1024)
    response.close()
    for _ in range(500):
        if app[READ_LOG]:
            break
        await asyncio.sleep(0.01)
    [record] = app[READ_LOG]
    assert not record.completed
    assert record.planned == size
    assert record.sent < size // 4


def test_wrong_offsets_give_different_bytes() -> None:
    path = uuid_path(EPISODE_UUID)
    size = 1 << 20
    wanted = expected_bytes(path, size, 70_000, 70_063)
    for shift in (-65536, -4096, -32, -1, 1, 32, 4096, 65536):
        assert expected_bytes(path, size, 70_000 + shift, 70_063 + shift) != wanted
    other = uuid_path(MOVIE_UUID)
    assert expected_bytes(other, size, 70_000, 70_063) != wanted


def test_library_read_matches_expected_bytes_across_blocks() -> None:
    library = small_library()
    standin = library.ids[EPISODE_UUID]
    assert standin.read(65_000, 140_000) == episode_bytes(65_000, 140_000)


# --- authentication ---------------------------------------------------------------------


async def test_no_credentials_get_a_basic_challenge(client: Client) -> None:
    async with client.request("PROPFIND", "/", headers={"Depth": "0"}) as response:
        assert response.status == 401
        assert response.headers["WWW-Authenticate"] == 'Basic realm="WebDAV"'


async def test_wrong_password_is_401(client: Client) -> None:
    async with client.get(
        EPISODE, headers={"Authorization": encode_basic_auth("admin", "nope")}
    ) as response:
        assert response.status == 401


async def test_a_login_sets_an_hour_long_cookie_that_works_alone(client: Client) -> None:
    async with client.request("PROPFIND", "/", headers={**AUTH, "Depth": "0"}) as response:
        cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("nzb-webdav-backend=")
    assert "; path=/; httponly" in cookie
    value = cookie.split(";", 1)[0].split("=", 1)[1]
    client.session.cookie_jar.clear()
    headers = {"Depth": "0", "Cookie": f"nzb-webdav-backend={value}"}
    async with client.request("PROPFIND", "/", headers=headers) as response:
        assert response.status == 207
        assert "Set-Cookie" not in response.headers


async def test_a_forged_cookie_is_not_enough(client: Client) -> None:
    headers = {"Depth": "0", "Cookie": "nzb-webdav-backend=AAAAAGsCAGphZG1pbvSNJ7HRpkkicGkbrOl0YmU"}
    async with client.request("PROPFIND", "/", headers=headers) as response:
        assert response.status == 401


async def test_basic_scheme_name_is_case_sensitive(client: Client) -> None:
    token = base64.b64encode(b"admin:secret").decode()
    async with client.get(EPISODE, headers={"Authorization": f"basic {token}"}) as response:
        assert response.status == 401


async def test_options_needs_no_authentication(client: Client) -> None:
    async with client.options("/.ids/9") as response:
        assert response.status == 200
        assert response.headers["DAV"] == "1, 2"
        assert response.headers["Allow"] == (
            "COPY, DELETE, GET, HEAD, LOCK, MKCOL, MOVE, OPTIONS, PROPFIND, PROPPATCH, PUT, UNLOCK"
        )


async def test_auth_can_be_disabled(aiohttp_client: MakeClient, library: Library) -> None:
    client = await aiohttp_client(make_standin_app(library, user=None, password=None))
    async with client.request("PROPFIND", "/", headers={"Depth": "0"}) as response:
        assert response.status == 207


# --- the request log --------------------------------------------------------------------


async def test_request_log_records_what_reached_the_backend(
    aiohttp_client: MakeClient, library: Library
) -> None:
    app = make_standin_app(library)
    client = await aiohttp_client(app)
    assert app[REQUEST_LOG] == []
    async with client.request(
        "MOVE", "/.ids/9?x=%20y", headers={"Destination": "/content/x", "X-Test": "1"}
    ) as response:
        assert response.status == 401
    [record] = app[REQUEST_LOG]
    assert (record.method, record.raw_path, record.path) == ("MOVE", "/.ids/9?x=%20y", "/.ids/9")
    assert record.headers["Destination"] == "/content/x"
    assert record.headers["x-test"] == "1"


async def test_request_log_keeps_request_bodies(
    aiohttp_client: MakeClient, library: Library
) -> None:
    app = make_standin_app(library)
    client = await aiohttp_client(app)
    ask = b'<propfind xmlns="DAV:"><prop><getetag/></prop></propfind>'
    await propfind(client, "/", depth="0", body=ask)
    assert [r.body for r in app[REQUEST_LOG]] == [ask]


# --- write methods ----------------------------------------------------------------------


async def test_delete_in_content_is_forbidden_while_read_only(client: Client) -> None:
    async with client.delete(EPISODE, headers=AUTH) as response:
        assert response.status == 403


async def test_delete_in_content_removes_the_id_when_writable(
    aiohttp_client: MakeClient, library: Library
) -> None:
    client = await aiohttp_client(make_standin_app(library, enforce_readonly=False))
    async with client.delete(EPISODE, headers=AUTH) as response:
        assert response.status == 200
    assert (await get(client, uuid_path(EPISODE_UUID)))[0] == 404


async def test_deleting_a_symlink_only_hides_it(client: Client) -> None:
    link = EPISODE.replace("/content/", "/completed-symlinks/") + ".rclonelink"
    async with client.delete(link, headers=AUTH) as response:
        assert response.status == 204
    assert (await get(client, link))[0] == 404
    assert (await get(client, EPISODE))[0] == 200


async def test_put_into_a_queue_category_adds_the_nzb(client: Client) -> None:
    async with client.put("/nzbs/movies/New.Film.nzb", data=b"<nzb/>", headers=AUTH) as response:
        assert response.status == 201
    assert (await get(client, "/nzbs/movies/New.Film.nzb"))[2] == b"<nzb/>"


async def test_put_elsewhere_is_forbidden_unless_empty(client: Client) -> None:
    async with client.put("/content/tv/x.mkv", data=b"data", headers=AUTH) as response:
        assert response.status == 403
    async with client.put("/content/tv/empty.txt", data=b"", headers=AUTH) as response:
        assert response.status == 201
    _, _, body = await propfind(client, "/content/tv", headers={"Host": "h"})
    assert hrefs(body)[-1] == "http://h/content/tv/empty.txt"


async def test_copy_and_move_are_refused_with_a_207(client: Client) -> None:
    for method in ("COPY", "MOVE"):
        headers = {"Destination": "http://h/content/movies/Copy.mkv"}
        async with client.request(method, EPISODE, headers={**AUTH, **headers}) as response:
            assert response.status == 207
            body = await response.text()
        assert "<D:status>HTTP/1.1 403 Forbidden</D:status>" in body


async def test_proppatch_cannot_set_anything(client: Client) -> None:
    patch = (
        b'<propertyupdate xmlns="DAV:"><set><prop><displayname>x</displayname>'
        b'<foo xmlns="urn:x">1</foo></prop></set></propertyupdate>'
    )
    async with client.request("PROPPATCH", EPISODE, data=patch, headers=AUTH) as response:
        assert response.status == 207
        body = await response.text()
    statuses = [e.text for e in ET.fromstring(body).iter(f"{DAV}status")]
    assert statuses == ["HTTP/1.1 409 Conflict", "HTTP/1.1 404 Not Found"]


async def test_lock_gives_a_token_that_unlock_accepts(client: Client) -> None:
    lockinfo = (
        b'<lockinfo xmlns="DAV:"><lockscope><exclusive/></lockscope>'
        b"<locktype><write/></locktype><owner><href>me</href></owner></lockinfo>"
    )
    async with client.request("LOCK", EPISODE, data=lockinfo, headers=AUTH) as response:
        assert response.status == 200
        token = response.headers["Lock-Token"]
    headers = {**AUTH, "Lock-Token": token}
    async with client.request("UNLOCK", EPISODE, headers=headers) as response:
        assert response.status == 204


async def test_mkcol_is_forbidden(client: Client) -> None:
    async with client.request("MKCOL", "/content/tv/New", headers=AUTH) as response:
        assert response.status == 403


# --- the sample library and the command line --------------------------------------------


def test_sample_library_is_deterministic_and_covers_every_shard_prefix() -> None:
    library = Library.sample(n_ids=20, seed=7)
    assert sorted(library.ids) == sorted(Library.sample(n_ids=20, seed=7).ids)
    assert len(library.ids) == 20
    assert {u[0] for u in library.ids} == set("0123456789abcdef")
    paths = [f.path for f in library.files()]
    assert all(p.startswith(("/content/tv/", "/content/movies/", "/nzbs/")) for p in paths)
    assert sum(p.startswith("/nzbs/") for p in paths) == 3


async def test_command_line_serves_a_sample_library() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "nzbdav_standin",
        "--listen",
        "127.0.0.1:0",
        "--ids",
        "8",
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 20)).decode()
        assert line.startswith("nzbdav-standin ready at http://127.0.0.1:")
        url = line.split()[-1]
        async with ClientSession() as session:
            async with session.request(
                "PROPFIND", url + ".ids", headers={**AUTH, "Depth": "1"}
            ) as response:
                assert response.status == 207
    finally:
        process.terminate()
        await process.wait()
