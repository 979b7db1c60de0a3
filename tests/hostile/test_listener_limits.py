"""Every listener (WebDAV, RC, admin) holds against hostile clients the same way.

``shardproxy serve`` runs as a process with all three listeners, as users run it (on
uvloop), in front of the NzbDav stand-in; the clients are raw sockets. Nothing is
judged by time: each case asserts what the server sent and that it closed the
connection (within a 10 s bound on reading, far above the limits set here).
"""

from __future__ import annotations

import resource
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import pytest

from nzbdav_standin import Library, make_standin_app
from shardproxy.listeners.descriptors import descriptors_needed
from shardproxy.tools.ports import free_port
from tests.helpers.processes import serve_argv
from tests.helpers.rclone_procs import BackgroundApps

FILM = "/content/movies/Film/Film.mkv"
FILM_SIZE = 4096
LISTENERS = ("webdav", "rc", "admin")
# A complete request each listener answers with 200.
OK_REQUEST = {
    "webdav": b"OPTIONS /content/ HTTP/1.1\r\nHost: x\r\n\r\n",
    "rc": b"OPTIONS /rc/noop HTTP/1.1\r\nHost: x\r\n\r\n",
    "admin": b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
}
# aiohttp also closes a connection that has not sent a whole head within the
# keep-alive timeout: it is kept above the head timeout, as it is by default.
QUICK_LIMITS = (
    "--header-timeout",
    "0.5",
    "--body-timeout",
    "0.5",
    "--keepalive-timeout",
    "1",
)


@dataclass
class Server:
    """A running ``shardproxy serve``: its ports by listener, its log and process."""

    ports: dict[str, int]
    log: Path
    pid: int

    def open_file_limit(self) -> int:
        """The process's soft limit on open files, as /proc shows it."""
        for line in Path(f"/proc/{self.pid}/limits").read_text().splitlines():
            if line.startswith("Max open files"):
                return int(line.split()[3])
        raise AssertionError("no open-file limit in /proc")

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture(scope="module")
def nzbdav() -> Iterator[str]:
    library = Library()
    library.add(FILM, FILM_SIZE)
    apps = BackgroundApps()
    try:
        yield str(apps.serve(lambda: make_standin_app(library, user=None, password=None)))
    finally:
        apps.close()


def wait_for_ports(process: subprocess.Popen[bytes], ports: list[int], log: Path) -> None:
    deadline = time.monotonic() + 30
    for port in ports:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"shardproxy exited: {log.read_text()}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"port {port} not ready: {log.read_text()}") from None
                time.sleep(0.02)


