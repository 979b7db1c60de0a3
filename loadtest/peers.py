"""The servers a benchmark run starts: the origin, the proxies compared, and their files.

Everything listens on 127.0.0.1 on ports picked free at start, lives in one scratch
directory, and is stopped (its whole process group) when the run ends, however it ends.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# File names are UUIDs whose first five hex characters are the five folder levels.
BIG_UUID = "01234aaa-0000-4000-8000-000000000001"
SMALL_UUID = "01234bbb-0000-4000-8000-000000000002"
FILE_FOLDER = "/.ids/0/1/2/3/4"
# A fourth-level folder: sixteen virtual sub-folders, what rclone lists walking /.ids.
LISTED_FOLDER = "/.ids/0/1/2/3"
SMALL_SIZE = 10_000


def shard_path(path: str, shard: int = 0) -> str:
    """``/.ids/...`` as seen through shard ``shard``'s view."""
    return path.replace("/.ids/", f"/.ids-s{shard}/", 1)


# --- the origin's files ---------------------------------------------------------------------


def write_big_file(path: Path, size: int) -> None:
    """``size`` random bytes, so that a byte in the wrong place is noticed."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
    block = 4 << 20
    with path.open("wb") as out:
        written = 0
        while written < size:
            out.write(os.urandom(min(block, size - written)))
            written += block


def multistatus_body(folder: str, children: list[tuple[str, int | None]]) -> list[str]:
    """An NzbDav-style one-line 207 body listing ``folder`` (Depth 1), in pieces.

    Sizes of None are folders. hrefs are full URLs built from the request's Host (nginx
    fills ``$http_host`` in); the first is the request URL as sent. The pieces (one per
    entry) keep each nginx string under its 4 KiB limit on one parameter.
    """
    ok = "<D:status>HTTP/1.1 200 OK</D:status>"
    never = "Mon, 01 Jan 0001 00:00:00 GMT"
    folder_props = (
        "<D:resourcetype><D:collection/></D:resourcetype>"
        f"<D:getlastmodified>{never}</D:getlastmodified>"
        "<Z:Win32FileAttributes>00000010</Z:Win32FileAttributes>"
        "<D:quota-available-bytes>9223372036854775807</D:quota-available-bytes>"
        "<D:quota-used-bytes>0</D:quota-used-bytes>"
        "<D:getcontentlength>0</D:getcontentlength><D:iscollection>1</D:iscollection>"
    )

    def response(href: str, name: str, size: int | None) -> str:
        if size is None:
            props = f"<D:displayname>{name}</D:displayname>{folder_props}"
        else:
            props = (
                f"<D:displayname>{name}</D:displayname>"
                f"<D:getcontentlength>{size}</D:getcontentlength>"
                "<D:getcontenttype>application/octet-stream</D:getcontenttype>"
                "<D:getlastmodified>Sat, 01 Mar 2025 12:00:00 GMT</D:getlastmodified>"
                "<Z:Win32FileAttributes>00000080</Z:Win32FileAttributes>"
                "<D:resourcetype><D:item/></D:resourcetype><D:iscollection>0</D:iscollection>"
            )
        return (
            f"<D:response><D:href>{href}</D:href>"
            f"<D:propstat><D:prop>{props}</D:prop>{ok}</D:propstat></D:response>"
        )

    base = "http://$http_host"
    parts = [
        '<?xml version="1.0" encoding="utf-8"?>'
        '<D:multistatus xmlns:D="DAV:" xmlns:Z="urn:schemas-microsoft-com:">'
        + response(base + "$request_uri", folder.rsplit("/", 1)[-1], None)
    ]
    parts += [response(f"{base}{folder}/{name}", name, size) for name, size in children]
    parts[-1] += "</D:multistatus>"
    return parts


def listings(big_size: int) -> dict[str, list[str]]:
    """The folders the origin answers PROPFIND for, with their bodies."""
    return {
        LISTED_FOLDER: multistatus_body(LISTED_FOLDER, [(f"{n:x}", None) for n in range(16)]),
        FILE_FOLDER: multistatus_body(
            FILE_FOLDER, [(BIG_UUID, big_size), (SMALL_UUID, SMALL_SIZE)]
        ),
    }


# --- configuration files --------------------------------------------------------------------


def nginx_common(work: Path, name: str) -> str:
    """The parts of an nginx.conf every nginx of the run shares."""
    temp = work / f"{name}-temp"
    return f"""
