"""litmus, the WebDAV conformance suite, gives the same results through the proxy as direct.

The server is `rclone serve webdav` on a temporary folder: writable, real, and with its
own known litmus failures, which must be exactly the same through the proxy.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from shardproxy.tools.ports import free_port
from tests.helpers.processes import require_program, running
from tests.helpers.proxies import RunningProxy

RESULT_LINE = re.compile(r"^\s*\d+\.\s+(\w+)\.*\s.*?\b(pass|FAIL|WARNING|SKIPPED)\b", re.M)


async def litmus_results(url: str, workdir: Path) -> dict[str, str]:
    """Run every litmus suite against ``url``; ``{suite/test: pass|FAIL|WARNING|SKIPPED}``."""
    litmus = require_program("litmus")
    process = await asyncio.create_subprocess_exec(
        litmus,
        "-k",
        url,
        cwd=workdir,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 300)
    text = output.decode(errors="replace")
    results: dict[str, str] = {}
    suite = ""
    for line in text.splitlines():
        suite_match = re.match(r"-> running `(\w+)'", line)
        if suite_match:
            suite = suite_match.group(1)
        match = RESULT_LINE.match(line)
        if match:
            results[f"{suite}/{match.group(1)}"] = match.group(2)
    assert len(results) > 60, f"litmus ran too few tests:\n{text}"
    return results


async def test_litmus_through_the_proxy_matches_litmus_direct(
    proxy: RunningProxy, tmp_path: Path
) -> None:
    rclone = require_program("rclone")
    results = {}
    for name in ("direct", "proxied"):
        root = tmp_path / name / "served"
        root.mkdir(parents=True)
        port = free_port()
        argv = [rclone, "serve", "webdav", str(root), "--addr", f"127.0.0.1:{port}"]
        async with running(argv, port=port, log=tmp_path / f"{name}.log"):
            backend = f"http://127.0.0.1:{port}"
            if name == "direct":
                results[name] = await litmus_results(backend + "/", tmp_path / name)
            else:
                async with proxy(backend) as url:
                    results[name] = await litmus_results(f"{url}/", tmp_path / name)
    differences = {
        test: (results["direct"].get(test), results["proxied"].get(test))
        for test in results["direct"].keys() | results["proxied"].keys()
        if results["direct"].get(test) != results["proxied"].get(test)
    }
    assert differences == {}
    assert results["direct"]["basic/put_get"] == "pass"
