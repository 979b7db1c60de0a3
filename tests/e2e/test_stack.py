"""The whole system, both layouts, from the generated units: real FUSE, real rclone, mergerfs.

A Plex-style library of symlinks (built from NzbDav's ``.rclonelink`` files) is read
through mergerfs and the shard mounts; the stand-in's read log says what reached
"NzbDav". Each stack is started once per layout and shared by the tests of that layout,
which put back whatever they stop.
"""

from __future__ import annotations

import base64
import errno
import json
import os
import re
import shutil
import tempfile
import threading
import time
import urllib.request
import uuid as uuid_module
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from nzbdav_standin import READ_LOG, Library, expected_bytes, uuid_path
from shardproxy.core.shards import HEX_DIGITS, ShardMap
from shardproxy.tools.deploy.model import READ_FAILS_WITHIN, Layout
from shardproxy.tools.stack_runner import RC_PASS, RC_USER, LibraryLink, Stack, link_target
from tests.helpers.processes import fuse_problem
from tests.helpers.rclone_procs import current_rclone

SHARD_MAP = ShardMap.even(4)
MIB = 1024 * 1024


pytestmark = pytest.mark.skipif(fuse_problem() is not None, reason=str(fuse_problem()))


@pytest.fixture(scope="module", params=list(Layout), ids=[layout.value for layout in Layout])
def stack(request: pytest.FixtureRequest) -> Iterator[Stack]:
    """A running stack of the layout, torn down (mounts included) whatever happens."""
    parent = Path(tempfile.mkdtemp(prefix="shardproxy-e2e-"))
    try:
        with Stack(parent / "stack", request.param, library=Library.sample(16, seed=8)) as running:
            yield running
    finally:
        shutil.rmtree(parent, ignore_errors=True)


@pytest.fixture(scope="module")
def spare(stack: Stack) -> LibraryLink:
    """A link no test reads before the proxy-down test: nothing of it is cached."""
    return stack.links[-1]


@pytest.fixture(scope="module")
def read_links(stack: Stack, spare: LibraryLink) -> list[LibraryLink]:
    """Every link but the spare, read whole once (as a first playback would)."""
    links = [link for link in stack.links if link is not spare]
    for link in links:
        link.link.read_bytes()
    return links


def expected(stack: Stack, link: LibraryLink, start: int = 0, count: int | None = None) -> bytes:
    size = stack.library.ids[link.uuid].size
    end = size - 1 if count is None else start + count - 1
    return expected_bytes(uuid_path(link.uuid), size, start, end)


def read_span(path: Path, offset: int, count: int) -> bytes:
    with path.open("rb") as stream:
        stream.seek(offset)
        return stream.read(count)


def cached_names(stack: Stack, mount: str) -> set[str]:
    data = stack.cache_dir(mount) / "vfs"
    return {p.name for p in data.rglob("*") if p.is_file()} if data.exists() else set()


def backend_reads(stack: Stack) -> list[str]:
    return [record.path for record in stack.standin_app[READ_LOG]]


def test_library_links_point_where_the_layout_says(stack: Stack) -> None:
    assert len(stack.links) == 16
    merged = str(stack.deployment.merged)
    for link in stack.links:
        shard = SHARD_MAP.shard_of(link.uuid)
        folder = ".ids" if stack.layout is Layout.LINKS_UNCHANGED else f".ids-s{shard}"
        assert link.target == f"{merged}/{folder}{uuid_path(link.uuid)[len('/.ids') :]}"
        assert os.readlink(link.link) == link.target


def test_whole_files_read_through_the_links_are_the_backends_bytes(
    stack: Stack, read_links: list[LibraryLink]
) -> None:
    for link in read_links:
        assert link.link.read_bytes() == expected(stack, link), link.link


