"""The proxy facing broken backends and clients that hang up.

The backends here are raw asyncio servers that misbehave on purpose (truncated bodies,
malformed XML, silence), because no well-behaved server can be made to do that.
"""

from __future__ import annotations

import asyncio
import gzip
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import pytest

from tests.helpers.proxies import RunningProxy
from tests.helpers.raw_backend import Script, raw_backend

SHARD0_FILE = "/.ids-s0/0/1/2/3/4/01234567-89ab-cdef-0123-456789abcdef"


def closed_port() -> int:
    """A loopback port with nothing listening on it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_unreachable_backend_gives_502_naming_the_backend(proxy: RunningProxy) -> None:
    backend = f"http://127.0.0.1:{closed_port()}"
    async with proxy(backend) as url, aiohttp.ClientSession() as client:
        async with client.get(url / "content/file") as reply:
            body = await reply.text()
    assert reply.status == 502
    assert backend in body
    assert "unreachable" in body


async def test_silent_backend_gives_504_after_the_read_timeout(proxy: RunningProxy) -> None:
    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # until the proxy gives up and closes

    async with raw_backend(never_answer) as backend, proxy(backend, read_timeout=0.3) as url:
        async with aiohttp.ClientSession() as client, client.get(url / "content/x") as reply:
            body = await reply.text()
    assert reply.status == 504
    assert "did not answer within 0.3s" in body


async def test_truncated_large_body_is_cut_off_at_the_client(proxy: RunningProxy) -> None:
    length = 4 << 20

    async def half_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % length)
        writer.write(b"x" * (length // 2))
        await writer.drain()

    async with raw_backend(half_body) as backend, proxy(backend) as url:
        async with aiohttp.ClientSession() as client, client.get(url / "content/x") as reply:
            assert reply.status == 200
            assert reply.content_length == length
            with pytest.raises(aiohttp.ClientPayloadError):
                await reply.read()


async def test_truncated_small_body_is_a_502_naming_the_backend(proxy: RunningProxy) -> None:
    async def half_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 500)
        await writer.drain()

    async with raw_backend(half_body) as backend, proxy(backend) as url:
        async with aiohttp.ClientSession() as client, client.get(url / "content/x") as reply:
            text = await reply.text()
    assert reply.status == 502
    assert f"backend {backend} broke off its reply" in text


def multistatus_script(body: bytes, *, chunked: bool = False, missing: int = 0) -> Script:
    """A 207 with body; chunked without its last chunk, or ``missing`` bytes short."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = b'HTTP/1.1 207 Multi-Status\r\nContent-Type: text/xml; charset="utf-8"\r\n'
        if chunked:
            writer.write(head + b"Transfer-Encoding: chunked\r\n\r\n")
            writer.write(b"%x\r\n%s\r\n" % (len(body), body))
            await writer.drain()
            return  # no terminating chunk: the reply breaks off
        writer.write(head + b"Content-Length: %d\r\n\r\n%s" % (len(body) + missing, body))
        await writer.drain()

    return answer


@asynccontextmanager
async def shard_propfind(
    proxy: RunningProxy, script: Script, **settings: object
) -> AsyncIterator[tuple[str, aiohttp.ClientResponse]]:
    """A Depth-1 PROPFIND of /.ids-s0/ through the proxy to a raw backend running ``script``.

    The raw backend is not NzbDav: the proxy asks it for its listing (virtual_levels off).
    """
    settings = {"virtual_levels": False, **settings}
    async with raw_backend(script) as backend, proxy(backend, **settings) as url:
        async with (
            aiohttp.ClientSession() as client,
            client.request("PROPFIND", url / ".ids-s0/", headers={"Depth": "1"}) as reply,
        ):
            yield backend, reply


async def test_malformed_listing_gives_502_before_any_byte(proxy: RunningProxy) -> None:
    script = multistatus_script(b"<D:multistatus xmlns:D='DAV:'><D:response></D:href>")
    async with shard_propfind(proxy, script) as (backend, reply):
        body = await reply.text()
    assert reply.status == 502
    assert "malformed listing" in body
    assert backend in body


