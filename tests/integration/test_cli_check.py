"""``shardproxy check`` and ``check --probe`` as a user runs them.

The probe asks a real NzbDav stand-in and real rclone processes with ``--rc`` (Debian's
1.60.1), plus a port nobody listens on; every answer is one line of the output.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

from nzbdav_standin import Library, make_standin_app
from shardproxy.tools.ports import free_port
from tests.helpers.cli import run_cli
from tests.helpers.rclone_procs import (
    RcloneRc,
    current_rclone,
    debian_rclone,
    make_rclone,
    start_all,
)

RC_USER, RC_PASS = "rc", "rc-secret"


@dataclass
class Rclones:
    with_auth: RcloneRc
    open: RcloneRc


@pytest.fixture(scope="module")
def rclones() -> Iterator[Rclones]:
    """Two rclones with an RC port: one wants credentials, one takes anyone (loopback)."""
    binary = debian_rclone()
    if binary is None:
        pytest.skip("rclone is not installed (apt-get install rclone gives 1.60.1)")
    with tempfile.TemporaryDirectory(prefix="probe-") as tmp:
        base = Path(tmp)
        procs = Rclones(
            make_rclone(binary, base, "shard0", user=RC_USER, password=RC_PASS),
            make_rclone(binary, base, "shard1"),
        )
        start_all([procs.with_auth, procs.open])
        try:
            yield procs
        finally:
            procs.with_auth.stop()
            procs.open.stop()


@pytest.fixture
async def nzbdav() -> AsyncIterator[str]:
    """The NzbDav stand-in, with NzbDav's usual credentials (admin / secret)."""
    server = TestServer(make_standin_app(Library.sample(4, seed=1)))
    await server.start_server()
    try:
        yield str(server.make_url("/").origin())
    finally:
        await server.close()


def rc_args(rclones: Rclones, *, shard0: str | None = None) -> list[str]:
    """Flags for shards 0 (with credentials) and 1, and shard 1's rclone as the fallback."""
    with_auth = shard0 or str(rclones.with_auth.rc_url)
    open_url = str(rclones.open.rc_url)
    return [
        "--shards=2",
        "--rc-listen=127.0.0.1:5575",
        f"--shard-rc=0={with_auth}",
        f"--shard-rc=1={open_url}",
        f"--rc-fallback={open_url}",
    ]


def line_of(out: str, what: str) -> str:
    """The probe's line about ``what`` (``backend``, ``shard 0 rc``, ...)."""
    found = [line for line in out.splitlines() if line[4:].strip().startswith(what)]
    assert len(found) == 1, out
    return found[0]


# --- plain check ----------------------------------------------------------------------------


async def test_check_warns_when_rc_listen_is_unset() -> None:
    code, out = await run_cli("check")
    assert code == 0, out
    assert "warning: rc_listen is not set" in out
    assert "--rc-listen 127.0.0.1:5575" in out


async def test_check_names_the_shards_without_an_rc_url() -> None:
    code, out = await run_cli(
        "check", "--rc-listen=127.0.0.1:5575", "--shard-rc=0=http://127.0.0.1:5570"
    )
    assert code == 0, out
    assert "warning: shard(s) 1, 2, 3 have no RC URL" in out
    assert "--shard-rc 1=http://USER:PASS@127.0.0.1:5571" in out
    assert "warning: rc_fallback is not set" in out


async def test_check_has_no_warning_when_every_rclone_has_an_rc_url(rclones: Rclones) -> None:
    code, out = await run_cli("check", *rc_args(rclones))
    assert code == 0, out
    assert "warning" not in out


# --- check --probe -----------------------------------------------------------------------------


