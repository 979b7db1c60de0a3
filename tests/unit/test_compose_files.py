"""`shardproxy gen`'s compose folder and the layout's own settings, fed values.

scripts/compose-test.sh runs these files for real with podman-compose;
tests/integration/test_deploy_compose.py has `podman-compose config` read them.
"""

from __future__ import annotations

import tomllib
from pathlib import PurePosixPath
from typing import Any

import pytest
import yaml

from shardproxy.config.layers import load_settings
from shardproxy.config.settings import ConfigError, Settings
from shardproxy.core.rclonelink import old_rclone_warning
from shardproxy.tools.deploy.bundle import generate, generation_warnings
from shardproxy.tools.deploy.compose import (
    RCLONE_IMAGE,
    Network,
    compose_files,
    env_file,
)
from shardproxy.tools.deploy.gen import mergerfs_recipe
from shardproxy.tools.deploy.model import Layout, Programs, deployment_from, mount_argv, mounts

RC_SECRET = "rc-$ecret"
RECIPE = "FROM debian\n"
BASE: dict[str, object] = {
    "backend": "http://10.0.0.5:3000",
    "rclone_rc_pass": RC_SECRET,
    "nzbdav_pass": "dav",
    "rc_user": "nzbdav",
    "rc_pass": "nzbdav-secret",
    "mount_root": "/srv/mnt",
    "cache_dir": [f"{n}=/disk{n}/cache" for n in range(4)],
}


def settings(**values: object) -> Settings:
    return load_settings({**BASE, **values}, environ={})


def files(
    layout: Layout = Layout.SHARD_LINKS, network: Network = Network.COMPOSE, **values: object
) -> dict[str, str]:
    given = settings(**values)
    return compose_files(
        deployment_from(given),
        given,
        layout,
        network,
        obscured_pass="obscured",
        mergerfs_recipe=RECIPE,
    )


def compose(layout: Layout = Layout.SHARD_LINKS, network: Network = Network.COMPOSE) -> Any:
    return yaml.safe_load(files(layout, network)["compose.yaml"])


@pytest.mark.parametrize("network", list(Network))
@pytest.mark.parametrize("layout", list(Layout))
def test_compose_yaml_is_yaml_with_a_comment_above_every_service(
    layout: Layout, network: Network
) -> None:
    text = files(layout, network)["compose.yaml"]
    services = yaml.safe_load(text)["services"]
    lines = text.splitlines()
    for name in services:
        at = lines.index(f"  {name}:")
        assert lines[at - 1].startswith("  # "), f"no comment above {name}"
    assert "mount --make-rshared /srv/mnt" in text  # the host preparation it needs


def test_services_come_in_reading_order() -> None:
    assert list(compose()["services"]) == [
        "nzbdav",
        "shardproxy",
        *(f"rclone-shard{n}" for n in range(4)),
        "rclone-rest",
        "mergerfs",
    ]


def test_on_the_compose_network_every_address_is_a_service_name() -> None:
    folder = files()
    proxy = tomllib.loads(folder["shardproxy.toml"])
    assert proxy["backend"] == "http://nzbdav:3000"
    assert proxy["listen"] == "0.0.0.0:8765"
    assert proxy["rc_listen"] == "0.0.0.0:5575"
    assert proxy["shard_rc"]["2"] == f"http://rclone:{RC_SECRET}@rclone-shard2:5572"
    assert proxy["rc_fallback"] == [f"http://rclone:{RC_SECRET}@rclone-rest:5572"]
    assert "url = http://shardproxy:8765/.ids-s2\n" in folder["rclone.conf"]
    rest = compose()["services"]["rclone-rest"]["command"]
    assert rest[rest.index("--rc-addr") + 1] == ":5572"
    assert all("network_mode" not in s for n, s in compose()["services"].items() if n != "mergerfs")


def test_host_network_keeps_the_units_addresses_and_leaves_nzbdav_out() -> None:
    services = compose(network=Network.HOST)["services"]
    assert "nzbdav" not in services
    assert {s.get("network_mode") for n, s in services.items() if n != "mergerfs"} == {"host"}
    proxy = tomllib.loads(files(network=Network.HOST)["shardproxy.toml"])
    assert proxy["backend"] == "http://10.0.0.5:3000"
    assert proxy["shard_rc"]["0"] == f"http://rclone:{RC_SECRET}@127.0.0.1:5570"