def test_player_like_seeks_read_the_backends_bytes(
    stack: Stack, read_links: list[LibraryLink]
) -> None:
    for link in read_links[:6]:
        size = stack.library.ids[link.uuid].size
        # Header, index at the end, then a jump into the middle, as players do (the
        # sample's files are 64 KiB or more).
        for offset, count in ((0, 4096), (size - 65536, 65536), (size // 2, 200_000), (7, 1)):
            got = read_span(link.link, offset, count)
            assert got == expected(stack, link, offset, min(count, size - offset)), (link, offset)


def test_every_file_is_cached_by_its_own_shard_and_rest_caches_nothing(
    stack: Stack, read_links: list[LibraryLink]
) -> None:
    for shard in range(4):
        mine = {link.uuid for link in read_links if SHARD_MAP.shard_of(link.uuid) == shard}
        assert mine, f"the sample has no file of shard {shard}"
        assert cached_names(stack, f"shard{shard}") == mine
    assert cached_names(stack, "rest") == set()


def post_forget(stack: Stack, params: dict[str, str]) -> dict[str, object]:
    """A ``vfs/forget`` exactly as NzbDav sends it to its one rclone: the proxy's RC."""
    token = base64.b64encode(f"{RC_USER}:{RC_PASS}".encode()).decode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{stack.rc_port}/vfs/forget",
        data=json.dumps(params).encode(),
        method="POST",
        headers={
            "Content-Type": "application/json; charset=utf-8",
            "Authorization": f"Basic {token}",
        },
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        reply: dict[str, object] = json.loads(response.read())
        return reply


def poll(condition: object, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return True
        time.sleep(0.1)
    return False


def test_a_forget_to_the_rc_endpoint_shows_a_new_file_and_nothing_before(
    stack: Stack, read_links: list[LibraryLink]
) -> None:
    neighbour = read_links[0].uuid  # its folder has been listed and is cached
    new_uuid = neighbour[:8] + str(uuid_module.uuid4())[8:]
    job = "/content/tv/New.Show.S01E01.1080p.WEB-DL-GRP"
    stack.standin(lambda: stack.library.add(f"{job}/New.Show.S01E01.mkv", MIB, uuid=new_uuid))
    shard = SHARD_MAP.shard_of(new_uuid)
    levels = "/".join(new_uuid[:5])
    in_shard = Path(stack.mount(f"shard{shard}").mountpoint) / levels / new_uuid
    # The shard's listing is cached for long: without a forget the new file is not there.
    # (mergerfs would find it through `rest`, which had never listed that folder.)
    assert not in_shard.exists()
    reply = post_forget(
        stack,
        {"dir": "/content/tv", "dir2": "/completed-symlinks/tv", "dir3": f".ids/{levels}"},
    )
    assert f".ids/{levels}" in reply["forgotten"]  # type: ignore[operator]
    assert poll(in_shard.exists), f"{in_shard} did not appear after the forget"
    merged = str(stack.deployment.merged)
    path = Path(link_target(merged + uuid_path(new_uuid), stack.layout, SHARD_MAP))
    assert path.read_bytes() == expected_bytes(uuid_path(new_uuid), MIB, 0, MIB - 1)
    assert new_uuid in cached_names(stack, f"shard{shard}")


def test_a_stopped_shard_fails_over_to_rest_and_serves_from_its_cache_again(
    stack: Stack, read_links: list[LibraryLink]
) -> None:
    shard = 2
    link = next(link for link in read_links if SHARD_MAP.shard_of(link.uuid) == shard)
    stack.kill_mount(f"shard{shard}")  # a crash: the mount point is left stale
    try:
        before = len(backend_reads(stack))
        assert read_after_failover(link.link) == expected(stack, link)
        # Read through `rest`: uncached, from the backend, and not into any cache.
        assert uuid_path(link.uuid) in backend_reads(stack)[before:]
        assert link.uuid not in cached_names(stack, "rest")
        if stack.layout is Layout.LINKS_UNCHANGED:
            # `rest` asks for /.ids/... instead of /.ids-s2/...: the proxy says so. (With
            # shard links, `rest` reads /.ids-s2/... too; only its header tells.)
            wanted = f"shard {shard}'s files are being read without its cache"
            assert poll(lambda: wanted in stack.log_text("shardproxy")), stack.log_tail(
                "shardproxy"
            )
    finally:
        stack.start_mount(f"shard{shard}")  # ExecStartPre clears the stale mount
    before = len(backend_reads(stack))
    assert link.link.read_bytes() == expected(stack, link)
    assert backend_reads(stack)[before:] == [], "the restarted shard did not use its cache"


def test_with_a_shard_down_a_forget_shows_a_new_file_through_rest(
    stack: Stack, read_links: list[LibraryLink]
) -> None:
    """rest lists the dead shard's folders for years (--dir-cache-time): a forget reaches it."""
    shard = 2
    link = next(link for link in read_links if SHARD_MAP.shard_of(link.uuid) == shard)
    stack.kill_mount(f"shard{shard}")
    try:
        # A read through the fail-over: rest now holds the file's folder in its cache.
        assert read_after_failover(link.link) == expected(stack, link)
        new_uuid = link.uuid[:8] + str(uuid_module.uuid4())[8:]  # the same folder
        job = "/content/tv/Late.Show.S01E01.1080p.WEB-DL-GRP"
        stack.standin(lambda: stack.library.add(f"{job}/Late.Show.S01E01.mkv", MIB, uuid=new_uuid))
        merged = str(stack.deployment.merged)
        path = Path(link_target(merged + uuid_path(new_uuid), stack.layout, SHARD_MAP))
        assert not path.exists(), "rest listed the folder anew without being told"
        levels = "/".join(new_uuid[:5])
        reply = post_forget(stack, {"dir": f".ids/{levels}"})
        # The shard is down, so the call says it will retry there; rest got it now.
        assert "will retry" in str(reply.get("notForgotten")), reply
        assert poll(path.exists), f"{path} did not appear through rest after the forget"
        assert path.read_bytes() == expected_bytes(uuid_path(new_uuid), MIB, 0, MIB - 1)
    finally:
        stack.start_mount(f"shard{shard}")


def read_after_failover(path: Path, limit: float = 15.0) -> bytes:
    """Read ``path``, allowing the moments after a crash when the dead mount still answers.

    For about a second (rclone's --attr-timeout) the kernel still knows the crashed
    mount's entries, mergerfs picks that branch, and the open fails with ENOTCONN; after
    that the branch is skipped and `rest` serves the file.
    """
    deadline = time.monotonic() + limit
    while True:
        try:
            return path.read_bytes()
        except OSError as error:
            if error.errno != errno.ENOTCONN or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def read_in_thread(path: Path, limit: float) -> tuple[BaseException | None, float, bool]:
    """Read ``path`` whole in a thread; (error, seconds, finished within ``limit``)."""
    outcome: list[BaseException | None] = []

    def read() -> None:
        try:
            path.read_bytes()
            outcome.append(None)
        except OSError as error:
            outcome.append(error)

    started = time.monotonic()
    worker = threading.Thread(target=read, daemon=True)
    worker.start()
    worker.join(limit)
    return (outcome[0] if outcome else None), time.monotonic() - started, bool(outcome)


def test_with_the_proxy_stopped_an_uncached_read_fails_within_the_bound(
    stack: Stack, spare: LibraryLink
) -> None:
    os.stat(spare.link)  # Plex scanned it: the listing is cached, the bytes are not
    stack.stop_proxy()
    try:
        error, seconds, finished = read_in_thread(spare.link, 3 * READ_FAILS_WITHIN)
        assert finished, "the read still hangs with the proxy stopped"
        assert isinstance(error, OSError), "a read with the proxy stopped returned data"
        assert seconds < READ_FAILS_WITHIN, f"the read failed only after {seconds:.0f} s"
    finally:
        stack.start_proxy()
    assert spare.link.read_bytes() == expected(stack, spare)


def proxy_metric(stack: Stack, name: str, **labels: str) -> float:
    """The sum of the proxy's samples of ``name`` whose labels include ``labels``."""
    url = f"http://127.0.0.1:{stack.admin_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as reply:
        text = reply.read().decode()
    total = 0.0
    for found in re.finditer(rf"^{re.escape(name)}{{(.*)}} (\S+)$", text, re.MULTILINE):
        sample = dict(re.findall(r'(\w+)="([^"]*)"', found[1]))
        if labels.items() <= sample.items():
            total += float(found[2])
    return total


def shard0_counts(stack: Stack) -> tuple[float, float, float]:
    """Shard 0's view as the proxy counted it: answered PROPFINDs, 5xx replies, and
    failures of NzbDav on its behalf."""
    return (
        proxy_metric(stack, "shardproxy_requests_total", shard="0", status_class="2xx"),
        proxy_metric(stack, "shardproxy_requests_total", shard="0", status_class="5xx"),
        proxy_metric(stack, "shardproxy_upstream_errors_total", shard="0"),
    )


def test_with_nzbdav_down_a_restarted_shard_says_at_once_another_shards_file_is_not_its(
    stack: Stack, read_links: list[LibraryLink]
) -> None:
    """mergerfs asks shard 0 first for every path. Restarted while NzbDav is down, shard
    0 has no listing cached; the proxy answers its view's upper levels, so shard 0 says
    "not here" at once, and the owner's cached listing answers the stat."""
    if stack.layout is not Layout.LINKS_UNCHANGED:
        pytest.skip("with shard links, mergerfs finds .ids-s<N> only on shard N's branch")
    owner = 2
    neighbour = next(link for link in read_links if SHARD_MAP.shard_of(link.uuid) == owner)
    # Under a second level no link has: mergerfs has no entry cached on the way there, so
    # it asks every branch, shard 0 first, for each level (an uncached Plex scan's stat).
    used = {link.uuid[1] for link in stack.links if link.uuid[0] == neighbour.uuid[0]}
    second = next(c for c in HEX_DIGITS if c not in used)
    new_uuid = neighbour.uuid[0] + second + neighbour.uuid[2:]
    levels = "/".join(new_uuid[:5])
    job = "/content/tv/Virtual.Levels.S01E01.1080p.WEB-DL-GRP"
    stack.standin(lambda: stack.library.add(f"{job}/Virtual.Levels.S01E01.mkv", MIB, uuid=new_uuid))
    post_forget(stack, {"dir": f".ids/{levels}"})
    in_owner = Path(stack.mount(f"shard{owner}").mountpoint) / levels / new_uuid
    assert poll(in_owner.exists), "the owner did not list the new file"  # and keeps it
    stack.stop_standin()
    try:
        stack.kill_mount("shard0")
        stack.start_mount("shard0")  # nothing cached, and NzbDav cannot be asked
        before = shard0_counts(stack)
        size = (Path(stack.deployment.merged) / ".ids" / levels / new_uuid).stat().st_size
        after = shard0_counts(stack)
    finally:
        stack.start_standin()
        shard0 = stack.processes.get("shard0")
        if shard0 is None or shard0.poll() is not None:
            stack.start_mount("shard0")
    assert size == MIB
    answered, failed, backend_failures = (a - b for a, b in zip(after, before, strict=True))
    assert (failed, backend_failures) == (0, 0), "shard 0 was sent to NzbDav, and waited"
    assert answered >= 1, "shard 0 was not asked: the test did not test anything"


@contextmanager
def stack_on_current_rclone(layout: Layout) -> Iterator[Stack]:
    """A stack of ``layout`` whose mounts run rclone 1.75.2, torn down whatever happens."""
    rclone = current_rclone()
    if rclone is None:
        pytest.skip("rclone 1.75.2 is not in .tools/rclone-current: run ./scripts/setup.sh")
    parent = Path(tempfile.mkdtemp(prefix="shardproxy-e2e-"))
    try:
        with Stack(
            parent / "stack", layout, library=Library.sample(16, seed=8), rclone=rclone
        ) as s:
            yield s
    finally:
        shutil.rmtree(parent, ignore_errors=True)


def test_the_units_run_on_a_current_rclone_too() -> None:
    """The same generated units with rclone 1.75.2 (which also gets min free space)."""
    with stack_on_current_rclone(Layout.LINKS_UNCHANGED) as s:
        assert "--vfs-cache-min-free-space" in s.units["shardproxy-rclone-shard0.service"]
        for link in s.links:
            assert link.link.read_bytes() == expected(s, link), link.link
        for shard in range(4):
            mine = {link.uuid for link in s.links if SHARD_MAP.shard_of(link.uuid) == shard}
            assert cached_names(s, f"shard{shard}") == mine
        assert cached_names(s, "rest") == set()


def test_a_new_import_links_into_its_shard_through_the_generated_shard_links_mounts() -> None:
    """The shard-links layout as gen writes it, with a current rclone: NzbDav imports a
    file, sends its forget, and the new ``.rclonelink`` shows through the mounts as a
    symlink into the owning shard's view, whose rclone caches the bytes."""
    with stack_on_current_rclone(Layout.SHARD_LINKS) as s:
        merged = str(s.deployment.merged)
        new_uuid = "9" + str(uuid_module.uuid4())[1:]  # shard 2 owns 8-b
        shard, levels = SHARD_MAP.shard_of(new_uuid), "/".join(new_uuid[:5])
        job = "New.Show.S01E02.1080p.WEB-DL-GRP"
        s.standin(
            lambda: s.library.add(f"/content/tv/{job}/New.Show.S01E02.mkv", MIB, uuid=new_uuid)
        )
        # What NzbDav sends after an import: the folders that changed.
        post_forget(
            s,
            {"dir": "/content/tv", "dir2": "/completed-symlinks/tv", "dir3": f".ids/{levels}"},
        )
        link = Path(merged) / "completed-symlinks" / "tv" / job / "New.Show.S01E02.mkv"
        assert poll(link.is_symlink), f"{link} did not appear as a symlink"
        assert os.readlink(link) == f"{merged}/.ids-s{shard}/{levels}/{new_uuid}"
        assert link.read_bytes() == expected_bytes(uuid_path(new_uuid), MIB, 0, MIB - 1)
        for n in range(4):
            assert (new_uuid in cached_names(s, f"shard{n}")) == (n == shard), n
        assert cached_names(s, "rest") == set()
