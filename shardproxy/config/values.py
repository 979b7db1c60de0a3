"""How one setting's value is read and checked: its kinds, and the validators ``Settings``
names. Every error says where the value came from (the ``where`` argument) and what to
write instead.
"""

from __future__ import annotations

import enum
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from yarl import URL


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


class Kind(enum.Enum):
    """How a setting's text is read before its validator sees it."""

    STR = "str"
    INT = "int"
    FLOAT = "float"
    BOOL = "bool"  # true/false in TOML; 1/0, true/false, yes/no, on/off as text; a bare flag
    MAP = "map"  # N=VALUE pairs: a TOML table, repeated flags, or a spaced variable
    LIST = "list"  # a TOML list or one string, repeated flags, or a spaced variable


def read_kind(kind: Kind, value: Any, where: str) -> Any:
    """A value read as its kind (from TOML, a flag or a variable), or ConfigError."""
    if kind is Kind.STR:
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{where}: expected a non-empty string, got {value!r}")
        return value
    if kind in (Kind.INT, Kind.FLOAT):
        number_type = int if kind is Kind.INT else float
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        if number_type is int and isinstance(value, float):
            # int(4.5) would silently drop the fraction.
            raise ConfigError(f"{where}: expected a whole number, got {value!r}")
        try:
            return number_type(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected a number, got {value!r}") from None
    if kind is Kind.BOOL:
        return parse_bool(value, where)
    if kind is Kind.LIST:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(i, str) and i for i in items):
            raise ConfigError(f"{where}: expected a list of strings, got {value!r}")
        return items
    return parse_map(value, where)


def parse_bool(value: Any, where: str) -> bool:
    """true/false, yes/no, on/off, 1/0, or ConfigError."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{where}: expected true or false, got {value!r}")


def parse_map(value: Any, where: str) -> dict[int, str]:
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


def http_url(text: str, where: str) -> URL:
    """An http:// or https:// URL with a host and nothing after the path."""
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


def positive(value: float, where: str) -> Any:
    """The number, if it is greater than 0 (NaN is not)."""
    if not value > 0:  # also refuses NaN
        raise ConfigError(f"{where}: must be greater than 0, got {value}")
    return value


def backend_url(text: str, where: str) -> URL:
    """NzbDav's root URL (a path would not be where it serves WebDAV)."""
    backend = http_url(text, where)
    if backend.raw_path not in ("", "/"):
        raise ConfigError(
            f"{where}: {backend} has a path; give NzbDav's root URL "
            f"({backend.origin()}), which is where it serves WebDAV"
        )
    return backend


def log_level(text: str, where: str) -> str:
    """debug, info, warning or error, lowercased."""
    level = text.lower()
    if level not in ("debug", "info", "warning", "error"):
        raise ConfigError(f"{where}: log level {level!r} is not debug, info, warning or error")
    return level


def absolute_path(text: str, where: str) -> str:
    """A path that starts with /."""
    if not text.startswith("/"):
        raise ConfigError(f"{where}: {text!r} is not an absolute path (start it with /)")
    return text


def absolute_paths(paths: Mapping[int, str], where: str) -> dict[int, str]:
    """An absolute path per shard."""
    return {n: absolute_path(path, f"{where} (shard {n})") for n, path in paths.items()}


def rclone_sizes(sizes: Mapping[int, str], where: str) -> dict[int, str]:
    """A size per shard in rclone's spelling (500G, 2T, off)."""
    for shard, size in sizes.items():
        if not re.fullmatch(r"off|[0-9]+(\.[0-9]+)?[KMGTPE]?i?B?", size):
            raise ConfigError(
                f"{where} (shard {shard}): {size!r} is not an rclone size (e.g. 500G, 2T, off)"
            )
    return dict(sizes)


def port(value: int, where: str) -> int:
    """A TCP port, 1-65535."""
    if not 0 < value < 65536:
        raise ConfigError(f"{where}: port {value} is out of range 1-65535")
    return value


def log_format(text: str, where: str) -> str:
    """text or json, lowercased."""
    log_format = text.lower()
    if log_format not in ("text", "json"):
        raise ConfigError(f"{where}: log format {log_format!r} is not text or json")
    return log_format


def url_per_shard(urls: Mapping[int, str], where: str) -> dict[int, URL]:
    """An http(s) URL per shard."""
    return {shard: http_url(url, f"{where} (shard {shard})") for shard, url in urls.items()}


def url_list(urls: list[str], where: str) -> tuple[URL, ...]:
    """http(s) URLs."""
    return tuple(http_url(url, where) for url in urls)


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def networks(values: list[str], where: str) -> tuple[Network, ...]:
    """IP addresses or networks (``127.0.0.1``, ``10.0.0.0/8``, ``::1``)."""
    found: list[Network] = []
    for value in values:
        try:
            found.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            raise ConfigError(
                f"{where}: {value!r} is not an IP address or network; write e.g. "
                "127.0.0.1, 172.16.0.0/12 or ::1"
            ) from None
    return tuple(found)
