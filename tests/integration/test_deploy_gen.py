"""`shardproxy gen`: from the settings (file, environment, flags) to files rclone and
shardproxy itself accept."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from shardproxy.cli import main
from shardproxy.config.layers import load_settings
from shardproxy.config.settings import ConfigError
from shardproxy.tools.deploy.model import Layout, deployment_from, mounts
from tests.helpers.rclone_procs import debian_rclone

BASE = {"backend": "http://127.0.0.1:3000", "rclone_rc_pass": "rcpw", "nzbdav_pass": "pw"}


def settings(**values: object):  # type: ignore[no-untyped-def]
    return load_settings({**BASE, **values}, environ={})


def test_each_shard_gets_its_rc_port_and_cache_dir_by_default() -> None:
    plan = deployment_from(settings(rclone_rc_port=6000))
    assert [str(rc.addr) for rc in plan.shard_rc] == [f"127.0.0.1:{6000 + n}" for n in range(4)]
    assert plan.rest_rc is not None and str(plan.rest_rc.addr) == "127.0.0.1:6004"
    assert [str(d) for d in plan.cache_dirs] == [f"/var/cache/shardproxy/s{n}" for n in range(4)]
    assert all(rc.user == "rclone" and rc.password == "rcpw" for rc in plan.shard_rc)


def test_given_cache_dirs_sizes_and_rc_urls_are_used() -> None:
    plan = deployment_from(
        settings(
            cache_dir=["1=/srv/disk1/cache"],
            cache_max_size=["1=2T"],
            shard_rc=["2=http://u:p@127.0.0.1:7002"],
        )
    )
    assert str(plan.cache_dirs[1]) == "/srv/disk1/cache"
    shard1 = mounts(plan, Layout.LINKS_UNCHANGED)[1]
    assert shard1.max_size == "2T"
    assert (str(plan.shard_rc[2].addr), plan.shard_rc[2].user, plan.shard_rc[2].password) == (
        "127.0.0.1:7002",
        "u",
        "p",
    )


def test_an_rclone_rc_without_a_password_is_refused() -> None:
    with pytest.raises(ConfigError, match="rclone_rc_pass"):
        deployment_from(load_settings({"backend": "http://127.0.0.1:3000"}, environ={}))


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"cache_max_size": ["0=lots"]}, "not an rclone size"),
        ({"mount_root": "mnt"}, "not an absolute path"),
        ({"cache_dir": ["7=/srv/x"]}, "shard 7 does not exist"),
    ],
)
def test_bad_gen_settings_say_what_is_wrong(values: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        settings(**values)


def test_gen_writes_files_that_rclone_and_shardproxy_accept(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    code = main(
        [
            "gen",
            "--out",
            str(out),
            "--backend",
            "http://127.0.0.1:3000",
            "--rclone-rc-pass",
            "rcpw",
            "--nzbdav-pass",
            "pw",
            "--shards",
            "3",
            "--rc-listen",
            "127.0.0.1:5575",
        ]
    )
    assert code == 0, capsys.readouterr().err
    names = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
    assert {"rclone.conf", "links-unchanged/shardproxy.toml"} <= names
    assert "links-unchanged/compose/compose.yaml" in names
    assert "shard-links/shardproxy-rclone-shard2.service" in names
    assert "shard-links/shardproxy-rclone-shard3.service" not in names
    toml = out / "links-unchanged" / "shardproxy.toml"
    assert "rc_pending_file" not in toml.read_text()
    proxy = load_settings({}, config_file=str(toml), environ={})
    assert proxy.shard_map.count == 3
    assert {n: str(url) for n, url in proxy.shard_rc.items()} == {
        n: f"http://rclone:rcpw@127.0.0.1:{5570 + n}" for n in range(3)
    }
    assert [str(url) for url in proxy.rc_fallback] == ["http://rclone:rcpw@127.0.0.1:5573"]
    assert str(proxy.rc_listen) == "127.0.0.1:5575"
    # The status page and the container's health check come with every deployment.
    assert str(proxy.admin_listen) == "127.0.0.1:8766"
    rclone = debian_rclone()
    if rclone is not None:
        listed = subprocess.run(
            [rclone, "--config", str(out / "rclone.conf"), "listremotes"],
            capture_output=True,
            text=True,
            check=True,
        )
        assert sorted(listed.stdout.split()) == ["rest:", "shard0:", "shard1:", "shard2:"]
    for path in (out / "rclone.conf", out / "shard-links" / "compose" / ".env"):
        assert path.stat().st_mode & 0o077 == 0, path


def test_gen_without_rc_password_fails_with_the_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["gen", "--out", str(tmp_path), "--backend", "http://127.0.0.1:3000"])
    assert code == 2
    assert "rclone_rc_pass" in capsys.readouterr().err
