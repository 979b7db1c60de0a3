"""rclone-like traffic against a running shardproxy: Depth-1 listings and 128 MiB reads.

Each simulated rclone lists its shard folders the way rclone's VFS does (PROPFIND,
``Depth: 1``, empty body), then reads files in chunks at random offsets the way the
VFS cache fills (``Range: bytes=start-end``, 128 MiB by default), reading every byte
and checking the status and length of each reply.

    .venv/bin/locust -f loadtest/locustfile.py --headless --host http://127.0.0.1:8765 \\
        --users 16 --spawn-rate 4 --run-time 60s --folders /.ids-s0/0/1/2/3/4/

``--folders`` are listed at start; the files found in them are what gets read.
"""

from __future__ import annotations

import random
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any

from locust import HttpUser, between, events, task
from locust.exception import StopUser

DAV = "{DAV:}"
READ_CHUNK = 1 << 20


def add_arguments(parser: Any) -> None:
    """The scenario's own command-line options."""
    parser.add_argument(
        "--folders",
        default="/.ids-s0/0/1/2/3/4/",
        help="comma-separated shard folders to list and read files from",
    )
    parser.add_argument("--chunk-mib", type=int, default=128, help="size of one ranged read")


events.init_command_line_parser.add_listener(add_arguments)  # type: ignore[no-untyped-call]


@dataclass(frozen=True)
class RemoteFile:
    """A file a listing showed: its path on the proxy and its size."""

    path: str
    size: int


def files_in(listing: bytes) -> list[RemoteFile]:
    """The files (not folders) of a multistatus body, with their sizes."""
    found = []
    for response in ET.fromstring(listing).iter(f"{DAV}response"):
        href = response.findtext(f"{DAV}href") or ""
        if response.find(f".//{DAV}collection") is not None:
            continue
        size = response.findtext(f".//{DAV}getcontentlength")
        if size and int(size) > 0:
            # hrefs are full URLs or paths; only the path matters, as for rclone.
            path = "/" + href.split("://", 1)[-1].split("/", 1)[-1] if "://" in href else href
            found.append(RemoteFile(path, int(size)))
    return found


class RcloneVfs(HttpUser):
    """One rclone mount of one shard: lists folders, reads chunks of the files."""

    wait_time = between(0.0, 0.5)

    def on_start(self) -> None:
        options = self.environment.parsed_options
        self.folders = [f for f in options.folders.split(",") if f]
        self.chunk = options.chunk_mib << 20
        self.files: list[RemoteFile] = []
        for folder in self.folders:
            self.files += self.list_folder(folder)
        if not self.files:
            raise StopUser(f"no files found in {self.folders}")

    def list_folder(self, folder: str) -> list[RemoteFile]:
        with self.client.request(
            "PROPFIND",
            folder,
            headers={"Depth": "1"},
            name="Depth 1",
            catch_response=True,
        ) as reply:
            if reply.status_code != 207:
                reply.failure(f"PROPFIND {folder}: status {reply.status_code}")
                return []
            try:
                return files_in(reply.content)
            except ET.ParseError as exc:
                reply.failure(f"PROPFIND {folder}: malformed listing: {exc}")
                return []

    @task(1)
    def list_again(self) -> None:
        self.list_folder(random.choice(self.folders))

    @task(4)
    def read_chunk(self) -> None:
        file = random.choice(self.files)
        length = min(self.chunk, file.size)
        start = random.randrange(0, file.size - length + 1)
        end = start + length - 1
        name = f"{length >> 20} MiB range" if length >= 1 << 20 else "range"
        with self.client.get(
            file.path,
            headers={"Range": f"bytes={start}-{end}"},
            stream=True,
            name=name,
            catch_response=True,
        ) as reply:
            # A range covering the whole file may be answered 200 (NzbDav does).
            allowed = (206,) if length < file.size else (200, 206)
            if reply.status_code not in allowed:
                reply.failure(f"bytes={start}-{end}: status {reply.status_code}")
                return
            got = sum(len(chunk) for chunk in reply.iter_content(READ_CHUNK))
            if got != length:
                reply.failure(f"bytes={start}-{end}: {got} bytes instead of {length}")
