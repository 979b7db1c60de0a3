"""Logs of a real ``shardproxy serve``: access lines, JSON lines, one line per bad request."""

from __future__ import annotations

import asyncio
import logging
import re
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import orjson

from nzbdav_standin import Library, make_standin_app
from shardproxy.telemetry.logs import JsonFormatter, MalformedRequestFilter
from shardproxy.tools.ports import free_port
from tests.helpers.processes import running

# Invalid Content-Length: aiohttp's parser refuses it, and used to log a traceback.
BAD_REQUEST = b"GET / HTTP/1.1\r\nContent-Length: x1\r\n\r\n"


@asynccontextmanager
async def standin() -> AsyncIterator[str]:
    """The NzbDav stand-in (auth off) on a loopback port; its base URL."""
    from aiohttp import web

    runner = web.AppRunner(make_standin_app(Library.sample(8, seed=1), user=None, password=None))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


@asynccontextmanager
async def serve(tmp_path: Path, *flags: str) -> AsyncIterator[tuple[str, Path]]:
    """``shardproxy serve`` against the stand-in; (its URL, its log file)."""
    port = free_port()
    log = tmp_path / "serve.log"
    async with standin() as backend:
        argv = [sys.executable, "-m", "shardproxy.cli", "serve", "--backend", backend]
        argv += ["--listen", f"127.0.0.1:{port}", *flags]
        async with running(argv, port=port, log=log):
            yield f"http://127.0.0.1:{port}", log


async def send_raw(port: int, data: bytes) -> bytes:
    """Send bytes on a fresh connection; what comes back before the server closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    reply = await reader.read()
    writer.close()
    return reply


async def eventually_in(log: Path, text: str) -> str:
    """Poll the log file until ``text`` shows up; the whole log."""
    for _ in range(400):
        content = log.read_text()
        if text in content:
            return content
        await asyncio.sleep(0.05)
    raise AssertionError(f"{text!r} never logged:\n{log.read_text()}")


async def test_a_malformed_request_logs_one_short_line(tmp_path: Path) -> None:
    async with serve(tmp_path) as (url, log):
        port = int(url.rsplit(":", 1)[1])
        before = log.stat().st_size
        count = 200
        for _ in range(count):
            assert (await send_raw(port, BAD_REQUEST)).startswith(b"HTTP/1.0 400 Bad Request")
        content = await eventually_in(log, "malformed request")
        while content.count("malformed request") < count:
            content = await eventually_in(log, "malformed request")
        written = log.stat().st_size - before
    lines = [line for line in content.splitlines() if "malformed request" in line]
    assert len(lines) == count
    assert "Traceback" not in content
    assert "INFO" in lines[0]
    assert "Content-Length" in lines[0]
    # 5,000 bad requests used to write 2.7 MB; now it is one line of ~150 bytes each.
    assert written < count * 200


async def test_access_log_is_off_by_default_and_one_line_per_request_when_on(
    tmp_path: Path,
) -> None:
    async with serve(tmp_path) as (url, log), aiohttp.ClientSession() as session:
        async with session.request("PROPFIND", url + "/.ids-s0/", headers={"Depth": "1"}) as r:
            assert r.status == 207
        assert "PROPFIND" not in log.read_text()
    async with serve(tmp_path, "--access-log") as (url, log), aiohttp.ClientSession() as session:
        async with session.request("PROPFIND", url + "/.ids-s0/", headers={"Depth": "1"}) as r:
            body = await r.read()
        content = await eventually_in(log, "PROPFIND")
    lines = [line for line in content.splitlines() if "PROPFIND" in line]
    assert len(lines) == 1
    found = re.search(r'"PROPFIND /.ids-s0/" 207 (\d+) [0-9.]+s "Python', lines[0])
    assert found is not None, lines[0]
    # Bytes sent, headers included (like nginx's $bytes_sent).
    assert len(body) < int(found.group(1)) < len(body) + 1000
    assert "shardproxy.access" in lines[0]


async def test_json_format_writes_one_object_a_line(tmp_path: Path) -> None:
    flags = ("--log-format", "json", "--access-log")
    async with serve(tmp_path, *flags) as (url, log), aiohttp.ClientSession() as session:
        async with session.get(url + "/.ids-s9/") as reply:
            assert reply.status == 404
        port = int(url.rsplit(":", 1)[1])
        await send_raw(port, BAD_REQUEST)
        await eventually_in(log, "malformed request")
        content = await eventually_in(log, '"status":404')
    entries = [orjson.loads(line) for line in content.splitlines() if line.strip()]
    access = [e for e in entries if e["logger"] == "shardproxy.access"]
    # The malformed request gets its access line too, as UNKNOWN /.
    assert [e["access"]["method"] for e in access] == ["GET", "UNKNOWN"]
    assert access[0]["access"]["method"] == "GET"
    assert access[0]["access"]["path"] == "/.ids-s9/"
    assert access[0]["access"]["status"] == 404
    assert access[0]["level"] == "info"
    malformed = [e for e in entries if "malformed request" in e["message"]]
    assert len(malformed) == 1
    assert "exception" not in malformed[0]
    started = [e for e in entries if e["logger"] == "shardproxy"]
    assert "shard views" in started[0]["message"]


def test_json_formatter_keeps_exceptions_in_one_line() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, "f", 1, "failed %s", ("it",), sys.exc_info())
    line = JsonFormatter().format(record)
    assert "\n" not in line
    entry = orjson.loads(line)
    assert entry["message"] == "failed it"
    assert "ValueError: boom" in entry["exception"]


def test_filter_leaves_other_errors_alone() -> None:
    try:
        raise RuntimeError("a bug")
    except RuntimeError:
        record = logging.LogRecord(
            "aiohttp.server", logging.ERROR, "f", 1, "Error handling request from %s",
            ("127.0.0.1",), sys.exc_info(),
        )  # fmt: skip
    assert MalformedRequestFilter().filter(record)
    assert record.exc_info is not None
    assert record.levelno == logging.ERROR
