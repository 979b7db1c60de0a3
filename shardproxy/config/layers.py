"""Where settings come from: a TOML file < the environment < the command line.

Each layer is read into ``{name: Given}``, naming where every value came from; unknown
names are errors with a close match. ``merge_layers`` lets the higher layer win and
``load_settings`` hands the result to ``config.build_settings`` to validate.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from shardproxy.config.option import ENV_PREFIX, Given, Layer
from shardproxy.config.settings import OPTION_BY_NAME, PENDING_FILE_NAME, Settings, build_settings
from shardproxy.config.values import ConfigError, Kind


def read_toml(path: str) -> dict[str, Given]:
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
    return {key: Given(value, Layer.FILE, f"{path}: key {key!r}") for key, value in data.items()}


def read_environment(environ: Mapping[str, str]) -> dict[str, Given]:
    """Settings from ``SHARDPROXY_*`` variables; an unknown one is an error (likely a typo)."""
    found: dict[str, Given] = {}
    for variable, value in environ.items():
        if not variable.startswith(ENV_PREFIX):
            continue
        name = variable[len(ENV_PREFIX) :].lower()
        if name == "config":  # names the file itself, read by the command line
            continue
        _check_known(name, "environment", variable)
        parsed: Any = value
        if OPTION_BY_NAME[name].kind in (Kind.MAP, Kind.LIST):
            parsed = [item for item in re.split(r"[;\s]+", value) if item]
        found[name] = Given(parsed, Layer.ENVIRONMENT, f"environment variable {variable}")
    return found


def read_command_line(values: Mapping[str, Any]) -> dict[str, Given]:
    """Settings from parsed flags; None means the flag was not given."""
    return {
        name: Given(value, Layer.COMMAND_LINE, f"command line {OPTION_BY_NAME[name].flag}")
        for name, value in values.items()
        if value is not None
    }


def _check_known(name: str, where: str, spelled: str) -> None:
    if name in OPTION_BY_NAME:
        return
    close = difflib.get_close_matches(name, OPTION_BY_NAME, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ConfigError(
        f"{where}: unknown setting {spelled!r}{hint} (known: {', '.join(sorted(OPTION_BY_NAME))})"
    )


def merge_layers(*layers: Mapping[str, Given]) -> dict[str, Given]:
    """The highest layer wins per setting; a map or list is replaced whole, never merged."""
    merged: dict[str, Given] = {}
    for layer in layers:
        for name, given in layer.items():
            if name not in merged or given.layer >= merged[name].layer:
                merged[name] = given
    return merged


def load_settings(
    cli: Mapping[str, Any],
    *,
    config_file: str | None = None,
    environ: Mapping[str, str] | None = None,
    need_backend: bool = True,
) -> Settings:
    """Settings from a TOML file, then the environment, then command-line values."""
    environ = os.environ if environ is None else environ
    file_layer = read_toml(config_file) if config_file else {}
    merged = merge_layers(file_layer, read_environment(environ), read_command_line(cli))
    if "rc_pending_file" not in merged:
        default = default_pending_file(config_file, environ)
        merged["rc_pending_file"] = Given(default, Layer.FILE, "default rc_pending_file")
    return build_settings(merged, need_backend=need_backend)


def default_pending_file(config_file: str | None, environ: Mapping[str, str]) -> str:
    """Beside the config file; else systemd's $STATE_DIRECTORY; else the XDG state folder."""
    if config_file:
        return str(Path(config_file).resolve().parent / PENDING_FILE_NAME)
    state = environ.get("STATE_DIRECTORY", "").split(":")[0]
    if not state:
        xdg = environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
        state = str(Path(xdg) / "shardproxy")
    return str(Path(state) / PENDING_FILE_NAME)
