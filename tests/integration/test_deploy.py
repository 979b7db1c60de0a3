"""`shardproxy gen`'s files: real rclone reads the config, systemd verifies the units.

The commands in the units are checked against both rclones here; the end-to-end tests
in tests/e2e run them with real FUSE mounts.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path, PurePosixPath

import pytest
from hypothesis import given
from hypothesis import strategies as st
from yarl import URL

from shardproxy.config.layers import load_settings
from shardproxy.config.settings import HostPort
from shardproxy.tools.deploy.bundle import generate
from shardproxy.tools.deploy.files import (
    MERGERFS_UNIT,
    PROXY_UNIT,
    exec_line,
    obscure,
    parse_exec_line,
    rclone_conf,
    toml_text,
    unit_commands,
)
from shardproxy.tools.deploy.model import (
    Deployment,
    Layout,
    Programs,
    RcEndpoint,
    mergerfs_argv,
    mount_argv,
    mounts,
)
from tests.helpers.rclone_procs import current_rclone, debian_rclone

PASSWORD = 's3cret %$ "quoted" \\ ünï'


def deployment(shards: int = 4, root: str = "/mnt") -> Deployment:
    """A deployment with every path and port distinct, as gen builds it."""
    return Deployment(
        proxy_url=URL("http://127.0.0.1:8765"),
        shard_count=shards,
        mount_root=PurePosixPath(root),
        config_dir=PurePosixPath("/etc/shardproxy"),
        cache_dirs=tuple(PurePosixPath(f"/srv/disk{n}/rclone-cache") for n in range(shards)),
        rest_cache_dir=PurePosixPath("/var/cache/shardproxy/rest"),
        cache_max_size={1: "500G"},
        cache_min_free_space={},
        nzbdav_user="admin",
        nzbdav_pass=PASSWORD,
        shard_rc=tuple(
            RcEndpoint(HostPort("127.0.0.1", 5570 + n), "rclone", "rc%pass") for n in range(shards)
        ),
        rest_rc=RcEndpoint(HostPort("127.0.0.1", 5570 + shards), "rclone", "rc%pass"),
    )


def real_programs(version: tuple[int, int] = (1, 60)) -> Programs:
    """The programs of this machine, so systemd-analyze finds every executable."""
    found = {}
    for name, program in (("rclone", "rclone"), ("mergerfs", "mergerfs"), ("mkdir", "mkdir")):
        path = shutil.which(program)
        if path is None:
            pytest.skip(f"{program} is not installed: run ./scripts/setup.sh")
        found[name] = path
    fusermount = shutil.which("fusermount3")
    if fusermount is None:
        pytest.skip("fusermount3 is not installed (Debian package fuse3): run ./scripts/setup.sh")
    return Programs(
        rclone_version=version,
        fusermount=fusermount,
        shardproxy=shutil.which("shardproxy") or str(Path(sys.executable).parent / "shardproxy"),
        **found,
    )


def rclones() -> list[str]:
    found = [binary for binary in (debian_rclone(), current_rclone()) if binary]
    if not found:
        pytest.skip("no rclone installed: run ./scripts/setup.sh")
    return found


def write_conf(tmp_path: Path) -> Path:
    conf = tmp_path / "rclone.conf"
    conf.write_text(rclone_conf(deployment(), obscure(PASSWORD, os.urandom(16))))
    return conf


# -- rclone.conf ---------------------------------------------------------------------


@pytest.mark.parametrize("binary", rclones())
def test_rclone_reveals_the_obscured_password(binary: str) -> None:
    for password in (PASSWORD, "", "a" * 100):
        obscured = obscure(password, os.urandom(16))
        revealed = subprocess.run(
            [binary, "reveal", "--", obscured], capture_output=True, text=True, check=True
        )
        assert revealed.stdout.rstrip("\n") == password


@pytest.mark.parametrize("binary", rclones())
def test_rclone_lists_a_remote_per_shard_view_and_rest(binary: str, tmp_path: Path) -> None:
    conf = write_conf(tmp_path)
    listed = subprocess.run(
        [binary, "--config", str(conf), "listremotes"], capture_output=True, text=True, check=True
    )
    assert sorted(listed.stdout.split()) == ["rest:", "shard0:", "shard1:", "shard2:", "shard3:"]


@pytest.mark.parametrize("binary", rclones())
def test_rclone_reads_urls_user_and_password(binary: str, tmp_path: Path) -> None:
    conf = write_conf(tmp_path)
    base = [binary, "--config", str(conf)]
    shown = subprocess.run([*base, "config", "show"], capture_output=True, text=True, check=True)
    assert "[shard2]" in shown.stdout and "url = http://127.0.0.1:8765/.ids-s2" in shown.stdout
    dumped = json.loads(
        subprocess.run([*base, "config", "dump"], capture_output=True, check=True).stdout
    )
    assert dumped["shard2"]["url"] == "http://127.0.0.1:8765/.ids-s2"
    assert dumped["rest"]["url"] == "http://127.0.0.1:8765"
    assert dumped["rest"]["headers"] == "X-Shardproxy-Mount,rest"
    for remote in dumped.values():
        assert remote["type"] == "webdav" and remote["vendor"] == "other"
        assert remote["user"] == "admin"
        revealed = subprocess.run(
            [binary, "reveal", "--", remote["pass"]], capture_output=True, text=True, check=True
        )
        assert revealed.stdout.rstrip("\n") == PASSWORD


def test_no_password_means_no_pass_line() -> None:
    assert "pass =" not in rclone_conf(deployment(), None)


# -- the mounts ----------------------------------------------------------------------


def test_links_unchanged_mounts_each_view_as_ids_under_its_branch() -> None:
    found = mounts(deployment(), Layout.LINKS_UNCHANGED)
    assert [str(m.mountpoint) for m in found] == [
        "/mnt/shards/s0/.ids",
        "/mnt/shards/s1/.ids",
        "/mnt/shards/s2/.ids",
        "/mnt/shards/s3/.ids",
        "/mnt/shards/rest",
    ]


def test_shard_links_mounts_each_view_under_its_own_name() -> None:
    found = mounts(deployment(), Layout.SHARD_LINKS)
    assert [str(m.mountpoint) for m in found][:4] == [
        f"/mnt/shards/s{n}/.ids-s{n}" for n in range(4)
    ]
    assert str(found[4].mountpoint) == "/mnt/shards/rest"


def flag(argv: list[str], name: str) -> str:
    assert argv.count(name) == 1, f"{name} appears {argv.count(name)} times in {argv}"
    return argv[argv.index(name) + 1]


@pytest.mark.parametrize("layout", list(Layout))
def test_each_shard_has_its_own_cache_and_rc_and_full_cache_mode(layout: Layout) -> None:
    plan = deployment()
    argvs = [mount_argv(plan, Programs(), m) for m in mounts(plan, layout)]
    shards, rest = argvs[:4], argvs[4]
    assert [flag(a, "--cache-dir") for a in shards] == [
        f"/srv/disk{n}/rclone-cache" for n in range(4)
    ]
    assert flag(rest, "--cache-dir") == "/var/cache/shardproxy/rest"
    assert [flag(a, "--rc-addr") for a in argvs] == [f"127.0.0.1:{5570 + n}" for n in range(5)]
    assert all(
        flag(a, "--rc-user") == "rclone" and flag(a, "--rc-pass") == "rc%pass" for a in argvs
    )
    assert [flag(a, "--vfs-cache-mode") for a in argvs] == ["full"] * 4 + ["off"]
    assert [flag(a, "--vfs-cache-max-size") for a in shards] == ["off", "500G", "off", "off"]
    assert all(flag(a, "--dir-cache-time") == "8760h" for a in argvs)
    assert [a[2] for a in argvs] == ["shard0:", "shard1:", "shard2:", "shard3:", "rest:"]


def test_timeouts_and_retries_are_bounded() -> None:
    argv = mount_argv(deployment(), Programs(), mounts(deployment(), Layout.SHARD_LINKS)[0])
    assert flag(argv, "--contimeout") == "5s"
    assert flag(argv, "--timeout") == "20s"
    assert flag(argv, "--low-level-retries") == "2"
    assert flag(argv, "--retries") == "1"


def test_min_free_space_only_for_rclone_that_knows_it() -> None:
    shard = mounts(deployment(), Layout.SHARD_LINKS)[0]
    old = mount_argv(deployment(), Programs(rclone_version=(1, 60)), shard)
    new = mount_argv(deployment(), Programs(rclone_version=(1, 75)), shard)
    assert "--vfs-cache-min-free-space" not in old
    assert flag(new, "--vfs-cache-min-free-space") == "10G"


@pytest.mark.parametrize("binary", rclones())
def test_rclone_accepts_every_flag_of_the_units(binary: str) -> None:
    version = subprocess.run([binary, "version"], capture_output=True, text=True, check=True).stdout
    major, minor = (int(x) for x in version.split()[1].lstrip("v").split(".")[:2])
    programs = Programs(rclone=binary, rclone_version=(major, minor))
    for mount in mounts(deployment(), Layout.LINKS_UNCHANGED):
        # --help after the flags: rclone parses them all, refuses an unknown one, and
        # stops before mounting anything.
        checked = subprocess.run(
            [*mount_argv(deployment(), programs, mount), "--help"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert checked.returncode == 0, checked.stderr[-500:]


def test_mergerfs_joins_shard_branches_then_rest_with_ff() -> None:
    argv = mergerfs_argv(deployment(), Programs())
    options = flag(argv, "-o").split(",")
    assert {"category.search=ff", "allow_other", "cache.files=off"} <= set(options)
    assert (
        argv[-2] == "/mnt/shards/s0:/mnt/shards/s1:/mnt/shards/s2:/mnt/shards/s3:/mnt/shards/rest"
    )
    assert argv[-1] == "/mnt/nzbdav"


# -- the units -----------------------------------------------------------------------


def generated(programs: Programs | None = None) -> dict[str, str]:
    settings = load_settings(
        {"backend": "http://127.0.0.1:3000", "rclone_rc_pass": "rc%pass"}, environ={}
    )
    return generate(
        deployment(), programs or Programs(), settings, obscured_pass="x", mergerfs_recipe="FROM x"
    )


@pytest.mark.parametrize("layout", list(Layout))
def test_each_rclone_unit_clears_a_stale_mount_then_runs_the_mount(layout: Layout) -> None:
    files = generated()
    for mount in mounts(deployment(), layout):
        text = files[f"{layout.value}/{mount.unit}"]
        commands = unit_commands(text)
        assert commands["ExecStartPre"][0] == (
            ["/usr/bin/fusermount3", "-uz", str(mount.mountpoint)],
            True,
        )
        assert commands["ExecStart"] == [(mount_argv(deployment(), Programs(), mount), False)]
        assert "Restart=on-failure" in text.splitlines()
        assert f"After=network-online.target {PROXY_UNIT}" in text.splitlines()


def test_mergerfs_starts_after_every_mount_but_does_not_require_them() -> None:
    text = generated()[f"links-unchanged/{MERGERFS_UNIT}"]
    units = " ".join(m.unit for m in mounts(deployment(), Layout.LINKS_UNCHANGED))
    assert f"After={units}" in text.splitlines()
    assert f"Wants={units}" in text.splitlines()
    assert "Requires=" not in text


@pytest.mark.parametrize("layout", list(Layout))
def test_units_pass_systemd_analyze_verify(layout: Layout, tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is missing (Debian package systemd): run ./scripts/setup.sh")
    files = generated(real_programs())
    units = []
    for name, text in files.items():
        if name.startswith(layout.value + "/") and name.endswith(".service"):
            unit = tmp_path / name.split("/", 1)[1]
            unit.write_text(text)
            units.append(str(unit))
    assert len(units) == 4 + 1 + 2
    verified = subprocess.run(
        [analyze, "verify", "--man=no", *units],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    # verify also complains about unrelated units of the host; ours must be clean.
    ours = [line for line in verified.stderr.splitlines() if "shardproxy" in line]
    assert ours == [], verified.stderr


@given(st.lists(st.text(min_size=0, max_size=12), min_size=1, max_size=5), st.booleans())
def test_exec_lines_give_back_the_argv(argv: list[str], may_fail: bool) -> None:
    # The program is an absolute path, so a leading "-" is always the prefix.
    argv = ["/usr/bin/program", *(word.replace("\x00", "") for word in argv)]
    assert parse_exec_line(exec_line(argv, may_fail=may_fail)) == (argv, may_fail)


# -- the proxy's own config ------------------------------------------------


def test_toml_text_reads_back() -> None:
    values = {
        "backend": "http://127.0.0.1:3000",
        "rc_pass": 'p"\\ä',
        "workers": 2,
        "read_timeout": 60.0,
        "rc_fallback": ["http://a", "http://b"],
        "shard": {"0": "0-7", "1": "8-f"},
    }
    assert tomllib.loads(toml_text(values)) == values
