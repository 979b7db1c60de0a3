"""The operations settings: admin listener, its auth rule, access log and log format."""

from __future__ import annotations

import pytest

from shardproxy.config.layers import load_settings
from shardproxy.config.settings import ConfigError, HostPort, Settings


def load(cli: dict[str, str] | None = None, **environ: str) -> Settings:
    """Settings from these flags and variables (and a backend)."""
    return load_settings(cli or {}, environ={"SHARDPROXY_BACKEND": "http://x:3000", **environ})


def test_admin_listener_is_off_unless_set() -> None:
    settings = load()
    assert settings.admin_listen is None
    assert settings.access_log is False
    assert settings.log_format == "text"


def test_admin_on_loopback_needs_no_credentials() -> None:
    settings = load({"admin_listen": "127.0.0.1:8766"})
    assert settings.admin_listen == HostPort("127.0.0.1", 8766)


def test_admin_beyond_loopback_needs_a_user_and_password() -> None:
    with pytest.raises(ConfigError) as error:
        load(SHARDPROXY_ADMIN_LISTEN=":8766")
    assert str(error.value) == (
        "admin_listen 0.0.0.0:8766 accepts connections from other machines, and the admin "
        "listener shows the shards, rclones and traffic: set --admin-user and --admin-pass, "
        "or listen on 127.0.0.1"
    )
    settings = load(
        SHARDPROXY_ADMIN_LISTEN=":8766", SHARDPROXY_ADMIN_USER="ops", SHARDPROXY_ADMIN_PASS="pw"
    )
    assert settings.admin_user == "ops"


def test_admin_user_without_password_is_refused() -> None:
    with pytest.raises(ConfigError, match="admin_user and admin_pass go together"):
        load(SHARDPROXY_ADMIN_LISTEN="127.0.0.1:8766", SHARDPROXY_ADMIN_USER="ops")


@pytest.mark.parametrize(("text", "value"), [("1", True), ("true", True), ("off", False)])
def test_access_log_from_the_environment(text: str, value: bool) -> None:
    assert load(SHARDPROXY_ACCESS_LOG=text).access_log is value


def test_a_bad_boolean_says_where_and_what() -> None:
    with pytest.raises(ConfigError) as error:
        load(SHARDPROXY_ACCESS_LOG="maybe")
    assert str(error.value) == (
        "environment variable SHARDPROXY_ACCESS_LOG: expected true or false, got 'maybe'"
    )


def test_log_format_is_text_or_json() -> None:
    assert load({"log_format": "JSON"}).log_format == "json"
    with pytest.raises(ConfigError, match="log format 'xml' is not text or json"):
        load(SHARDPROXY_LOG_FORMAT="xml")
