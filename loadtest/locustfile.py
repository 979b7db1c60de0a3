"""Traffic like a Plex + NzbDav + rclone setup's, against a proxy serving the soak library.

- ``RcloneShard``: one rclone mount of one shard view. It walks its shard the way the
  VFS does before opening a file (``PROPFIND Depth: 1`` of each folder down to the
  file; the file must be listed with its size), then reads 128 MiB ranges at random
  offsets; often it hangs up early, as the VFS does when the player seeks.
- ``PlexScanner``: walks ``/content`` with Depth-1 listings and probes files (HEAD, the
  first and last 64 KiB).
- ``NzbDavForgets``: sends ``vfs/forget`` bursts for ``.ids`` folders to the RC endpoint.

Every byte read is compared with what the stand-in generates for that file (first,
last and one random 4 KiB of every read): a wrong byte is a failure, as is a wrong
status, length or listing. ``python -m loadtest.soak`` starts everything and runs this
file; to run it by hand against a running stack:

    .venv/bin/locust -f loadtest/locustfile.py --headless --host http://127.0.0.1:8765 \\
        --rc-url http://127.0.0.1:5572 --shards 4 --users 20 --run-time 60s
"""

from __future__ import annotations

import random
import xml.etree.ElementTree as ET
from typing import Any
from urllib.parse import quote, unquote

from locust import HttpUser, between, events, task
from locust.clients import ResponseContextManager

from loadtest.soak_library import file_at, shard_files, soak_library, view_path
from nzbdav_standin.catalog import StandinFile

DAV = "{DAV:}"
HEX = "0123456789abcdef"
READ_CHUNK = 1 << 20
CHECK = 4096
PROBE = 64 << 10
LIBRARY = soak_library()


def add_arguments(parser: Any) -> None:
    """The scenario's own command-line options."""
    parser.add_argument("--rc-url", default="", help="the proxy's RC endpoint (forget bursts)")
    parser.add_argument("--shards", type=int, default=4, help="shards of the proxy (even split)")
    parser.add_argument("--chunk-mib", type=int, default=128, help="size of one ranged read")


events.init_command_line_parser.add_listener(add_arguments)


def listed(listing: bytes) -> dict[str, int | None]:
    """Each entry of a multistatus body: its path and its size (None for a folder)."""
    found: dict[str, int | None] = {}
    for response in ET.fromstring(listing).iter(f"{DAV}response"):
        href = response.findtext(f"{DAV}href") or ""
        path = "/" + href.split("://", 1)[1].split("/", 1)[1] if "://" in href else href
        size = response.findtext(f".//{DAV}getcontentlength")
        is_folder = response.find(f".//{DAV}collection") is not None
        found[unquote(path).rstrip("/")] = None if is_folder else int(size or 0)
    return found


def wrong_bytes(file: StandinFile, start: int, data: bytes) -> str | None:
    """Why ``data`` (read from ``start``) is not the file's content, or None."""
    spots = {0, max(0, len(data) - CHECK)}
    if len(data) > CHECK:
        spots.add(random.randrange(0, len(data) - CHECK))
    for spot in sorted(spots):
        got = data[spot : spot + CHECK]
        if got != file.read(start + spot, start + spot + len(got) - 1):
            return f"wrong bytes at offset {start + spot}"
    return None


class Reader(HttpUser):
    """Shared by the users that read: a Depth-1 listing, a checked ranged read."""

    abstract = True

    def list_folder(self, folder: str, name: str) -> dict[str, int | None]:
        with self.client.request(
            "PROPFIND", quote(folder), headers={"Depth": "1"}, name=name, catch_response=True
        ) as reply:
            if reply.status_code != 207:
                reply.failure(f"PROPFIND {folder}: status {reply.status_code}")
                return {}
            try:
                return listed(reply.content)
            except ET.ParseError as exc:
                reply.failure(f"PROPFIND {folder}: malformed listing: {exc}")
                return {}

    def read(
        self, path: str, file: StandinFile, start: int, length: int, *, keep: int, name: str
    ) -> None:
        """GET ``length`` bytes at ``start``; read ``keep`` of them, then hang up."""
        end = start + length - 1
        with self.client.get(
            quote(path),
            headers={"Range": f"bytes={start}-{end}"},
            stream=True,
            name=name,
            catch_response=True,
        ) as reply:
            self.check_range(reply, file, start, end, keep)
            reply.close()

    def check_range(
        self, reply: ResponseContextManager, file: StandinFile, start: int, end: int, keep: int
    ) -> None:
        expected_range = f"bytes {start}-{end}/{file.size}"
        if reply.status_code != 206 or reply.headers.get("Content-Range") != expected_range:
            reply.failure(
                f"bytes={start}-{end}: {reply.status_code} {reply.headers.get('Content-Range')}"
            )
            return
        data = bytearray()
        for chunk in reply.iter_content(READ_CHUNK):
            data += chunk
            if len(data) >= keep:
                break
        data = data[:keep]
        complete = keep == end - start + 1
        if len(data) != keep:
            reply.failure(f"bytes={start}-{end}: {len(data)} bytes instead of {keep}")
        elif (why := wrong_bytes(file, start, bytes(data))) is not None:
            reply.failure(f"{why} (bytes={start}-{end}, {'whole' if complete else 'cut'})")


