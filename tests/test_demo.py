"""`shardproxy demo --once` runs end to end, as the README promises."""

from __future__ import annotations

import asyncio
import re
import sys

from tests.processes import free_port, require_program


async def test_demo_shows_each_shard_and_a_file_in_its_own_shard() -> None:
    require_program("rclone")
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "shardproxy.cli",
        "demo",
        "--once",
        "--port",
        str(port),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 120)
    text = output.decode()
    assert process.returncode == 0, text
    for shard, letters in enumerate(("0/ 1/ 2/ 3/", "4/ 5/ 6/ 7/", "8/ 9/ a/ b/", "c/ d/ e/ f/")):
        listing = re.search(rf"lsf shard{shard}:\s.*?\n((?:  .*\n)+)", text)
        assert listing is not None, text
        assert listing.group(1).split() == letters.split()
    found = re.search(r"lsf --format pst shard(\d):(\S+)\s.*\n  ([0-9a-f-]{36});(\d+);", text)
    assert found is not None, text
    assert found.group(3).startswith(found.group(2).replace("/", ""))
    assert ".ids-s3/" in text
