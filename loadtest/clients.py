"""Load generators: whole-file GETs, rclone-like ranged reads, slow readers, and wrk.

The byte-moving clients are raw sockets reading into one reused buffer, so a client
costs a recv() per MiB and never becomes the thing measured. Every loop stops by a
deadline, and every reply is checked: status, length, and sample bytes against the file.
"""

from __future__ import annotations

import os
import random
import re
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

RECV_BUFFER = 1 << 20
SAMPLE = 4096


class BadReply(Exception):
    """A reply that was not what the request should have produced."""


@dataclass
class Reply:
    """What came back for one request."""

    status: int
    headers: dict[str, str]
    length: int
    head_sample: bytes
    tail_sample: bytes
    seconds: float


class Connection:
    """One keep-alive HTTP/1.1 client connection."""

    def __init__(self, port: int, *, rcvbuf: int | None = None) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.buffer = bytearray(RECV_BUFFER)
        self.view = memoryview(self.buffer)
        self.pending = b""

    def close(self) -> None:
        self.sock.close()

    def request(self, method: str, path: str, headers: dict[str, str] | None = None) -> Reply:
        """Send a request and read the whole reply, keeping only samples of the body."""
        started = time.perf_counter()
        lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        status, reply_headers = self._read_head()
        length = int(reply_headers.get("content-length", "-1"))
        if length < 0:
            raise BadReply(f"{method} {path}: no Content-Length in {reply_headers}")
        head_sample, tail_sample = self._read_body(length)
        elapsed = time.perf_counter() - started
        return Reply(status, reply_headers, length, head_sample, tail_sample, elapsed)

    def _read_head(self) -> tuple[int, dict[str, str]]:
        data = self.pending
        while b"\r\n\r\n" not in data:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise BadReply("connection closed before the reply's headers")
            data += chunk
        head, _, self.pending = data.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return int(status_line.split()[1]), headers

    def _read_body(self, length: int) -> tuple[bytes, bytes]:
        got = min(len(self.pending), length)
        head = self.pending[:SAMPLE]
        tail = self.pending[:got][-SAMPLE:]
        self.pending = self.pending[got:]
        while got < length:
            n = self.sock.recv_into(self.view, min(RECV_BUFFER, length - got))
            if n == 0:
                raise BadReply(f"connection closed after {got} of {length} body bytes")
            if len(head) < SAMPLE:
                head += bytes(self.view[: min(n, SAMPLE - len(head))])
            got += n
            if n >= SAMPLE:
                tail = bytes(self.view[n - SAMPLE : n])
            else:
                tail = (tail + bytes(self.view[:n]))[-SAMPLE:]
        return head, tail


def expect_bytes(reply: Reply, source: Path, offset: int, length: int) -> None:
    """Check a body's length and its first and last bytes against ``source``."""
    if reply.length != length:
        raise BadReply(f"expected {length} bytes at {offset}, got {reply.length}")
    with source.open("rb") as file:
        want_head = os.pread(file.fileno(), min(SAMPLE, length), offset)
        tail_len = min(SAMPLE, length)
        want_tail = os.pread(file.fileno(), tail_len, offset + length - tail_len)
    if (
        reply.head_sample[: len(want_head)] != want_head
        or reply.tail_sample[-tail_len:] != want_tail
    ):
        raise BadReply(f"wrong bytes in the {length} bytes at {offset}")


# --- whole file -----------------------------------------------------------------------------


def whole_get(port: int, path: str, source: Path) -> float:
    """GET the whole file on a new connection; seconds from request to last byte."""
    connection = Connection(port)
    try:
        reply = connection.request("GET", path)
    finally:
        connection.close()
    if reply.status != 200:
        raise BadReply(f"GET {path}: status {reply.status}")
    expect_bytes(reply, source, 0, source.stat().st_size)
    return reply.seconds


# --- ranged reads like rclone's VFS ---------------------------------------------------------


@dataclass
class RangedResult:
    """Bytes moved by the ranged readers and how long it took."""

    bytes: int = 0
    requests: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)


