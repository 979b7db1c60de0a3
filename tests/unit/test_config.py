"""Unit tests of the layered settings: TOML file < SHARDPROXY_* environment < command line."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import pytest
from yarl import URL

from shardproxy.config.layers import (
    load_settings,
    merge_layers,
    read_command_line,
    read_environment,
)
from shardproxy.config.settings import OPTIONS, ConfigError, HostPort, Settings, parse_host_port
from shardproxy.core.shards import ShardMap

BACKEND = "http://127.0.0.1:3000"


def load(
    cli: dict[str, Any] | None = None,
    *,
    environ: dict[str, str] | None = None,
    config_file: Path | None = None,
    need_backend: bool = True,
) -> Settings:
    """load_settings with an explicit (by default empty) environment."""
    return load_settings(
        {"backend": BACKEND} if cli is None else cli,
        config_file=None if config_file is None else str(config_file),
        environ={} if environ is None else environ,
        need_backend=need_backend,
    )


def load_error(
    cli: dict[str, Any] | None = None,
    *,
    environ: dict[str, str] | None = None,
    config_file: Path | None = None,
) -> str:
    """The message of the ConfigError that loading these settings raises."""
    with pytest.raises(ConfigError) as excinfo:
        load(cli, environ=environ, config_file=config_file)
    return str(excinfo.value)


@pytest.fixture
def toml(tmp_path: Path) -> Any:
    """Write a TOML config file and return its path."""

    def write(text: str) -> Path:
        path = tmp_path / "shardproxy.toml"
        path.write_text(text, encoding="utf-8")
        return path

    return write


# --- defaults and layering ---------------------------------------------------------------


def test_defaults_with_only_a_backend() -> None:
    settings = load()
    assert settings.backend == URL(BACKEND)
    assert settings.listen == HostPort("127.0.0.1", 8765)
    assert settings.shard_map == ShardMap.even(4)
    assert settings.workers == 1
    assert settings.connect_timeout == 5.0
    assert settings.read_timeout == 60.0
    assert settings.rc_listen is None
    assert settings.rc_user is None and settings.rc_pass is None
    assert settings.shard_rc == {} and settings.shard_rc_fs == {}
    assert settings.rc_fallback == ()
    assert settings.log_level == "info"


def test_missing_backend_is_an_error_saying_how_to_give_it() -> None:
    message = load_error({})
    assert "--backend" in message
    assert "SHARDPROXY_BACKEND" in message
    assert "config file" in message


def test_backend_may_be_missing_when_not_needed() -> None:
    assert load({}, need_backend=False).backend == URL("http://127.0.0.1:3000")


def test_file_alone_sets_a_value(toml: Any) -> None:
    path = toml('backend = "http://file:1"\nworkers = 3\n')
    settings = load({}, config_file=path)
    assert settings.backend == URL("http://file:1")
    assert settings.workers == 3


def test_environment_beats_the_file(toml: Any) -> None:
    path = toml('backend = "http://file:1"\n')
    settings = load({}, config_file=path, environ={"SHARDPROXY_BACKEND": "http://env:2"})
    assert settings.backend == URL("http://env:2")


def test_command_line_beats_environment_and_file(toml: Any) -> None:
    path = toml('backend = "http://file:1"\n')
    settings = load(
        {"backend": "http://cli:3"},
        config_file=path,
        environ={"SHARDPROXY_BACKEND": "http://env:2"},
    )
    assert settings.backend == URL("http://cli:3")


def test_command_line_none_leaves_the_lower_layer_in_place() -> None:
    settings = load(
        {"backend": None, "workers": None}, environ={"SHARDPROXY_BACKEND": "http://e:2"}
    )
    assert settings.backend == URL("http://e:2")


def test_a_map_from_a_higher_layer_replaces_the_lower_one_whole(toml: Any) -> None:
    path = toml(f'backend = "{BACKEND}"\n[shard]\n0 = "0-3"\n1 = "4-f"\n')
    settings = load({"shard": ["0=0-7", "1=8-b", "2=c-f"]}, config_file=path)
    assert [settings.shard_map.prefixes_of(s) for s in range(3)] == ["0-7", "8-b", "c-f"]


def test_variables_without_the_prefix_are_ignored() -> None:
    assert load(environ={"BACKEND": "http://x:1", "PATH": "/bin"}).backend == URL(BACKEND)


def test_shardproxy_config_variable_is_not_a_setting() -> None:
    assert load(environ={"SHARDPROXY_CONFIG": "elsewhere.toml"}).backend == URL(BACKEND)


def test_every_option_has_an_env_name_and_a_flag() -> None:
    option = next(o for o in OPTIONS if o.name == "rc_pending_max_age")
    assert option.env == "SHARDPROXY_RC_PENDING_MAX_AGE"
    assert option.flag == "--rc-pending-max-age"


# --- the file ----------------------------------------------------------------------------


def test_unknown_file_key_names_file_key_and_close_match(toml: Any) -> None:
    path = toml('backend = "http://x:1"\nbakend = "http://y:1"\n')
    message = load_error({}, config_file=path)
    assert f"config file {path}" in message
    assert "unknown setting 'bakend'" in message
    assert "did you mean 'backend'?" in message


def test_unknown_file_key_without_close_match_lists_the_known_ones(toml: Any) -> None:
    message = load_error({}, config_file=toml("zzzzzz = 1\n"))
    assert "unknown setting 'zzzzzz'" in message
    assert "did you mean" not in message
    assert "known: access_log, admin_listen, admin_max_connections, admin_pass," in message
    assert "backend, body_timeout, cache_dir" in message


def test_missing_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    assert load_error({}, config_file=path) == f"config file {path} does not exist"


def test_invalid_toml_names_the_file(toml: Any) -> None:
    path = toml("backend = \n")
    assert load_error({}, config_file=path).startswith(f"config file {path} is not valid TOML")


def test_bad_value_in_the_file_names_file_and_key(toml: Any) -> None:
    path = toml(f'backend = "{BACKEND}"\nworkers = "many"\n')
    assert load_error({}, config_file=path) == (
        f"{path}: key 'workers': expected a number, got 'many'"
    )


def test_shard_table_in_the_file(toml: Any) -> None:
    path = toml(f'backend = "{BACKEND}"\n[shard]\n0 = "0-7"\n1 = "8-f"\n')
    assert load({}, config_file=path).shard_map == ShardMap.even(2)


def test_rc_fallback_as_a_single_string_in_the_file(toml: Any) -> None:
    path = toml(f'backend = "{BACKEND}"\nrc_fallback = "http://r:5572"\n')
    assert load({}, config_file=path).rc_fallback == (URL("http://r:5572"),)


# --- the environment ---------------------------------------------------------------------


def test_unknown_variable_names_the_variable_and_a_close_match() -> None:
    message = load_error(environ={"SHARDPROXY_SHARD_RCS": "0=http://r:1"})
    assert message.startswith("environment: unknown setting 'SHARDPROXY_SHARD_RCS'")
    assert "did you mean 'shard_rc'?" in message


def test_environment_numbers_are_parsed() -> None:
    settings = load(environ={"SHARDPROXY_SHARDS": "2", "SHARDPROXY_READ_TIMEOUT": "2.5"})
    assert settings.shard_map == ShardMap.even(2)
    assert settings.read_timeout == 2.5


def test_environment_map_is_split_on_spaces_and_semicolons() -> None:
    settings = load(environ={"SHARDPROXY_SHARD": "0=0-3; 1=4-7 2=8-f"})
    assert [settings.shard_map.prefixes_of(s) for s in range(3)] == ["0-3", "4-7", "8-f"]


def test_environment_list_is_split_on_spaces() -> None:
    settings = load(environ={"SHARDPROXY_RC_FALLBACK": "http://a:1 http://b:2"})
    assert settings.rc_fallback == (URL("http://a:1"), URL("http://b:2"))


def test_bad_environment_value_names_the_variable() -> None:
    assert load_error(environ={"SHARDPROXY_WORKERS": "two"}) == (
        "environment variable SHARDPROXY_WORKERS: expected a number, got 'two'"
    )


def test_empty_environment_string_names_the_variable() -> None:
    message = load_error(environ={"SHARDPROXY_LOG_LEVEL": ""})
    assert (
        message == "environment variable SHARDPROXY_LOG_LEVEL: expected a non-empty string, got ''"
    )


# --- values --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url", ["ftp://x:1", "http://", "127.0.0.1:3000", "http://x:1/?a=b", "http://x:1/#f"]
)
def test_bad_backend_url_is_named_with_its_source(url: str) -> None:
    message = load_error({"backend": url})
    assert message.startswith(f"command line --backend: {url!r}")


@pytest.mark.parametrize("url", ["http://x:99999", "http://x:abc", "http://x:0"])
def test_bad_backend_port_is_an_error(url: str) -> None:
    message = load_error({"backend": url})
    assert message.startswith(f"command line --backend: {url!r}")
    assert "port" in message.lower()


def test_https_backend_is_accepted() -> None:
    assert load({"backend": "https://nzbdav.example/"}).backend == URL("https://nzbdav.example/")


def test_backend_with_a_path_is_refused_naming_the_root_url() -> None:
    message = load_error({"backend": "https://nzbdav.example/dav"})
    assert message == (
        "command line --backend: https://nzbdav.example/dav has a path; give NzbDav's root "
        "URL (https://nzbdav.example), which is where it serves WebDAV"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:8080", HostPort("127.0.0.1", 8080)),
        ("localhost:1", HostPort("localhost", 1)),
        (":8080", HostPort("0.0.0.0", 8080)),
        ("[::1]:65535", HostPort("::1", 65535)),
        (" 0.0.0.0:80 ", HostPort("0.0.0.0", 80)),
    ],
)
def test_host_port_forms(text: str, expected: HostPort) -> None:
    assert parse_host_port(text, "where") == expected


@pytest.mark.parametrize("text", ["8080", "host", "::1:80", "[::1]", "host:", "a:b:1", "[zz]:80"])
def test_malformed_host_port_names_value_and_source(text: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        parse_host_port(text, "command line --listen")
    assert str(excinfo.value) == (
        f"command line --listen: {text!r} is not HOST:PORT (e.g. 127.0.0.1:8765)"
    )


@pytest.mark.parametrize("port", ["0", "65536", "99999999", "9" * 5000])
def test_port_out_of_range_is_named(port: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        parse_host_port("h:" + port, "where")
    assert str(excinfo.value) == f"where: port {port} is out of range 1-65535"


def test_listen_comes_from_the_command_line() -> None:
    assert load({"backend": BACKEND, "listen": "[::1]:9000"}).listen == HostPort("::1", 9000)


def test_host_port_prints_ipv6_in_brackets() -> None:
    assert str(HostPort("::1", 80)) == "[::1]:80"
    assert str(HostPort("127.0.0.1", 80)) == "127.0.0.1:80"


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.0.0.1", False),
        ("nzbdav", False),
    ],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert HostPort(host, 1).is_loopback is loopback


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("workers", "0"),
        ("rc_pending_max", "-1"),
        ("connect_timeout", "0"),
        ("read_timeout", "-0.5"),
        ("rc_timeout", "nan"),
    ],
)
def test_numbers_must_be_positive(name: str, value: str) -> None:
    message = load_error({"backend": BACKEND, name: value})
    flag = "--" + name.replace("_", "-")
    assert message.startswith(f"command line {flag}: must be greater than 0")


def test_whole_number_setting_refuses_a_fraction(toml: Any) -> None:
    path = toml(f'backend = "{BACKEND}"\nshards = 2.5\n')
    assert load_error({}, config_file=path) == (
        f"{path}: key 'shards': expected a whole number, got 2.5"
    )


def test_boolean_is_not_a_number(toml: Any) -> None:
    path = toml(f'backend = "{BACKEND}"\nworkers = true\n')
    assert load_error({}, config_file=path) == f"{path}: key 'workers': expected a number, got True"


def test_float_setting_accepts_an_integer(toml: Any) -> None:
    path = toml(f'backend = "{BACKEND}"\nrc_timeout = 3\n')
    settings = load({}, config_file=path)
    assert settings.rc_timeout == 3.0
    assert not math.isnan(settings.rc_timeout)


def test_log_level_is_lowercased() -> None:
    assert load({"backend": BACKEND, "log_level": "WARNING"}).log_level == "warning"


def test_unknown_log_level_is_named() -> None:
    assert load_error({"backend": BACKEND, "log_level": "loud"}) == (
        "command line --log-level: log level 'loud' is not debug, info, warning or error"
    )


# --- the shard map -----------------------------------------------------------------------


def test_shards_gives_the_even_split() -> None:
    assert load({"backend": BACKEND, "shards": "3"}).shard_map == ShardMap.even(3)


def test_shard_flags_give_the_map() -> None:
    settings = load({"backend": BACKEND, "shard": ["0=0,2,4,6,8,a,c,e", "1=1,3,5,7,9,b,d,f"]})
    assert settings.shard_map.owner_of_char == (0, 1) * 8


def test_shards_agreeing_with_shard_flags_is_fine() -> None:
    settings = load({"backend": BACKEND, "shards": "2", "shard": ["0=0-7", "1=8-f"]})
    assert settings.shard_map == ShardMap.even(2)


def test_shards_disagreeing_with_shard_in_the_same_layer_names_both() -> None:
    message = load_error({"backend": BACKEND, "shards": "3", "shard": ["0=0-7", "1=8-f"]})
    assert message == (
        "command line --shards says 3 shards but command line --shard "
        "defines 2: give one or make them agree"
    )


def test_shard_map_on_the_command_line_beats_shards_in_the_environment() -> None:
    settings = load_settings(
        {"backend": BACKEND, "shard": ["0=0-7", "1=8-f"]}, environ={"SHARDPROXY_SHARDS": "3"}
    )
    assert settings.shard_map == ShardMap.from_prefixes({0: "0-7", 1: "8-f"})


def test_shards_on_the_command_line_beats_a_shard_map_in_the_file(toml: Any) -> None:
    path = toml(f'backend = "{BACKEND}"\n[shard]\n0 = "0-7"\n1 = "8-f"\n')
    settings = load_settings({"shards": 4}, config_file=str(path), environ={})
    assert settings.shard_map == ShardMap.even(4)


def test_shard_map_gap_names_the_characters_and_the_file(toml: Any) -> None:
    path = toml(f'backend = "{BACKEND}"\n[shard]\n0 = "0-6"\n1 = "9-f"\n')
    message = load_error({}, config_file=path)
    assert message.startswith(f"{path}: key 'shard': ")
    assert "characters 7-8 belong to no shard (gap)" in message


def test_shard_map_overlap_names_the_character_and_the_variable() -> None:
    message = load_error(environ={"SHARDPROXY_BACKEND": BACKEND, "SHARDPROXY_SHARD": "0=0-8 1=8-f"})
    assert message.startswith("environment variable SHARDPROXY_SHARD: ")
    assert "character 8 belongs to shards 0, 1 (overlap)" in message


def test_shard_map_hole_names_the_flag() -> None:
    message = load_error({"backend": BACKEND, "shard": ["0=0-7", "2=8-f"]})
    assert message.startswith("command line --shard: shards are numbered [0, 2]")
    assert "missing [1]" in message


def test_bad_prefix_names_the_shard_and_the_flag() -> None:
    assert load_error({"backend": BACKEND, "shard": ["0=0-7", "1=8-g"]}) == (
        "command line --shard: shard 1: bad prefix '8-g' in '8-g': use single hex characters "
        "0-9 a-f, alone or as a range like '8-b'"
    )


def test_shard_count_out_of_range_names_the_source() -> None:
    message = load_error({"backend": BACKEND, "shards": "17"})
    assert message == "command line --shards: shard count 17 is out of range: use 1 to 16 shards"


@pytest.mark.parametrize("item", ["0-7", "x=0-7", "\u00b2=0-7", "-1=0-7"])
def test_shard_item_that_is_not_n_equals_value_names_it(item: str) -> None:
    message = load_error({"backend": BACKEND, "shard": [item]})
    assert message.startswith("command line --shard: ")
    assert repr(item.partition("=")[0] if "=" in item else item) in message


def test_shard_given_twice_is_an_error() -> None:
    assert load_error({"backend": BACKEND, "shard": ["0=0-7", "0=8-f"]}) == (
        "command line --shard: shard 0 is given twice"
    )


def test_shard_without_a_value_is_an_error() -> None:
    assert load_error({"backend": BACKEND, "shard": ["0="]}) == (
        "command line --shard: shard 0 has no value"
    )


# --- RC settings ---------------------------------------------------------------------------


def test_rc_on_loopback_needs_no_auth() -> None:
    settings = load({"backend": BACKEND, "rc_listen": "127.0.0.1:5572"})
    assert settings.rc_listen == HostPort("127.0.0.1", 5572)


@pytest.mark.parametrize("address", [":5572", "0.0.0.0:5572", "10.1.2.3:5572", "[::]:5572"])
def test_rc_on_other_interfaces_without_auth_is_refused(address: str) -> None:
    message = load_error({"backend": BACKEND, "rc_listen": address})
    assert "accepts connections from other machines" in message
    assert "--rc-user and --rc-pass" in message


def test_rc_on_other_interfaces_with_auth_is_accepted() -> None:
    settings = load(
        {"backend": BACKEND, "rc_listen": ":5572"},
        environ={"SHARDPROXY_RC_USER": "u", "SHARDPROXY_RC_PASS": "p"},
    )
    assert settings.rc_listen == HostPort("0.0.0.0", 5572)
    assert (settings.rc_user, settings.rc_pass) == ("u", "p")


def test_rc_user_without_rc_pass_is_refused() -> None:
    message = load_error({"backend": BACKEND, "rc_listen": "127.0.0.1:5572", "rc_user": "u"})
    assert message == "rc_user and rc_pass go together: set both or neither"


def test_rc_pass_without_rc_user_is_refused() -> None:
    message = load_error({"backend": BACKEND, "rc_listen": "127.0.0.1:5572", "rc_pass": "p"})
    assert message == "rc_user and rc_pass go together: set both or neither"


def test_shard_rc_urls_are_parsed_per_shard() -> None:
    settings = load(
        {"backend": BACKEND, "shards": "2", "shard_rc": ["0=http://r0:5572", "1=http://r1:5572"]}
    )
    assert settings.shard_rc == {0: URL("http://r0:5572"), 1: URL("http://r1:5572")}


def test_shard_rc_for_a_shard_that_does_not_exist_is_named() -> None:
    message = load_error({"backend": BACKEND, "shards": "2", "shard_rc": ["2=http://r2:5572"]})
    assert message == "command line --shard-rc: shard 2 does not exist (shards are 0..1)"


def test_shard_rc_fs_for_a_shard_that_does_not_exist_is_named() -> None:
    message = load_error(environ={"SHARDPROXY_BACKEND": BACKEND, "SHARDPROXY_SHARD_RC_FS": "4=x:"})
    assert message == (
        "environment variable SHARDPROXY_SHARD_RC_FS: shard 4 does not exist (shards are 0..3)"
    )


def test_bad_shard_rc_url_names_the_shard() -> None:
    message = load_error({"backend": BACKEND, "shard_rc": ["1=ftp://r:1"]})
    assert message.startswith("command line --shard-rc (shard 1): 'ftp://r:1'")


def test_shard_rc_fs_is_kept_as_given() -> None:
    settings = load({"backend": BACKEND, "shard_rc_fs": ["0=shard0:", "3=shard3:"]})
    assert settings.shard_rc_fs == {0: "shard0:", 3: "shard3:"}


def test_bad_rc_fallback_url_names_the_source() -> None:
    message = load_error({"backend": BACKEND, "rc_fallback": ["http://ok:1", "nope"]})
    assert (
        message
        == "command line --rc-fallback: 'nope' is not an http:// or https:// URL with a host"
    )


# --- the table ---------------------------------------------------------------------------


def test_the_higher_layer_wins_whatever_order_the_layers_come_in() -> None:
    cli = read_command_line({"workers": 3})
    env = read_environment({"SHARDPROXY_WORKERS": "2"})
    assert merge_layers(cli, env)["workers"].value == 3
    assert merge_layers(env, cli)["workers"].value == 3


def test_every_settings_field_is_set_by_some_option() -> None:
    names = {option.name for option in OPTIONS}
    for settings_field in dataclasses.fields(Settings):
        assert settings_field.name in names or settings_field.name == "shard_map"
    assert {"shards", "shard"} <= names


def test_help_shows_the_default_from_the_table() -> None:
    by_name = {option.name: option for option in OPTIONS}
    assert by_name["connect_timeout"].help_text.endswith("(default 5)")
    assert by_name["listen"].help_text.endswith("(default 127.0.0.1:8765)")
    assert "default" not in by_name["backend"].help_text