async def test_compressed_listing_is_a_502_naming_its_encoding(proxy: RunningProxy) -> None:
    # identity was asked for; a backend that compresses anyway cannot be filtered.
    payload = gzip.compress(b'<D:multistatus xmlns:D="DAV:"></D:multistatus>')

    async def gzipped(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(
            b"HTTP/1.1 207 Multi-Status\r\nContent-Encoding: GZip\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(payload), payload)
        )
        await writer.drain()

    async with shard_propfind(proxy, gzipped) as (_backend, reply):
        body = await reply.text()
    assert reply.status == 502
    assert "GZip-encoded listing although identity was asked" in body


LISTING_HEAD = b'<?xml version="1.0" encoding="utf-8"?><D:multistatus xmlns:D="DAV:">'
ENTRY = (
    b"<D:response><D:href>/.ids/0</D:href><D:propstat><D:prop><D:displayname>0"
    b"</D:displayname></D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat>"
    b"</D:response>"
)
BROKEN_TAIL = b"<D:response><D:href>/.ids/1"


@pytest.mark.parametrize("entries", [1, 1000])
async def test_listing_that_breaks_off_is_a_502(proxy: RunningProxy, entries: int) -> None:
    # Shard listings are read whole before anything is sent, however long they are.
    script = multistatus_script(LISTING_HEAD + ENTRY * entries + BROKEN_TAIL, chunked=True)
    async with shard_propfind(proxy, script) as (backend, reply):
        text = await reply.text()
    assert reply.status == 502
    assert f"backend {backend} sent a listing that broke off" in text


@pytest.mark.parametrize("chunked", [False, True])
async def test_listing_over_the_cap_is_a_502_naming_the_cap_and_the_setting(
    proxy: RunningProxy, chunked: bool
) -> None:
    body = LISTING_HEAD + ENTRY * 20 + b"</D:multistatus>"
    cap = len(body) - 1
    script = multistatus_script(body, chunked=chunked)
    async with shard_propfind(proxy, script, listing_max_bytes=cap) as (_, reply):
        text = await reply.text()
    assert reply.status == 502
    assert f"listing larger than {cap} bytes (listing_max_bytes)" in text
    assert "--listing-max-bytes" in text


async def test_listing_at_the_cap_is_filtered(proxy: RunningProxy) -> None:
    body = LISTING_HEAD + ENTRY * 20 + b"</D:multistatus>"
    script = multistatus_script(body)
    async with shard_propfind(proxy, script, listing_max_bytes=len(body)) as (_, reply):
        got = await reply.read()
    assert reply.status == 207
    assert got == body.replace(b"/.ids/0", b"/.ids-s0/0")


async def test_small_listing_shorter_than_its_content_length_is_a_502(
    proxy: RunningProxy,
) -> None:
    script = multistatus_script(LISTING_HEAD + ENTRY + b"</D:multistatus>", missing=10)
    async with shard_propfind(proxy, script) as (backend, reply):
        text = await reply.text()
    assert reply.status == 502
    assert f"backend {backend} broke off its reply" in text


async def test_small_listing_goes_out_with_a_content_length(proxy: RunningProxy) -> None:
    script = multistatus_script(LISTING_HEAD + ENTRY * 3 + b"</D:multistatus>")
    async with shard_propfind(proxy, script) as (_, reply):
        got = await reply.read()
    assert reply.status == 207
    assert reply.content_length == len(got)
    assert got.count(b"<D:href>/.ids-s0/0</D:href>") == 3


async def test_client_hangup_closes_the_backend_connection(proxy: RunningProxy) -> None:
    backend_saw_close = asyncio.Event()

    async def endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1099511627776\r\n\r\n")
        chunk = b"z" * 65536
        try:
            while True:
                writer.write(chunk)
                await writer.drain()
        except ConnectionError:
            backend_saw_close.set()

    async with raw_backend(endless) as backend, proxy(backend) as url:
        async with aiohttp.ClientSession() as client:
            reply = await client.get(url / "content/film.mkv")
            await reply.content.readexactly(1 << 20)
            reply.close()  # hang up mid-stream
        # Bounded wait for the event, not a timing assertion: the backend must see it.
        await asyncio.wait_for(backend_saw_close.wait(), timeout=20)


async def test_refused_paths_never_reach_the_backend(proxy: RunningProxy) -> None:
    reached = asyncio.Event()

    async def record(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        reached.set()
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")

    refused = {
        "/.ids-s0/4/": 404,  # 4 belongs to shard 1
        "/.ids-s9/0/": 404,  # no shard 9
        "/.ids-s0/%2e%2e/.ids/f/": 400,
        "/.ids-s0/0/../../.ids/f": 400,
        "/.ids-s0/0%2f..%2f4/": 400,
        "/.ids-s0/x/": 404,
        "/.ids-s0/0/0/0/0/0/f1234567-89ab-cdef-0123-456789abcdef": 404,
    }
    async with raw_backend(record) as backend, proxy(backend) as url:
        async with aiohttp.ClientSession() as client:
            for path, status in refused.items():
                target = f"{url}{path}"
                async with client.get(aiohttp.client.URL(target, encoded=True)) as reply:
                    text = await reply.text()
                assert (path, reply.status) == (path, status), text
                assert text.strip(), f"{path}: the refusal says why"
    assert not reached.is_set()


async def test_good_shard_file_reaches_backend_at_its_ids_path(proxy: RunningProxy) -> None:
    seen: list[bytes] = []

    async def record(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()

    async with raw_backend(record, heads=seen) as backend, proxy(backend) as url:
        async with aiohttp.ClientSession() as client:
            async with client.get(f"{url}{SHARD0_FILE}") as reply:
                assert await reply.read() == b"ok"
    assert seen[0].startswith(b"GET /.ids/0/1/2/3/4/01234567-89ab-cdef-0123-456789abcdef ")


async def test_destination_that_is_not_a_url_is_a_400(proxy: RunningProxy) -> None:
    reached = asyncio.Event()

    async def record(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        reached.set()

    async with raw_backend(record) as backend, proxy(backend) as url:
        async with aiohttp.ClientSession() as client:
            async with client.request(
                "MOVE", url / "content/a", headers={"Destination": "http://[::1"}
            ) as reply:
                text = await reply.text()
    assert reply.status == 400
    assert "Destination" in text
    assert not reached.is_set()


async def test_compressed_body_passes_through_byte_for_byte(proxy: RunningProxy) -> None:
    payload = gzip.compress(b"not to be touched " * 1000)
    head_seen: list[bytes] = []

    async def gzipped(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Type: text/plain\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(payload), payload)
        )
        await writer.drain()

    async with raw_backend(gzipped, heads=head_seen) as backend, proxy(backend) as url:
        async with aiohttp.ClientSession(auto_decompress=False) as client:
            async with client.get(
                url / "content/a.txt", headers={"Accept-Encoding": "gzip"}
            ) as reply:
                body = await reply.read()
    assert reply.headers["Content-Encoding"] == "gzip"
    assert reply.content_length == len(payload)
    assert body == payload
    assert b"accept-encoding: gzip" in head_seen[0].lower()


async def test_location_into_ids_is_shown_in_the_requests_shard_view(proxy: RunningProxy) -> None:
    async def redirect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(
            b"HTTP/1.1 301 Moved\r\nLocation: http://nzbdav:3000/.ids/9/6/1/b/0/\r\n"
            b"Content-Length: 0\r\n\r\n"
        )
        await writer.drain()

    async with raw_backend(redirect) as backend, proxy(backend, virtual_levels=False) as url:
        async with aiohttp.ClientSession() as client:
            async with client.get(url / ".ids-s2/9/6/1/b/0", allow_redirects=False) as reply:
                location = reply.headers["Location"]
    assert location == "http://nzbdav:3000/.ids-s2/9/6/1/b/0/"


async def test_backend_416_without_content_range_gets_the_size(proxy: RunningProxy) -> None:
    heads: list[bytes] = []

    async def unsatisfied(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # A 416 that does not say the size; the HEAD that asks for it is told.
        if heads[-1].startswith(b"HEAD "):
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n")
        else:
            writer.write(b"HTTP/1.1 416 Range Not Satisfiable\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        await reader.read()

    async with raw_backend(unsatisfied, heads) as backend, proxy(backend) as url:
        async with aiohttp.ClientSession() as client:
            async with client.get(
                url / "content/film.mkv", headers={"Range": "bytes=5000-6000"}
            ) as reply:
                await reply.read()
    assert reply.status == 416
    assert reply.headers["Content-Range"] == "bytes */1234"