def test_rclones_wait_for_a_healthy_proxy_and_mergerfs_starts_after_them() -> None:
    services = compose()["services"]
    assert services["shardproxy"]["healthcheck"]["test"] == [
        "CMD",
        "shardproxy",
        "healthcheck",
        "--config",
        "/etc/shardproxy/shardproxy.toml",
    ]
    rclones = [name for name in services if name.startswith("rclone-")]
    for name in rclones:
        assert services[name]["depends_on"] == {"shardproxy": {"condition": "service_healthy"}}
        assert services[name]["restart"] == "unless-stopped"
    # Started, not healthy: a shard that is late is read through rest meanwhile.
    assert services["mergerfs"]["depends_on"] == {
        name: {"condition": "service_started"} for name in rclones
    }


def test_rclone_runs_a_pinned_image_and_clears_a_stale_mount_first() -> None:
    shard1 = compose()["services"]["rclone-shard1"]
    assert shard1["image"] == RCLONE_IMAGE and not RCLONE_IMAGE.endswith(":latest")
    assert shard1["entrypoint"][:2] == ["/bin/sh", "-c"]
    assert shard1["entrypoint"][2].startswith("fusermount3 -uz /srv/mnt/shards/s1/.ids-s1 ")
    assert "/srv/mnt:/srv/mnt:rshared" in shard1["volumes"]
    assert "/disk1/cache:/disk1/cache" in shard1["volumes"]


def test_mergerfs_is_built_from_the_recipe_beside_the_compose_file() -> None:
    assert files()["mergerfs/Dockerfile"] == RECIPE
    assert compose()["services"]["mergerfs"]["build"] == "./mergerfs"
    recipe = mergerfs_recipe()
    assert "apt-get install" in recipe and " mergerfs " in recipe
    assert 'exec mergerfs -f \\"$@\\"' in recipe


def test_the_rc_password_is_in_env_and_not_in_compose_yaml() -> None:
    folder = files()
    assert RC_SECRET not in folder["compose.yaml"]
    assert f"RCLONE_RC_PASS='{RC_SECRET}'" in folder[".env"].splitlines()
    command = compose()["services"]["rclone-shard0"]["command"]
    assert command[command.index("--rc-pass") + 1] == "${RCLONE_RC_PASS}"


def test_different_rc_passwords_get_a_variable_each() -> None:
    env = files(shard_rc=["1=http://other:pw1@127.0.0.1:7001"])[".env"]
    assert "RCLONE_RC_PASS_SHARD1='pw1'" in env.splitlines()
    assert f"RCLONE_RC_PASS_SHARD0='{RC_SECRET}'" in env.splitlines()


def test_a_dollar_in_a_path_is_not_taken_for_a_compose_variable() -> None:
    command = yaml.safe_load(files(rest_cache_dir="/cache/$HOME")["compose.yaml"])["services"][
        "rclone-rest"
    ]["command"]
    assert command[command.index("--cache-dir") + 1] == "/cache/$$HOME"


def test_env_refuses_a_password_it_cannot_quote() -> None:
    with pytest.raises(ConfigError, match="quote"):
        env_file({"RCLONE_RC_PASS": "it's"})


def test_without_rc_credentials_the_rc_endpoint_is_off_and_gen_says_so() -> None:
    given = settings(rc_user=None, rc_pass=None)
    folder = compose_files(
        deployment_from(given),
        given,
        Layout.SHARD_LINKS,
        Network.COMPOSE,
        obscured_pass=None,
        mergerfs_recipe=RECIPE,
    )
    assert "rc_listen" not in tomllib.loads(folder["shardproxy.toml"])
    warnings = generation_warnings(
        given, Programs(rclone_version=(1, 75)), Network.COMPOSE, rclone_installed=True
    )
    assert any("rc_user/rc_pass" in w for w in warnings)


def test_the_status_page_is_published_on_loopback_only_with_credentials() -> None:
    assert "ports" not in compose()["services"]["shardproxy"]
    given = settings(admin_user="ops", admin_pass="pw")
    folder = compose_files(
        deployment_from(given),
        given,
        Layout.SHARD_LINKS,
        Network.COMPOSE,
        obscured_pass=None,
        mergerfs_recipe=RECIPE,
    )
    proxy = yaml.safe_load(folder["compose.yaml"])["services"]["shardproxy"]
    assert proxy["ports"] == ["127.0.0.1:8766:8766"]
    assert tomllib.loads(folder["shardproxy.toml"])["admin_listen"] == "0.0.0.0:8766"


