"""Every setting of shardproxy, read from a TOML file < the environment < the command line.

Each setting has one name, used as the TOML key, as ``SHARDPROXY_<NAME>`` in the
environment and as ``--name`` (dashes for underscores) on the command line. Validation
happens once, here, and every error says which setting, where it came from, and what to
write instead.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from yarl import URL

from shardproxy.shards import ShardMap, ShardMapError

ENV_PREFIX = "SHARDPROXY_"
DEFAULT_LISTEN = "127.0.0.1:8765"
DEFAULT_SHARDS = 4


class ConfigError(ValueError):
    """A setting is missing or wrong; the message says which, where, and what to do."""


@dataclass(frozen=True)
class HostPort:
    """An address to listen on."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def is_loopback(self) -> bool:
        """True when only this machine can connect."""
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


@dataclass(frozen=True)
class Settings:
    """The validated configuration of one shardproxy process."""

    backend: URL
    listen: HostPort = HostPort("127.0.0.1", 8765)
    shard_map: ShardMap = field(default_factory=lambda: ShardMap.even(DEFAULT_SHARDS))
    workers: int = 1
    connect_timeout: float = 5.0
    read_timeout: float = 60.0
    rc_listen: HostPort | None = None
    rc_user: str | None = None
    rc_pass: str | None = None
    shard_rc: Mapping[int, URL] = field(default_factory=dict)
    shard_rc_fs: Mapping[int, str] = field(default_factory=dict)
    rc_fallback: tuple[URL, ...] = ()
    rc_timeout: float = 10.0
    rc_pending_max: int = 10000
    rc_pending_max_age: float = 86400.0
    log_level: str = "info"
    log_format: str = "text"
    access_log: bool = False
    admin_listen: HostPort | None = None
    admin_user: str | None = None
    admin_pass: str | None = None
    admin_poll_interval: float = 15.0


@dataclass(frozen=True)
class Option:
    """How one setting is spelled and parsed."""

    name: str
    kind: str  # str, int, float, bool, map (N=VALUE...), list
    help: str
    metavar: str = ""

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


OPTIONS: tuple[Option, ...] = (
    Option("backend", "str", "NzbDav's WebDAV URL, e.g. http://127.0.0.1:3000", "URL"),
    Option("listen", "str", f"address to serve WebDAV on (default {DEFAULT_LISTEN})", "HOST:PORT"),
    Option("shards", "int", f"split 0-f evenly over N shards (default {DEFAULT_SHARDS})", "N"),
    Option("shard", "map", "shard N owns these first hex characters, e.g. 0=0-3", "N=PREFIXES"),
    Option("workers", "int", "worker processes sharing the port via SO_REUSEPORT (default 1)", "N"),
    Option("connect_timeout", "float", "seconds to connect to NzbDav (default 5)", "SECONDS"),
    Option(
        "read_timeout", "float", "seconds NzbDav may stay silent mid-reply (default 60)", "SECONDS"
    ),
    Option("rc_listen", "str", "address of the rclone RC endpoint (off if unset)", "HOST:PORT"),
    Option("rc_user", "str", "Basic auth user RC callers must send", "USER"),
    Option("rc_pass", "str", "Basic auth password RC callers must send", "PASS"),
    Option("shard_rc", "map", "RC URL of shard N's rclone", "N=URL"),
    Option("shard_rc_fs", "map", "VFS name (fs) to use on shard N's rclone", "N=NAME"),
    Option("rc_fallback", "list", "RC URL of an rclone mounting the rest of NzbDav", "URL"),
    Option("rc_timeout", "float", "seconds per RC call to an rclone (default 10)", "SECONDS"),
    Option("rc_pending_max", "int", "undelivered RC paths kept for retry (default 10000)", "N"),
    Option(
        "rc_pending_max_age", "float", "seconds an undelivered path is retried (default 86400)", "S"
    ),
    Option("log_level", "str", "debug, info, warning or error (default info)", "LEVEL"),
    Option("log_format", "str", "text, or json (one object a line) for log collectors", "FORMAT"),
    Option("access_log", "bool", "log one line per request (off by default)"),
    Option("admin_listen", "str", "address of health, metrics, status page (off)", "HOST:PORT"),
    Option("admin_user", "str", "Basic auth user the admin listener asks for", "USER"),
    Option("admin_pass", "str", "Basic auth password the admin listener asks for", "PASS"),
    Option(
        "admin_poll_interval", "float", "seconds between polls of the rclones (default 15)", "S"
    ),
)
OPTION_BY_NAME = {option.name: option for option in OPTIONS}