def ranged_reads(
    port: int, path: str, source: Path, *, chunk: int, readers: int, duration: float
) -> RangedResult:
    """``readers`` connections each reading ``chunk`` bytes at random offsets, keep-alive.

    No new read starts after ``duration``; reads under way finish and count.
    """
    size = source.stat().st_size
    result = RangedResult()
    lock = threading.Lock()
    started = time.perf_counter()
    deadline = started + duration

    def reader(seed: int) -> None:
        rng = random.Random(seed)
        connection = Connection(port)
        try:
            while time.perf_counter() < deadline:
                offset = rng.randrange(0, size - chunk)
                headers = {"Range": f"bytes={offset}-{offset + chunk - 1}"}
                reply = connection.request("GET", path, headers)
                if reply.status != 206:
                    raise BadReply(f"ranged GET: status {reply.status}")
                expect_bytes(reply, source, offset, chunk)
                with lock:
                    result.bytes += reply.length
                    result.requests += 1
        except (OSError, BadReply) as exc:
            with lock:
                result.errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            connection.close()

    threads = [threading.Thread(target=reader, args=(n,)) for n in range(readers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result.seconds = time.perf_counter() - started
    return result


# --- slow readers ---------------------------------------------------------------------------


@dataclass
class SlowReadersResult:
    """Samples of the proxy's memory while slow readers hung on."""

    samples: list[tuple[float, int]]
    connected: int
    bytes: int
    errors: list[str]
    at_end: int


def slow_readers(
    port: int,
    path: str,
    *,
    count: int,
    rate: int,
    duration: float,
    sample: Callable[[], int],
    at_end: Callable[[], int] | None = None,
) -> SlowReadersResult:
    """``count`` connections each reading the file at ``rate`` bytes/s for ``duration`` s.

    ``sample()`` (the proxy's RSS) is taken every half second; ``at_end()`` once at the
    end, while every connection is still open.
    """
    socks: list[socket.socket] = []
    errors: list[str] = []
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
    for _ in range(count):
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
            sock.sendall(request)
            sock.setblocking(False)
            socks.append(sock)
        except OSError as exc:
            errors.append(f"connect: {exc}")
    tick = 0.05
    per_tick = max(1, int(rate * tick))
    buffer = bytearray(per_tick)
    total = end_value = 0
    samples: list[tuple[float, int]] = []
    started = time.perf_counter()
    next_sample = started
    next_tick = started
    try:
        while (now := time.perf_counter()) < started + duration:
            if now >= next_sample:
                samples.append((now - started, sample()))
                next_sample += 0.5
            for sock in list(socks):
                try:
                    n = sock.recv_into(buffer, per_tick)
                except BlockingIOError:
                    continue
                except OSError as exc:
                    n = 0
                    errors.append(f"recv: {exc}")
                if n == 0:
                    errors.append(f"closed by the proxy after {total} bytes in all")
                    socks.remove(sock)
                    sock.close()
                total += n
            next_tick += tick
            time.sleep(max(0.0, next_tick - time.perf_counter()))
        samples.append((time.perf_counter() - started, sample()))
        end_value = at_end() if at_end is not None else 0
    finally:
        for sock in socks:
            sock.close()
    return SlowReadersResult(samples, count - len(errors), total, errors, end_value)


# --- wrk ------------------------------------------------------------------------------------


@dataclass
class WrkResult:
    """requests/s and latency percentiles of one wrk run."""

    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if match is None:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(match[1]) * _UNITS[match[2]]


def wrk(
    url: str,
    *,
    duration: float,
    connections: int,
    script: Path | None,
    cpus: str | None,
) -> WrkResult:
    """Run wrk with latency percentiles and parse what it prints."""
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s", "--latency"]
    if script is not None:
        argv += ["-s", str(script)]
    argv.append(url)
    if cpus:
        argv = ["taskset", "-c", cpus, *argv]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 30, check=False)
    out = done.stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.MULTILINE)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.MULTILINE)
    total = re.search(r"(\d+) requests in", out)
    if done.returncode != 0 or not (rps and p50 and p99 and total):
        raise BadReply(f"wrk failed ({done.returncode}): {out}{done.stderr}")
    errors = 0
    for pattern in (r"Non-2xx or 3xx responses: (\d+)", r"Socket errors: (.*)"):
        found = re.search(pattern, out)
        if found:
            errors += sum(int(n) for n in re.findall(r"\d+", found[1]))
    return WrkResult(float(rps[1]), _ms(p50[1]), _ms(p99[1]), int(total[1]), errors)


def propfind_script(work: Path) -> Path:
    """A wrk script sending Depth-1 PROPFINDs with rclone's empty (allprop) body."""
    path = work / "propfind.lua"
    path.write_text('wrk.method = "PROPFIND"\nwrk.headers["Depth"] = "1"\n')
    return path