# -- the shard-links layout, whole ------------------------------------------------------


@pytest.mark.parametrize("network", list(Network))
def test_shard_links_settings_rewrite_links_and_links_unchanged_do_not(network: Network) -> None:
    assert tomllib.loads(files(Layout.SHARD_LINKS, network)["shardproxy.toml"])[
        "rewrite_rclonelinks"
    ]
    unchanged = tomllib.loads(files(Layout.LINKS_UNCHANGED, network)["shardproxy.toml"])
    assert "rewrite_rclonelinks" not in unchanged


def test_the_units_settings_of_each_layout_follow_the_same_rule() -> None:
    given = settings(rewrite_rclonelinks=True)
    written = generate(
        deployment_from(given), Programs(), given, obscured_pass=None, mergerfs_recipe=RECIPE
    )
    assert tomllib.loads(written["shard-links/shardproxy.toml"])["rewrite_rclonelinks"]
    assert "rewrite_rclonelinks" not in tomllib.loads(written["links-unchanged/shardproxy.toml"])


def test_more_than_ten_shards_leave_the_rewrite_off_and_gen_says_so() -> None:
    given = settings(shards=12, cache_dir=[])
    written = generate(
        deployment_from(given), Programs(), given, obscured_pass=None, mergerfs_recipe=RECIPE
    )
    assert "rewrite_rclonelinks" not in tomllib.loads(written["shard-links/shardproxy.toml"])
    warnings = generation_warnings(
        given, Programs(rclone_version=(1, 75)), Network.COMPOSE, rclone_installed=True
    )
    assert any("relink" in w for w in warnings)


@pytest.mark.parametrize(
    ("version", "shows_links"),
    [((1, 60), False), ((1, 68), False), ((1, 69), True), ((1, 75), True)],
)
def test_the_rest_mount_shows_links_as_symlinks_from_rclone_1_69(
    version: tuple[int, int], shows_links: bool
) -> None:
    plan = deployment_from(settings())
    for mount in mounts(plan, Layout.SHARD_LINKS):
        argv = mount_argv(plan, Programs(rclone_version=version), mount)
        assert ("--vfs-links" in argv) == (shows_links and mount.name == "rest"), mount.name


def test_an_rclone_older_than_1_69_is_named_in_a_warning() -> None:
    old = old_rclone_warning("/usr/bin/rclone", (1, 60), "why")
    assert old is not None and "/usr/bin/rclone is rclone 1.60, older than 1.69" in old
    assert old_rclone_warning("/usr/local/bin/rclone", (1, 69), "why") is None


def test_gen_warns_about_an_old_or_missing_rclone() -> None:
    given = settings()
    old = generation_warnings(
        given, Programs(rclone_version=(1, 60)), Network.COMPOSE, rclone_installed=True
    )
    assert any("older than 1.69" in w for w in old)
    missing = generation_warnings(given, Programs(), Network.COMPOSE, rclone_installed=False)
    assert any("no rclone found" in w for w in missing)
    current = generation_warnings(
        given, Programs(rclone_version=(1, 75)), Network.COMPOSE, rclone_installed=True
    )
    assert current == []


def test_compose_paths_are_the_hosts() -> None:
    shard2 = compose()["services"]["rclone-shard2"]["command"]
    assert shard2[:3] == ["mount", "shard2:", str(PurePosixPath("/srv/mnt/shards/s2/.ids-s2"))]


def test_on_the_compose_network_rests_fail_over_header_is_believed() -> None:
    """The rest rclone's container gets an address the engine picks from a private range."""
    trusted = tomllib.loads(files()["shardproxy.toml"])["mount_header_from"]
    assert {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"} <= set(trusted)
    assert "127.0.0.0/8" in trusted


def test_a_users_own_trusted_networks_are_kept_on_the_compose_network() -> None:
    mine = files(mount_header_from=["10.89.1.0/24"])["shardproxy.toml"]
    assert tomllib.loads(mine)["mount_header_from"] == ["10.89.1.0/24"]


def test_with_host_networking_only_loopback_is_believed() -> None:
    host = tomllib.loads(files(network=Network.HOST)["shardproxy.toml"])
    assert "mount_header_from" not in host  # the default: loopback
