"""Running the `shardproxy` command as a user does: a real process."""

from __future__ import annotations

import asyncio
import os
import sys

SHARDPROXY = [sys.executable, "-m", "shardproxy.cli"]


async def run_cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        *SHARDPROXY,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={k: v for k, v in os.environ.items() if not k.startswith("SHARDPROXY_")} | (env or {}),
    )
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode()
