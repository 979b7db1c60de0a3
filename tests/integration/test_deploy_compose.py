"""The compose files `shardproxy gen` writes, read by podman-compose (`config`) as
`docker compose up` would read them: both layouts, both networks.

scripts/compose-test.sh runs the sidecar shape for real; here only the reading, which
needs no container engine (``--dry-run``).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from shardproxy.cli import main
from shardproxy.tools.deploy.compose import Network
from shardproxy.tools.deploy.model import Layout

RC_SECRET = "rc-$ecret"


def podman_compose() -> str:
    found = shutil.which("podman-compose", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.skip("podman-compose is not installed: run ./scripts/setup.sh")
    return found


@pytest.fixture(scope="module", params=list(Network), ids=[n.value for n in Network])
def generated(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("gen")
    flags = ["--rclone-rc-pass", RC_SECRET, "--nzbdav-pass", "pw", "--rc-user", "u"]
    code = main(
        ["gen", "--out", str(out), "--network", request.param.value, *flags, "--rc-pass", "p"]
    )
    assert code == 0
    return out


@pytest.mark.parametrize("layout", list(Layout), ids=[layout.value for layout in Layout])
def test_podman_compose_config_reads_the_compose_folder(generated: Path, layout: Layout) -> None:
    folder = generated / layout.value / "compose"
    done = subprocess.run(
        [podman_compose(), "--dry-run", "config"],
        cwd=folder,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    normalized = yaml.safe_load(done.stdout)
    written = yaml.safe_load((folder / "compose.yaml").read_text())
    assert set(normalized["services"]) == set(written["services"])
    # The RC password comes from .env, taken literally ($ and all).
    command = normalized["services"]["rclone-shard0"]["command"]
    assert command[command.index("--rc-pass") + 1] == RC_SECRET
    assert normalized["services"]["mergerfs"]["build"]["context"] == str(folder / "mergerfs")
    assert (folder / "mergerfs" / "Dockerfile").is_file()
