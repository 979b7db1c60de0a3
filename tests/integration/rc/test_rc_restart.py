"""The RC retry queue survives a restart: a real proxy process, a real shard rclone.

NzbDav ignores the reply to a forget, so a forget that a restart loses is a file that
never shows up in the mount. Here the shard's rclone is down when the forget comes,
the proxy is killed and started again, and only then does the rclone come up.
"""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from shardproxy.tools.ports import free_port
from tests.helpers.processes import running, serve_argv
from tests.helpers.rclone_procs import debian_rclone, go_map, make_rclone

FORGOTTEN = ".ids/9/6/1/b/0"  # first character 9: shard 2 of 4

pytestmark = pytest.mark.rclone


async def test_a_forget_for_a_dead_shard_is_delivered_after_a_proxy_restart(
    tmp_path: Path,
) -> None:
    binary = debian_rclone()
    if binary is None:
        pytest.skip("rclone is not installed: run ./scripts/setup.sh")
    shard = make_rclone(binary, tmp_path, "shard2", protocol="webdav")
    port, rc_port = free_port(), free_port()
    argv = serve_argv(
        "http://127.0.0.1:9",
        port,
        tmp_path,
        "--rc-listen",
        f"127.0.0.1:{rc_port}",
        "--shard-rc",
        f"2=http://127.0.0.1:{shard.rc_port}",
    )
    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
    async with running(argv, port=rc_port, log=first_log) as first:
        async with (
            aiohttp.ClientSession() as client,
            client.post(f"http://127.0.0.1:{rc_port}/vfs/forget", json={"dir": FORGOTTEN}) as reply,
        ):
            answer = await reply.json(content_type=None)
        assert answer["forgotten"] == []
        assert "will retry" in answer["notForgotten"][FORGOTTEN]
        # Killed outright: what the reply promised must already be on disk.
        first.kill()
        await first.wait()

    shard.start()
    try:
        shard.wait_ready()
        mark = shard.mark()
        async with running(argv, port=rc_port, log=second_log):
            calls = await shard.await_call(mark, "vfs/forget")
            assert [call.params for call in calls] == [go_map({"dir": "9/6/1/b/0"})]
        assert "reloaded 1 undelivered RC path(s)" in second_log.read_text()
    finally:
        shard.stop()
