"""Every setting of shardproxy, declared once in ``Settings``, and its validation.

Each setting is a field of ``Settings`` made with ``config_option.setting(...)``: its
kind, help, default and validator; flags, environment variables and file keys follow
from it, and ``config_layers`` reads them. ``build_settings`` validates what the layers
gave, once, here, and every error says which setting, where it came from, and what to
write instead.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from yarl import URL

from shardproxy.config.option import (
    BUILT_FROM_METADATA,
    OPTION_METADATA,
    BuiltFrom,
    Given,
    Layer,
    Option,
    setting,
)
from shardproxy.config.values import (
    ConfigError,
    HostPort,
    Kind,
    Network,
    absolute_path,
    absolute_paths,
    backend_url,
    log_format,
    log_level,
    networks,
    parse_host_port,
    port,
    positive,
    rclone_sizes,
    url_list,
    url_per_shard,
)
from shardproxy.core.failover import LOOPBACK_NETWORKS
from shardproxy.core.rclonelink import RcloneLinkError, check_shard_count
from shardproxy.core.shards import ShardMap, ShardMapError

DEFAULT_SHARDS = 4
DEFAULT_BACKEND = "http://127.0.0.1:3000"
PENDING_FILE_NAME = "shardproxy-rc-pending.sqlite3"
"""Used only by commands that never talk to NzbDav (``check``, ``shard-of``)."""

__all__ = [
    "ConfigError",
    "HostPort",
    "Kind",
    "Settings",
    "parse_host_port",
]


SHARDS = Option("shards", Kind.INT, "split 0-f evenly over N shards", "N", DEFAULT_SHARDS)
SHARD = Option(
    "shard", Kind.MAP, "shard N owns these first hex characters, e.g. 0=0-3", "N=PREFIXES"
)


SHARD_WEIGHTS = Option(
    "shard_weights",
    Kind.LIST,
    "shares of the first hex characters by disk size, one per shard, e.g. 4T,8T,12T",
    "W,W,...",
)


def _shard_map(given: Mapping[str, Given]) -> ShardMap:
    """``shards``, ``shard`` and ``shard_weights``: the highest layer that gives one wins."""
    if given:
        top = max(value.layer for value in given.values())
        given = {name: value for name, value in given.items() if value.layer == top}
    if "shard" in given and "shard_weights" in given:
        raise ConfigError(
            f"{given['shard'].where} and {given['shard_weights'].where} both set the shard "
            "map: give the characters (shard) or the weights (shard_weights), not both"
        )
    try:
        if "shard" in given:
            shard_map = ShardMap.from_prefixes(SHARD.read(given["shard"]))
            source = given["shard"].where
        elif "shard_weights" in given:
            weights = ",".join(SHARD_WEIGHTS.read(given["shard_weights"]))
            shard_map = ShardMap.weighted(weights)
            source = given["shard_weights"].where
        else:
            return ShardMap.even(SHARDS.read(given["shards"]) if given else DEFAULT_SHARDS)
    except ShardMapError as exc:
        raise ConfigError(f"{_shard_where(given)}: {exc}") from None
    if "shards" in given and SHARDS.read(given["shards"]) != shard_map.count:
        raise ConfigError(
            f"{given['shards'].where} says {SHARDS.read(given['shards'])} shards but "
            f"{source} defines {shard_map.count}: give one or make them agree"
        )
    return shard_map


def _shard_where(given: Mapping[str, Given]) -> str:
    for name in ("shard", "shard_weights", "shards"):
        if name in given:
            return given[name].where
    return "shards"


@dataclass(frozen=True)
class Settings:
    """The validated configuration of one shardproxy process.

    Adding a setting is adding a field here with ``setting(...)`` (and, if its checks are
    new, a validator above); flags, environment variables and file keys follow from it.
    """

    backend: URL = setting(
        Kind.STR, "NzbDav's WebDAV URL, e.g. http://127.0.0.1:3000", "URL", validate=backend_url
    )
    listen: HostPort = setting(
        Kind.STR,
        "address to serve WebDAV on",
        "HOST:PORT",
        default=HostPort("127.0.0.1", 8765),
        validate=parse_host_port,
    )
    shard_map: ShardMap = field(
        default_factory=lambda: ShardMap.even(DEFAULT_SHARDS),
        metadata={BUILT_FROM_METADATA: BuiltFrom((SHARDS, SHARD, SHARD_WEIGHTS), _shard_map)},
    )
    workers: int = setting(
        Kind.INT,
        "worker processes sharing the port via SO_REUSEPORT",
        "N",
        default=1,
        validate=positive,
    )
    connect_timeout: float = setting(
        Kind.FLOAT, "seconds to connect to NzbDav", "SECONDS", default=5.0, validate=positive
    )
    read_timeout: float = setting(
        Kind.FLOAT,
        "seconds NzbDav may stay silent mid-reply",
        "SECONDS",
        default=60.0,
        validate=positive,
    )
    header_max_size: int = setting(
        Kind.INT,
        "bytes a client's request head (request line and headers) may take; larger is 431",
        "BYTES",
        default=32768,
        validate=positive,
    )
    header_timeout: float = setting(
        Kind.FLOAT,
        "seconds a client has to send a whole request head once it starts; then 408",
        "SECONDS",
        default=20.0,
        validate=positive,
    )
    keepalive_timeout: float = setting(
        Kind.FLOAT,
        "seconds an idle client connection is kept open for its next request",
        "SECONDS",
        default=75.0,
        validate=positive,
    )
    send_timeout: float = setting(
        Kind.FLOAT,
        "seconds a client may read nothing of a reply before its connection is cut",
        "SECONDS",
        default=60.0,
        validate=positive,
    )
    body_timeout: float = setting(
        Kind.FLOAT,
        "seconds a client may pause mid request body before its request is dropped",
        "SECONDS",
        default=60.0,
        validate=positive,
    )
    max_connections: int = setting(
        Kind.INT,
        "client connections the WebDAV listener keeps open at once (per worker); more "
        "wait in the kernel's backlog",
        "N",
        default=1024,
        validate=positive,
    )
    rc_listen: HostPort | None = setting(
        Kind.STR,
        "address of the rclone RC endpoint (off if unset)",
        "HOST:PORT",
        default=None,
        validate=parse_host_port,
    )
    rc_max_connections: int = setting(
        Kind.INT,
        "client connections the RC listener keeps open at once",
        "N",
        default=64,
        validate=positive,
    )
    rc_user: str | None = setting(
        Kind.STR, "Basic auth user RC callers must send", "USER", default=None
    )
    rc_pass: str | None = setting(
        Kind.STR, "Basic auth password RC callers must send", "PASS", default=None
    )
    shard_rc: Mapping[int, URL] = setting(
        Kind.MAP, "RC URL of shard N's rclone", "N=URL", factory=dict, validate=url_per_shard
    )
    shard_rc_fs: Mapping[int, str] = setting(
        Kind.MAP, "VFS name (fs) to use on shard N's rclone", "N=NAME", factory=dict
    )
    rc_fallback: tuple[URL, ...] = setting(
        Kind.LIST,
        "RC URL of an rclone mounting the rest of NzbDav",
        "URL",
        default=(),
        validate=url_list,
    )
    rc_timeout: float = setting(
        Kind.FLOAT, "seconds per RC call to an rclone", "SECONDS", default=10.0, validate=positive
    )
    rc_pending_max: int = setting(
        Kind.INT, "undelivered RC paths kept for retry", "N", default=10000, validate=positive
    )
    rc_pending_max_bytes: int = setting(
        Kind.INT,
        "bytes the undelivered RC paths kept for retry may take (in memory and on disk)",
        "BYTES",
        default=16 << 20,
        validate=positive,
    )
    rc_pending_max_age: float = setting(
        Kind.FLOAT,
        "seconds an undelivered path is retried",
        "S",
        default=86400.0,
        validate=positive,
    )
    rc_pending_file: str | None = setting(
        Kind.STR,
        "SQLite file keeping undelivered RC paths across restarts (default: "
        f"{PENDING_FILE_NAME} beside the config file, else in the state directory)",
        "FILE",
        default=None,
    )
    shutdown_grace: float = setting(
        Kind.FLOAT,
        "seconds running requests may go on after SIGTERM before they are cut",
        "SECONDS",
        default=10.0,
        validate=positive,
    )
    mount_header_from: tuple[Network, ...] = setting(
        Kind.LIST,
        "addresses or networks whose X-Shardproxy-Mount header (sent by the rest mount's "
        "rclone) is believed; from anywhere else it is ignored",
        "NET",
        default=LOOPBACK_NETWORKS,
        validate=networks,
    )
    rewrite_rclonelinks: bool = setting(
        Kind.BOOL,
        "serve NzbDav's .rclonelink targets as {mount}/.ids-s<N>/... (at most 10 shards)",
        "",
        default=False,
    )
    virtual_levels: bool = setting(
        Kind.BOOL,
        "answer NzbDav's fixed .ids folders above the fifth level from the shard map, "
        "without asking NzbDav (turn off for a backend that is not NzbDav)",
        "",
        default=True,
    )
    log_level: str = setting(
        Kind.STR, "debug, info, warning or error", "LEVEL", default="info", validate=log_level
    )
    # What `shardproxy gen` writes into the rclone, mergerfs and systemd files.
    mount_root: str = setting(
        Kind.STR,
        "gen: mounts go in ROOT/shards, mergerfs at ROOT/nzbdav",
        "DIR",
        default="/mnt",
        validate=absolute_path,
    )
    config_dir: str = setting(
        Kind.STR,
        "gen: where rclone.conf and shardproxy.toml are installed",
        "DIR",
        default="/etc/shardproxy",
        validate=absolute_path,
    )
    cache_dir: Mapping[int, str] = setting(
        Kind.MAP,
        "gen: shard N's rclone cache, on its own disk (default /var/cache/shardproxy/sN)",
        "N=DIR",
        factory=dict,
        validate=absolute_paths,
    )
    rest_cache_dir: str = setting(
        Kind.STR,
        "gen: cache directory of the rest mount (it caches no file data)",
        "DIR",
        default="/var/cache/shardproxy/rest",
        validate=absolute_path,
    )
    cache_max_size: Mapping[int, str] = setting(
        Kind.MAP,
        "gen: shard N's --vfs-cache-max-size (default off)",
        "N=SIZE",
        factory=dict,
        validate=rclone_sizes,
    )
    cache_min_free_space: Mapping[int, str] = setting(
        Kind.MAP,
        "gen: shard N's --vfs-cache-min-free-space, rclone 1.62+ (default 10G)",
        "N=SIZE",
        factory=dict,
        validate=rclone_sizes,
    )
    rclone_rc_user: str = setting(
        Kind.STR, "gen: RC user of the generated rclones", "USER", default="rclone"
    )
    rclone_rc_pass: str | None = setting(
        Kind.STR,
        "gen: RC password of the generated rclones (unless shard_rc has one)",
        "PASS",
        default=None,
    )
    rclone_rc_port: int = setting(
        Kind.INT,
        "gen: RC port of shard 0's rclone; shard N uses PORT+N, rest the next",
        "PORT",
        default=5570,
        validate=port,
    )
    log_format: str = setting(
        Kind.STR,
        "text, or json (one object a line) for log collectors",
        "FORMAT",
        default="text",
        validate=log_format,
    )
    access_log: bool = setting(Kind.BOOL, "log one line per request", "", default=False)
    admin_listen: HostPort | None = setting(
        Kind.STR,
        "address of the status page, /metrics, /healthz, /readyz (off if unset)",
        "HOST:PORT",
        default=None,
        validate=parse_host_port,
    )
    admin_max_connections: int = setting(
        Kind.INT,
        "client connections the admin listener keeps open at once",
        "N",
        default=32,
        validate=positive,
    )
    admin_user: str | None = setting(
        Kind.STR, "Basic auth user the admin listener asks for", "USER", default=None
    )
    admin_pass: str | None = setting(
        Kind.STR, "Basic auth password the admin listener asks for", "PASS", default=None
    )
    admin_poll_interval: float = setting(
        Kind.FLOAT,
        "seconds between polls of each shard's rclone and NzbDav",
        "SECONDS",
        default=15.0,
        validate=positive,
    )
    nzbdav_user: str | None = setting(
        Kind.STR, "NzbDav's WebDAV user (gen's rclone.conf, check --probe)", "USER", default="admin"
    )
    nzbdav_pass: str | None = setting(
        Kind.STR,
        "NzbDav's WebDAV password (gen obscures it in rclone.conf; check --probe logs in; "
        "when set, only requests with this login get virtual_levels answers)",
        "PASS",
        default=None,
    )
    listing_max_bytes: int = setting(
        Kind.INT,
        "largest shard-view listing read from NzbDav, in bytes; a larger one is a 502",
        "BYTES",
        default=16 << 20,
        validate=positive,
    )


def _options() -> tuple[Option, ...]:
    found: list[Option] = []
    for settings_field in dataclasses.fields(Settings):
        if OPTION_METADATA in settings_field.metadata:
            found.append(
                dataclasses.replace(
                    settings_field.metadata[OPTION_METADATA], name=settings_field.name
                )
            )
        elif BUILT_FROM_METADATA in settings_field.metadata:
            found.extend(settings_field.metadata[BUILT_FROM_METADATA].options)
    return tuple(found)


OPTIONS: tuple[Option, ...] = _options()
OPTION_BY_NAME = {option.name: option for option in OPTIONS}


def build_settings(given: Mapping[str, Given], *, need_backend: bool = True) -> Settings:
    """Validate the merged ``{name: Given}`` into Settings."""
    if "backend" not in given:
        if need_backend:
            raise ConfigError(
                "no backend given: pass --backend http://HOST:PORT (NzbDav's WebDAV URL), "
                "set SHARDPROXY_BACKEND, or put backend = '...' in the config file"
            )
        given = {**given, "backend": Given(DEFAULT_BACKEND, Layer.FILE, "default backend")}
    values: dict[str, Any] = {}
    for settings_field in dataclasses.fields(Settings):
        name = settings_field.name
        if OPTION_METADATA in settings_field.metadata:
            if name in given:
                values[name] = OPTION_BY_NAME[name].read(given[name])
        elif BUILT_FROM_METADATA in settings_field.metadata:
            built_from: BuiltFrom = settings_field.metadata[BUILT_FROM_METADATA]
            inputs = {o.name: given[o.name] for o in built_from.options if o.name in given}
            values[name] = built_from.build(inputs)
    settings = Settings(**values)
    _check_shards_exist(settings, given)
    _check_rc_auth(settings)
    if settings.rewrite_rclonelinks:
        try:
            check_shard_count(settings.shard_map)
        except RcloneLinkError as exc:
            raise ConfigError(f"{given['rewrite_rclonelinks'].where}: {exc}") from None
    return settings


def _check_shards_exist(settings: Settings, given: Mapping[str, Given]) -> None:
    count = settings.shard_map.count
    for name in ("shard_rc", "shard_rc_fs", "cache_dir", "cache_max_size", "cache_min_free_space"):
        per_shard: Mapping[int, object] = getattr(settings, name)
        for shard in per_shard:
            if shard >= count:
                raise ConfigError(
                    f"{given[name].where}: shard {shard} does not exist (shards are 0..{count - 1})"
                )


def _check_rc_auth(settings: Settings) -> None:
    _check_listener_auth(
        "rc",
        settings.rc_listen,
        settings.rc_user,
        settings.rc_pass,
        "the RC endpoint tells rclone to drop caches",
    )
    _check_listener_auth(
        "admin",
        settings.admin_listen,
        settings.admin_user,
        settings.admin_pass,
        "the admin listener shows the shards, rclones and traffic",
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
        raise ConfigError(
            f"{prefix}_listen {listen} accepts connections from other machines, and {why}: "
            f"set --{prefix}-user and --{prefix}-pass, or listen on 127.0.0.1"
        )
