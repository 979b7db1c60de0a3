"""Whose X-Shardproxy-Mount header is believed: the addresses mount_header_from names."""

from __future__ import annotations

import pytest

from shardproxy.config.values import ConfigError, networks
from shardproxy.core.failover import LOOPBACK_NETWORKS, trusts_mount_header

LOOPBACK = LOOPBACK_NETWORKS


@pytest.mark.parametrize("remote", ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"])
def test_loopback_clients_are_believed(remote: str) -> None:
    assert trusts_mount_header(remote, LOOPBACK)


@pytest.mark.parametrize("remote", ["10.0.0.5", "::ffff:10.0.0.5", "fe80::1%eth0", "", None, "x"])
def test_other_clients_are_not(remote: str | None) -> None:
    assert not trusts_mount_header(remote, LOOPBACK)


def test_a_named_network_is_believed() -> None:
    assert trusts_mount_header("172.18.0.7", networks(["172.16.0.0/12"], "test"))


def test_a_bad_network_says_what_to_write() -> None:
    with pytest.raises(ConfigError, match="mount_header_from: 'docker' is not an IP address"):
        networks(["docker"], "mount_header_from")