class RcloneShard(Reader):
    """One rclone mount of one shard view: walks to files, reads 128 MiB ranges."""

    weight = 8
    wait_time = between(1, 5)

    def on_start(self) -> None:
        options = self.environment.parsed_options
        shards = options.shards
        self.shard = random.randrange(shards)
        mine = "".join(c for v, c in enumerate(HEX) if v * shards // 16 == self.shard)
        self.files = shard_files(LIBRARY, mine)
        self.big = [f for f in self.files if f.size >= 64 << 20]
        self.chunk = options.chunk_mib << 20

    @task(1)
    def walk(self) -> None:
        """List every folder from the shard root down to a file, as the VFS does."""
        file = random.choice(self.files)
        path = view_path(file, self.shard)
        parts = path.strip("/").split("/")
        for depth in range(1, len(parts)):
            folder = "/" + "/".join(parts[:depth])
            entries = self.list_folder(folder + "/", f"walk level {depth - 1}")
            child = "/" + "/".join(parts[: depth + 1])
            if child not in entries:
                self.environment.events.request.fire(
                    request_type="PROPFIND",
                    name=f"walk level {depth - 1}",
                    response_time=0,
                    response_length=0,
                    exception=AssertionError(f"{child} missing from the listing of {folder}"),
                )
                return
            if depth == len(parts) - 1 and entries[child] != file.size:
                self.environment.events.request.fire(
                    request_type="PROPFIND",
                    name="walk level 4",
                    response_time=0,
                    response_length=0,
                    exception=AssertionError(f"{child} listed as {entries[child]} bytes"),
                )

    @task(3)
    def read_chunk(self) -> None:
        """A 128 MiB range; four times in ten the reader seeks away after a few MiB."""
        file = random.choice(self.big or self.files)
        length = min(self.chunk, file.size)
        start = random.randrange(0, file.size - length + 1)
        seeking = random.random() < 0.4
        keep = random.randint(1, 16) << 20 if seeking else length
        name = "128 MiB range, cut early" if seeking else "128 MiB range"
        self.read(
            view_path(file, self.shard), file, start, length, keep=min(keep, length), name=name
        )


class PlexScanner(Reader):
    """Plex scanning the library through the whole-library mount: walks, probes files."""

    weight = 1
    wait_time = between(2, 10)

    @task
    def scan(self) -> None:
        category = random.choice(["/content/movies", "/content/tv"])
        jobs = [
            p
            for p, size in self.list_folder(category + "/", "scan category").items()
            if size is None and p != category
        ]
        if not jobs:
            return
        job = random.choice(jobs)
        for path, size in self.list_folder(job + "/", "scan job").items():
            file = file_at(LIBRARY, path)
            if size is None or file is None:
                continue
            probe = min(PROBE, file.size)
            self.read(path, file, 0, probe, keep=probe, name="probe head")
            self.read(path, file, file.size - probe, probe, keep=probe, name="probe tail")


class NzbDavForgets(HttpUser):
    """NzbDav after imports and deletes: bursts of vfs/forget for .ids folders."""

    weight = 1
    wait_time = between(1, 5)

    @task
    def forget_burst(self) -> None:
        rc_url = self.environment.parsed_options.rc_url
        if not rc_url:
            return
        files = random.sample(list(LIBRARY.ids.values()), random.randint(1, 40))
        params = {}
        for n, file in enumerate(files, 1):
            assert file.uuid is not None
            folder = f".ids/{'/'.join(file.uuid[:5])}"
            params["dir" if n == 1 else f"dir{n}"] = folder
        with self.client.post(
            rc_url + "/vfs/forget", json=params, name="vfs/forget burst", catch_response=True
        ) as reply:
            if reply.status_code != 200:
                reply.failure(f"vfs/forget: status {reply.status_code}")
                return
            answer = reply.json()
            if answer.get("notForgotten"):
                reply.failure(f"vfs/forget: not forgotten: {answer['notForgotten']}")