daemon off;
master_process on;
worker_processes 1;
pid {work}/{name}.pid;
error_log {work}/{name}-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 100000;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
"""


def origin_conf(work: Path, port: int, root: Path, big_size: int) -> str:
    """nginx as NzbDav: files by sendfile, PROPFIND answered with prepared listings."""
    locations = []
    for index, (folder, pieces) in enumerate(listings(big_size).items()):
        escaped = folder.replace(".", r"\.")
        names = [f"$listing{index}_{n}" for n in range(len(pieces))]
        sets = "".join(
            f"\n            set {name} '{piece}';"
            for name, piece in zip(names, pieces, strict=True)
        )
        locations.append(
            f"""
        location ~ ^{escaped}/?$ {{
            if ($request_method = PROPFIND) {{ rewrite ^ /__listing{index} last; }}
            return 405;
        }}
        location = /__listing{index} {{
            internal;
            default_type 'text/xml; charset="utf-8"';{sets}
            return 207 "{"".join(names)}";
        }}"""
        )
    return (
        nginx_common(work, "origin")
        + f"""
    sendfile on;
    tcp_nopush on;
    open_file_cache max=64;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        root {root};
        {"".join(locations)}
    }}
}}
"""
    )


def nginx_proxy_conf(work: Path, port: int, origin: int) -> str:
    """nginx proxy_pass with stock buffering and a keep-alive upstream."""
    return (
        nginx_common(work, "nginx")
        + f"""
    upstream origin {{
        server 127.0.0.1:{origin};
        keepalive 64;
        keepalive_requests 100000;
    }}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"""
    )


def haproxy_conf(port: int, origin: int, *, splice: bool) -> str:
    """HAProxy 2.6 in HTTP mode reusing backend connections, with or without splicing."""
    return f"""
global
    nbthread 1
    maxconn 2000
defaults
    mode http
    timeout connect 5s
    timeout client 120s
    timeout server 120s
    http-reuse always
    {"option splice-response" if splice else "# no splicing"}
frontend bench
    bind 127.0.0.1:{port}
    default_backend origin
backend origin
    server origin 127.0.0.1:{origin}