@contextmanager
def serving(
    nzbdav: str,
    tmp_path: Path,
    *extra: str,
    descriptors: int | None = None,
    hard_limit: int | None = None,
) -> Iterator[Server]:
    """``shardproxy serve`` with WebDAV, RC and admin listeners, at most ``descriptors``
    open files when given (the hard limit ``hard_limit``, or the same); stopped (and
    reaped) on the way out, always."""
    ports = {name: free_port() for name in LISTENERS}
    log = tmp_path / f"serve-{ports['webdav']}.log"
    argv = serve_argv(
        nzbdav,
        ports["webdav"],
        tmp_path,
        *("--rc-listen", f"127.0.0.1:{ports['rc']}"),
        *("--admin-listen", f"127.0.0.1:{ports['admin']}"),
        *extra,
    )

    def limit_descriptors() -> None:
        if descriptors is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (descriptors, hard_limit or descriptors))

    with log.open("wb") as out:
        # Nothing but setrlimit runs between fork and exec: safe with the test's threads.
        process = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=limit_descriptors,  # noqa: PLW1509
        )
    try:
        wait_for_ports(process, list(ports.values()), log)
        yield Server(ports, log, process.pid)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def quick(nzbdav: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server whose head, body and keep-alive limits run out in half a second."""
    with serving(nzbdav, tmp_path_factory.mktemp("quick"), *QUICK_LIMITS) as server:
        yield server


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.settimeout(10)
    return sock


def until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes; fails if it has not within 10 s."""
    got = bytearray()
    while chunk := sock.recv(65536):
        got += chunk
    return bytes(got)


def exchange(port: int, data: bytes) -> bytes:
    """Send ``data`` on a new connection; everything the server sends until it closes."""
    with connect(port) as sock:
        sock.sendall(data)
        return until_closed(sock)


@pytest.mark.parametrize("listener", LISTENERS)
def test_a_huge_unfinished_head_is_431_and_closed(quick: Server, listener: str) -> None:
    with connect(quick.ports[listener]) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        line = b"X-Pad: " + b"a" * 8000 + b"\r\n"
        try:
            for _ in range(16):  # 128 KiB, four times header_max_size, and no blank line
                sock.sendall(line)
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused and closed while still sending: what a reset looks like
        reply = until_closed(sock)
    assert reply.startswith(b"HTTP/1.1 431 ")
    assert b"header_max_size" in reply


@pytest.mark.parametrize("listener", LISTENERS)
def test_a_slow_head_is_408_and_closed(quick: Server, listener: str) -> None:
    reply = exchange(quick.ports[listener], b"GET / HTTP/1.1\r\nHo")
    assert reply.startswith(b"HTTP/1.1 408 ")
    assert b"header_timeout" in reply


@pytest.mark.parametrize("listener", LISTENERS)
def test_an_idle_keepalive_connection_is_closed(quick: Server, listener: str) -> None:
    assert exchange(quick.ports[listener], OK_REQUEST[listener]).startswith(b"HTTP/1.1 200 ")


@pytest.mark.parametrize("listener", ["webdav", "rc"])
def test_a_stalled_body_is_408_and_closed(quick: Server, listener: str) -> None:
    path = b"/content/upload" if listener == "webdav" else b"/vfs/forget"
    reply = exchange(
        quick.ports[listener],
        b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b'Content-Length: 1000\r\n\r\n{"dir": ',
    )
    assert reply.startswith(b"HTTP/1.1 408 ")
    assert b"body_timeout" in reply


@pytest.mark.parametrize("listener", LISTENERS)
def test_connect_is_405_and_closed(quick: Server, listener: str) -> None:
    reply = exchange(quick.ports[listener], b"CONNECT /content/x HTTP/1.1\r\nHost: x\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 405 ")


def get_film(port: int) -> bytes:
    return exchange(
        port, b"GET " + FILM.encode() + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )


@contextmanager
def flood(port: int, count: int) -> Iterator[list[socket.socket]]:
    """``count`` connections to ``port``, each with half a head sent, open in the block."""
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.setblocking(False)
            socks.append(sock)
            with suppress(BlockingIOError):
                sock.connect(("127.0.0.1", port))
        for sock in socks:
            sock.settimeout(5)
            # Left waiting in the backlog, or refused: either way, not served.
            with suppress(OSError):
                sock.sendall(b"POST /vfs/forget HTTP/1.1\r\nHost: x\r\nX-Pad: aaaa")
        yield socks
    finally:
        for sock in socks:
            sock.close()


def test_a_flood_on_the_rc_port_leaves_webdav_its_descriptors(nzbdav: str, tmp_path: Path) -> None:
    # 64 descriptors in all; the RC listener may hold 16 connections, so 300 half-sent
    # heads on its port leave plenty for WebDAV clients and their NzbDav connections.
    with (
        serving(nzbdav, tmp_path, "--rc-max-connections", "16", descriptors=64) as server,
        flood(server.ports["rc"], 300),
    ):
        reply = get_film(server.ports["webdav"])
        for _ in range(200):
            if "its cap (rc_max_connections)" in server.log_text():
                break
            time.sleep(0.05)
        log = server.log_text()
    assert reply.startswith(b"HTTP/1.1 200 ")
    assert len(reply.partition(b"\r\n\r\n")[2]) == FILM_SIZE
    assert "RC listener has 16 connections open, its cap (rc_max_connections)" in log


def test_running_out_of_descriptors_is_logged_and_survived(nzbdav: str, tmp_path: Path) -> None:
    # The WebDAV cap (1024) is above the 64 descriptors the process may open, so the
    # flood runs the process out of them: accept() fails with EMFILE.
    with serving(nzbdav, tmp_path, descriptors=64) as server:
        with flood(server.ports["webdav"], 100):
            for _ in range(200):
                if "EMFILE" in server.log_text():
                    break
                time.sleep(0.05)
        # The flood has gone: the listener accepts again.
        reply = get_film(server.ports["webdav"])
        log = server.log_text()
    assert "WebDAV listener cannot accept: Too many open files (EMFILE)" in log
    assert reply.startswith(b"HTTP/1.1 200 ")


def test_a_low_open_file_limit_is_raised_to_what_the_caps_need(nzbdav: str, tmp_path: Path) -> None:
    need = descriptors_needed(1024, 64, 32)
    with serving(nzbdav, tmp_path, descriptors=256, hard_limit=need * 2) as server:
        assert server.open_file_limit() == need
        assert "open-file limit" not in server.log_text()


def test_an_open_file_limit_that_cannot_be_raised_is_said_once(nzbdav: str, tmp_path: Path) -> None:
    with serving(nzbdav, tmp_path, descriptors=256) as server:
        log = server.log_text()
    assert log.count("open-file limit is 256, below the") == 1
    assert "LimitNOFILE" in log
