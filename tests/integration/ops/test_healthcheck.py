"""``shardproxy healthcheck`` against a real admin listener and a bare WebDAV port."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from shardproxy.tools.ports import free_port
from tests.helpers.processes import running


async def healthcheck(*env: tuple[str, str]) -> tuple[int, str]:
    """Run ``shardproxy healthcheck`` with these variables; (exit code, output)."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SHARDPROXY_")}
    environ.update(env)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "shardproxy.cli",
        "healthcheck",
        env=environ,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode()


async def test_healthcheck_follows_the_configured_admin_port(tmp_path: Path) -> None:
    proxy_port, admin_port = free_port(), free_port()
    argv = [sys.executable, "-m", "shardproxy.cli", "serve", "--backend", "http://127.0.0.1:1"]
    argv += ["--listen", f"127.0.0.1:{proxy_port}", "--admin-listen", f"127.0.0.1:{admin_port}"]
    async with running(argv, port=admin_port, log=tmp_path / "serve.log"):
        code, out = await healthcheck(("SHARDPROXY_ADMIN_LISTEN", f"127.0.0.1:{admin_port}"))
        assert (code, out) == (0, f"http://127.0.0.1:{admin_port}/healthz: HTTP 200\n")
        # The same check pointed at another port fails: the port is not hard-coded.
        code, out = await healthcheck(("SHARDPROXY_ADMIN_LISTEN", f"127.0.0.1:{free_port()}"))
        assert code == 1
        assert "Connection refused" in out
        # Without an admin listener it checks that the WebDAV port accepts.
        code, out = await healthcheck(("SHARDPROXY_LISTEN", f":{proxy_port}"))
        assert (code, out) == (
            0,
            f"127.0.0.1:{proxy_port} accepts connections (set admin_listen for /healthz)\n",
        )
    code, out = await healthcheck(("SHARDPROXY_LISTEN", f"127.0.0.1:{proxy_port}"))
    assert code == 1