async def test_probe_reports_the_backend_and_every_rclone_on_a_line_each(
    nzbdav: str, rclones: Rclones
) -> None:
    code, out = await run_cli("check", "--probe", f"--backend={nzbdav}", *rc_args(rclones))
    assert code == 0, out
    backend = line_of(out, "backend")
    assert backend.startswith("ok")
    assert f"{nzbdav}/  answers, needs credentials (401)" in backend
    shard0 = line_of(out, "shard 0 rc")
    assert shard0.startswith("ok")
    # The URL is shown without the credentials it carries.
    assert f"http://127.0.0.1:{rclones.with_auth.rc_port}/rc/noop  rclone answers" in shard0
    assert RC_PASS not in out
    assert line_of(out, "shard 1 rc").startswith("ok")
    assert line_of(out, "fallback 0 rc").startswith("ok")


async def test_probe_logs_in_to_nzbdav_with_its_credentials(nzbdav: str, rclones: Rclones) -> None:
    code, out = await run_cli(
        "check",
        "--probe",
        f"--backend={nzbdav}",
        "--nzbdav-user=admin",
        "--nzbdav-pass=secret",
        *rc_args(rclones),
    )
    assert code == 0, out
    assert "answers (207 Multi-Status)" in line_of(out, "backend")


async def test_probe_fails_on_wrong_nzbdav_credentials(nzbdav: str, rclones: Rclones) -> None:
    code, out = await run_cli(
        "check", "--probe", f"--backend={nzbdav}", "--nzbdav-pass=wrong", *rc_args(rclones)
    )
    assert code == 1, out
    backend = line_of(out, "backend")
    assert backend.startswith("FAIL")
    assert "refused the credentials (401): check nzbdav_user and nzbdav_pass" in backend


async def test_probe_fails_on_a_dead_rc_port_and_names_it(nzbdav: str, rclones: Rclones) -> None:
    dead = free_port()
    args = rc_args(rclones, shard0=f"http://127.0.0.1:{dead}")
    code, out = await run_cli("check", "--probe", f"--backend={nzbdav}", *args)
    assert code == 1, out
    shard0 = line_of(out, "shard 0 rc")
    assert shard0.startswith("FAIL")
    assert f"http://127.0.0.1:{dead}/rc/noop  unreachable: Connection refused" in shard0
    assert line_of(out, "shard 1 rc").startswith("ok")


async def test_probe_fails_on_wrong_rc_credentials(nzbdav: str, rclones: Rclones) -> None:
    port = rclones.with_auth.rc_port
    args = rc_args(rclones, shard0=f"http://{RC_USER}:wrong@127.0.0.1:{port}")
    code, out = await run_cli("check", "--probe", f"--backend={nzbdav}", *args)
    assert code == 1, out
    assert "refused the RC credentials (HTTP 401)" in line_of(out, "shard 0 rc")


async def test_probe_fails_when_nzbdav_is_down(rclones: Rclones) -> None:
    dead = free_port()
    code, out = await run_cli(
        "check", "--probe", f"--backend=http://127.0.0.1:{dead}", *rc_args(rclones)
    )
    assert code == 1, out
    backend = line_of(out, "backend")
    assert backend.startswith("FAIL")
    assert f"http://127.0.0.1:{dead}/  unreachable: Connection refused" in backend


def rclone_path(tmp_path: Path, binary: str | None) -> dict[str, str]:
    """A PATH on which ``rclone`` is ``binary``."""
    if binary is None:
        pytest.skip("that rclone is not installed: run ./scripts/setup.sh")
    (tmp_path / "rclone").symlink_to(binary)
    return {"PATH": f"{tmp_path}:{os.environ['PATH']}"}


async def test_check_warns_when_rewritten_links_meet_an_rclone_older_than_1_69(
    tmp_path: Path,
) -> None:
    env = rclone_path(tmp_path, debian_rclone())
    code, out = await run_cli("check", "--rewrite-rclonelinks", env=env)
    assert code == 0, out
    assert f"warning: {tmp_path}/rclone is rclone 1.60, older than 1.69" in out


async def test_check_says_nothing_of_links_with_a_current_rclone(tmp_path: Path) -> None:
    env = rclone_path(tmp_path, current_rclone())
    code, out = await run_cli("check", "--rewrite-rclonelinks", env=env)
    assert code == 0, out
    assert "older than" not in out