"""


# --- processes ------------------------------------------------------------------------------


@dataclass
class Server:
    """One server process of the run (the root of its process tree)."""

    name: str
    port: int
    argv: list[str]
    cpus: str | None
    probe: str
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path = REPO
    process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, work: Path) -> None:
        """Start the process (pinned to ``cpus`` if given) in its own session."""
        argv = ["taskset", "-c", self.cpus, *self.argv] if self.cpus else self.argv
        log = (work / f"{self.name}.log").open("wb")
        self.process = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=self.cwd,
            env={**os.environ, **self.env},
            start_new_session=True,
        )
        log.close()

    def wait_ready(self, work: Path, timeout: float = 20.0) -> None:
        """Poll the probe URL until it answers 200; raise with the log if it never does."""
        deadline = time.monotonic() + timeout
        url = f"http://127.0.0.1:{self.port}{self.probe}"
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                break
            with contextlib.suppress(OSError, urllib.error.URLError):
                with urllib.request.urlopen(url, timeout=2) as reply:
                    if reply.status == 200:
                        reply.read()
                        return
            time.sleep(0.05)
        log = ""
        for path in (work / f"{self.name}.log", work / f"{self.name}-error.log"):
            if path.exists():
                log += path.read_text(errors="replace")[-2000:]
        code = None if self.process is None else self.process.poll()
        state = "is still running" if code is None else f"exited with status {code}"
        raise RuntimeError(f"{self.name} did not come up on {url} and {state}:\n{log}")

    def stop(self) -> None:
        """Stop the whole process group: TERM, then KILL after 5 s."""
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)


def nginx_server(name: str, work: Path, port: int, conf: str, cpus: str | None) -> Server:
    path = work / f"{name}.conf"
    path.write_text(conf)
    (work / f"{name}-temp").mkdir(exist_ok=True)
    argv = ["nginx", "-p", str(work), "-c", str(path)]
    return Server(name, port, argv, cpus, f"{FILE_FOLDER}/{SMALL_UUID}")


def haproxy_server(
    name: str, work: Path, port: int, origin: int, *, splice: bool, cpus: str | None
) -> Server:
    path = work / f"{name}.cfg"
    path.write_text(haproxy_conf(port, origin, splice=splice))
    argv = ["haproxy", "-db", "-f", str(path)]
    return Server(name, port, argv, cpus, f"{FILE_FOLDER}/{SMALL_UUID}")


def shardproxy_server(
    name: str, port: int, origin: int, *, workers: int, copy_only: bool, cpus: str | None
) -> Server:
    """shardproxy as ``shardproxy serve`` starts it; ``copy_only`` turns splicing off."""
    module = "loadtest.copy_path" if copy_only else "shardproxy.cli"
    argv = [sys.executable, "-m", module, "serve"]
    argv += ["--backend", f"http://127.0.0.1:{origin}", "--listen", f"127.0.0.1:{port}"]
    argv += ["--shards", "4", "--workers", str(workers), "--log-level", "warning"]
    # The origin is nginx, not NzbDav: its folders are files on disk, and the figures
    # measure listings filtered as they come (loadtest.virtual_walk measures the rest).
    argv += ["--no-virtual-levels"]
    env = {"PYTHONPATH": str(REPO)}
    return Server(name, port, argv, cpus, shard_path(f"{FILE_FOLDER}/{SMALL_UUID}"), env)


def bare_relay_server(
    name: str, port: int, origin: int, cpus: str | None, design: str = "app-session"
) -> Server:
    """A relay with no logic (see loadtest.bare_relay): a stack's own ceiling."""
    argv = [sys.executable, "-m", "loadtest.bare_relay", f"http://127.0.0.1:{origin}"]
    argv += [f"127.0.0.1:{port}", design]
    env = {"PYTHONPATH": str(REPO)}
    return Server(name, port, argv, cpus, f"{FILE_FOLDER}/{SMALL_UUID}", env)


def baseline_tree(work: Path, revision: str) -> Path:
    """shardproxy as it was at ``revision`` (a git commit), unpacked under ``work``."""
    tree = work / f"shardproxy-{revision}"
    tree.mkdir()
    archive = subprocess.run(
        ["git", "archive", revision], cwd=REPO, capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    return tree


def baseline_server(name: str, port: int, origin: int, tree: Path, cpus: str | None) -> Server:
    """shardproxy from ``tree`` (an older commit), started as ``shardproxy serve``."""
    argv = [sys.executable, "-m", "shardproxy.cli", "serve"]
    argv += ["--backend", f"http://127.0.0.1:{origin}", "--listen", f"127.0.0.1:{port}"]
    argv += ["--shards", "4", "--log-level", "warning"]
    # Run from the tree, so that `python -m` finds its modules, not this checkout's.
    env = {"PYTHONPATH": str(tree)}
    probe = shard_path(f"{FILE_FOLDER}/{SMALL_UUID}")
    return Server(name, port, argv, cpus, probe, env, cwd=tree)


def tool_version(argv: list[str]) -> str:
    """The first line a tool prints about its version, or 'missing'."""
    if shutil.which(argv[0]) is None:
        return "missing"
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    text = (done.stdout or done.stderr).strip()
    return text.splitlines()[0] if text else "unknown"