def read_toml(path: str) -> dict[str, Any]:
    """Read a TOML config file; unknown keys are errors naming the file and a close match."""
    try:
        with open(path, "rb") as stream:
            data = tomllib.load(stream)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    for key in data:
        _check_known(key, f"config file {path}", key)
    return {key: (value, f"{path}: key {key!r}") for key, value in data.items()}


def read_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    """Settings from ``SHARDPROXY_*`` variables; an unknown one is an error (likely a typo)."""
    found: dict[str, Any] = {}
    for variable, value in environ.items():
        if not variable.startswith(ENV_PREFIX):
            continue
        name = variable[len(ENV_PREFIX) :].lower()
        if name == "config":  # names the file itself, read by the command line
            continue
        _check_known(name, "environment", variable)
        option = OPTION_BY_NAME[name]
        parsed: Any = value
        if option.kind in ("map", "list"):
            parsed = [item for item in re.split(r"[;\s]+", value) if item]
        found[name] = (parsed, f"environment variable {variable}")
    return found


def _check_known(name: str, where: str, spelled: str) -> None:
    if name in OPTION_BY_NAME:
        return
    close = difflib.get_close_matches(name, OPTION_BY_NAME, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ConfigError(
        f"{where}: unknown setting {spelled!r}{hint} (known: {', '.join(sorted(OPTION_BY_NAME))})"
    )


def merge_layers(*layers: Mapping[str, Any]) -> dict[str, Any]:
    """Later layers win per setting; a map or list is replaced whole, never merged."""
    merged: dict[str, Any] = {}
    for layer in layers:
        merged.update(layer)
    return merged


def build_settings(raw: Mapping[str, tuple[Any, str]], *, need_backend: bool = True) -> Settings:
    """Validate merged ``{name: (value, where)}`` pairs into Settings."""
    values: dict[str, Any] = {}
    for name, (value, where) in raw.items():
        values[name] = _parse_option(OPTION_BY_NAME[name], value, where)

    if "backend" not in values:
        if need_backend:
            raise ConfigError(
                "no backend given: pass --backend http://HOST:PORT (NzbDav's WebDAV URL), "
                "set SHARDPROXY_BACKEND, or put backend = '...' in the config file"
            )
        values["backend"] = URL("http://127.0.0.1:3000")
    backend_where = raw.get("backend", (None, "backend"))[1]
    backend = _http_url(values["backend"], backend_where)
    if backend.raw_path not in ("", "/"):
        raise ConfigError(
            f"{backend_where}: {backend} has a path; give NzbDav's root URL "
            f"({backend.origin()}), which is where it serves WebDAV"
        )

    shard_map = _shard_map(values, raw)
    kwargs: dict[str, Any] = {"backend": backend, "shard_map": shard_map}
    for name in ("workers", "rc_pending_max"):
        if name in values:
            kwargs[name] = _positive(values[name], raw[name][1])
    for name in (
        "connect_timeout",
        "read_timeout",
        "rc_timeout",
        "rc_pending_max_age",
        "admin_poll_interval",
    ):
        if name in values:
            kwargs[name] = _positive(values[name], raw[name][1])
    for name in ("listen", "rc_listen", "admin_listen"):
        if name in values:
            kwargs[name] = parse_host_port(values[name], raw[name][1])
    for name in ("rc_user", "rc_pass", "admin_user", "admin_pass", "access_log"):
        if name in values:
            kwargs[name] = values[name]
    if "log_format" in values:
        log_format = str(values["log_format"]).lower()
        if log_format not in ("text", "json"):
            raise ConfigError(
                f"{raw['log_format'][1]}: log format {log_format!r} is not text or json"
            )
        kwargs["log_format"] = log_format
    if "log_level" in values:
        level = str(values["log_level"]).lower()
        if level not in ("debug", "info", "warning", "error"):
            raise ConfigError(
                f"{raw['log_level'][1]}: log level {level!r} is not debug, info, warning or error"
            )
        kwargs["log_level"] = level
    kwargs.update(_rc_targets(values, raw, shard_map))
    settings = Settings(**kwargs)
    _check_rc_auth(settings)
    return settings


def _parse_option(option: Option, value: Any, where: str) -> Any:
    if option.kind == "str":
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{where}: expected a non-empty string, got {value!r}")
        return value
    if option.kind == "bool":
        return _parse_bool(value, where)
    if option.kind in ("int", "float"):
        number_type = int if option.kind == "int" else float
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        if number_type is int and isinstance(value, float):
            # int(4.5) would silently drop the fraction.
            raise ConfigError(f"{where}: expected a whole number, got {value!r}")
        try:
            return number_type(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected a number, got {value!r}") from None
    if option.kind == "list":
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(i, str) and i for i in items):
            raise ConfigError(f"{where}: expected a list of strings, got {value!r}")
        return items
    return _parse_map(value, where)


def _parse_bool(value: Any, where: str) -> bool:
    """``true``/``false`` in TOML; ``1``, ``true``, ``yes``, ``on`` (or opposites) as text."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{where}: expected true or false, got {value!r}")


def _parse_map(value: Any, where: str) -> dict[int, str]:
    """``{"0": "0-3"}`` (TOML table) or ``["0=0-3", ...]`` (flags, environment)."""
    pairs: list[tuple[Any, Any]]
    if isinstance(value, Mapping):
        pairs = list(value.items())
    elif isinstance(value, list):
        pairs = []
        for item in value:
            if not isinstance(item, str) or "=" not in item:
                raise ConfigError(f"{where}: {item!r} is not of the form N=VALUE (e.g. 0=0-3)")
            key, _, item_value = item.partition("=")
            pairs.append((key, item_value))
    else:
        raise ConfigError(f"{where}: expected N=VALUE pairs, got {value!r}")
    result: dict[int, str] = {}
    for key, item in pairs:
        text_key = str(key).strip()
        if not (text_key.isascii() and text_key.isdigit()):
            raise ConfigError(f"{where}: shard number {key!r} is not a number 0, 1, 2, ...")
        if not isinstance(item, str) or not item:
            raise ConfigError(f"{where}: shard {text_key} has no value")
        if int(text_key) in result:
            raise ConfigError(f"{where}: shard {text_key} is given twice")
        result[int(text_key)] = item
    return result


def _http_url(text: str, where: str) -> URL:
    try:
        url = URL(text)
    except ValueError as exc:
        raise ConfigError(f"{where}: {text!r} is not a URL: {exc}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ConfigError(f"{where}: {text!r} is not an http:// or https:// URL with a host")
    try:
        port = url.port
    except ValueError:
        raise ConfigError(f"{where}: {text!r} has a bad port") from None
    if port == 0:
        raise ConfigError(f"{where}: {text!r} has a bad port (0)")
    if url.query_string or url.fragment:
        raise ConfigError(f"{where}: {text!r} must not have a query or fragment")
    return url


def parse_host_port(text: str, where: str) -> HostPort:
    """``HOST:PORT``, ``[v6]:PORT`` or ``:PORT`` (all interfaces)."""
    match = re.fullmatch(r"(?:\[([0-9a-fA-F:.]+)\]|([^:\[\]]*)):([0-9]+)", text.strip())
    if match is None:
        raise ConfigError(f"{where}: {text!r} is not HOST:PORT (e.g. 127.0.0.1:8765)")
    host = match.group(1) or match.group(2) or "0.0.0.0"
    digits = match.group(3)
    port = int(digits) if len(digits) <= 5 else 0
    if not 0 < port < 65536:
        raise ConfigError(f"{where}: port {digits} is out of range 1-65535")
    return HostPort(host, port)


def _positive(value: float, where: str) -> Any:
    if not value > 0:  # also refuses NaN
        raise ConfigError(f"{where}: must be greater than 0, got {value}")
    return value


def _shard_map(values: Mapping[str, Any], raw: Mapping[str, tuple[Any, str]]) -> ShardMap:
    if "shard" in values and "shards" in values:
        # A layer that sets one of the two overrides a lower layer that set the other.
        shard_rank, shards_rank = _layer_rank(raw["shard"][1]), _layer_rank(raw["shards"][1])
        if shard_rank != shards_rank:
            loser = "shards" if shard_rank > shards_rank else "shard"
            values = {name: value for name, value in values.items() if name != loser}
    try:
        if "shard" in values:
            shard_map = ShardMap.from_prefixes(values["shard"])
            if "shards" in values and values["shards"] != shard_map.count:
                raise ConfigError(
                    f"{raw['shards'][1]} says {values['shards']} shards but "
                    f"{raw['shard'][1]} defines {shard_map.count}: give one or make them agree"
                )
            return shard_map
        return ShardMap.even(values.get("shards", DEFAULT_SHARDS))
    except ShardMapError as exc:
        where = raw["shard"][1] if "shard" in raw else raw.get("shards", (0, "shards"))[1]
        raise ConfigError(f"{where}: {exc}") from None


def _layer_rank(where: str) -> int:
    """0 for the config file, 1 for the environment, 2 for the command line."""
    if where.startswith("command line"):
        return 2
    return 1 if where.startswith("environment") else 0


def _rc_targets(
    values: Mapping[str, Any], raw: Mapping[str, tuple[Any, str]], shard_map: ShardMap
) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for name in ("shard_rc", "shard_rc_fs"):
        if name not in values:
            continue
        for shard in values[name]:
            if shard >= shard_map.count:
                raise ConfigError(
                    f"{raw[name][1]}: shard {shard} does not exist "
                    f"(shards are 0..{shard_map.count - 1})"
                )
    if "shard_rc" in values:
        found["shard_rc"] = {
            shard: _http_url(url, f"{raw['shard_rc'][1]} (shard {shard})")
            for shard, url in values["shard_rc"].items()
        }
    if "shard_rc_fs" in values:
        found["shard_rc_fs"] = dict(values["shard_rc_fs"])
    if "rc_fallback" in values:
        found["rc_fallback"] = tuple(
            _http_url(url, raw["rc_fallback"][1]) for url in values["rc_fallback"]
        )
    return found


def _check_rc_auth(settings: Settings) -> None:
    _check_listener_auth(
        "rc", settings.rc_listen, settings.rc_user, settings.rc_pass, "tells rclone to drop caches"
    )
    _check_listener_auth(
        "admin",
        settings.admin_listen,
        settings.admin_user,
        settings.admin_pass,
        "shows the library's shards, rclones and traffic",
    )


def _check_listener_auth(
    prefix: str, listen: HostPort | None, user: str | None, password: str | None, why: str
) -> None:
    """A listener beyond loopback needs its Basic auth user and password, both or neither."""
    if listen is None:
        return
    if (user is None) != (password is None):
        raise ConfigError(f"{prefix}_user and {prefix}_pass go together: set both or neither")
    if not listen.is_loopback and user is None:
        flag = f"--{prefix}"
        raise ConfigError(
            f"{prefix}_listen {listen} accepts connections from other machines, and it {why}: "
            f"set {flag}-user and {flag}-pass, or listen on 127.0.0.1"
        )


def load_settings(
    cli: Mapping[str, Any],
    *,
    config_file: str | None = None,
    environ: Mapping[str, str] | None = None,
    need_backend: bool = True,
) -> Settings:
    """Settings from a TOML file, then the environment, then command-line values."""
    file_layer = read_toml(config_file) if config_file else {}
    env_layer = read_environment(os.environ if environ is None else environ)
    cli_layer = {
        name: (value, f"command line {OPTION_BY_NAME[name].flag}")
        for name, value in cli.items()
        if value is not None
    }
    return build_settings(merge_layers(file_layer, env_layer, cli_layer), need_backend=need_backend)
