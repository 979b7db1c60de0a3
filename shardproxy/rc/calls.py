"""Reading a caller's RC call the way rclone would: which commands pass, its parameters.

Only cache calls reach the rclones (``ALLOWED_COMMANDS``); the families that change
files, remotes or the process are refused by name. Pure: values in, values out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import parse_qsl

import orjson

from shardproxy.rc.pathlen import path_too_long

FORGET = "vfs/forget"
REFRESH = "vfs/refresh"
PATH_COMMANDS = frozenset({FORGET, REFRESH})
FANOUT_COMMANDS = frozenset({"vfs/stats", "vfs/list", "core/stats", "core/version", "rc/noop"})
ALLOWED_COMMANDS = PATH_COMMANDS | FANOUT_COMMANDS
# Families that change files, remotes or the process: refused by name (403) so the
# caller learns they exist but are not passed on; anything else unknown is a 404.
DANGEROUS_PREFIXES = (
    "operations/",
    "sync/",
    "config/",
    "mount/",
    "job/",
    "backend/",
    "cache/",
    "options/",
    "serve/",
    "pluginsctl/",
    "fscache/",
    "debug/",
)
DANGEROUS_COMMANDS = frozenset({"core/command", "core/quit", "core/obscure", "core/bwlimit"})
# Paths per outgoing call: rclone takes any number, this only keeps one body small.
MAX_PATHS_PER_CALL = 500
# The values Go's strconv.ParseBool accepts, which is what rclone's "recursive" takes.
_GO_BOOLS = {
    **dict.fromkeys(("1", "t", "T", "TRUE", "true", "True"), "true"),
    **dict.fromkeys(("0", "f", "F", "FALSE", "false", "False"), "false"),
}


class RcError(Exception):
    """A call the proxy answers itself with rclone's error JSON and an HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def error_body(
    command: str, params: Mapping[str, Any], message: str, status: int
) -> dict[str, Any]:
    """rclone's error reply: ``{"error", "input", "path", "status"}``."""
    return {"error": message, "input": dict(params), "path": command, "status": status}


# --- reading a call ---------------------------------------------------------------------


def parse_params(
    query: Iterable[tuple[str, str]], content_type: str | None, body: bytes
) -> dict[str, Any]:
    """The call's parameters from its query string and body, as rclone reads them.

    Query values come first; a form body (``application/x-www-form-urlencoded``) or a
    JSON object body (``application/json``, any charset) wins over them. For a repeated
    key the last value counts. Unlike rclone 1.60.1, a body of any other type is an
    error rather than silently ignored, because an ignored body turns ``vfs/forget``
    into "forget everything".
    """
    pairs = list(query)
    params: dict[str, Any] = dict(pairs)
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type == "application/json":
        if not body.strip():
            return params
        try:
            decoded = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise RcError(400, f"failed to read input JSON: {exc}") from None
        if not isinstance(decoded, dict):
            raise RcError(
                400, f"failed to read input JSON: expected an object, got {type(decoded).__name__}"
            )
        params.update(decoded)
    elif media_type == "application/x-www-form-urlencoded":
        try:
            text = body.decode("utf-8")
            form = parse_qsl(text, keep_blank_values=True, strict_parsing=False, errors="strict")
        except (UnicodeDecodeError, ValueError) as exc:
            raise RcError(400, f"failed to parse form/URL parameters: {exc}") from None
        # Go's r.Form puts the body's values before the query's; the last one counts.
        params.update(form)
        params.update(pairs)
    elif body.strip():
        raise RcError(
            400,
            f"can't read parameters from a body of type {content_type or '(none)'!r}: send "
            "Content-Type: application/json or application/x-www-form-urlencoded",
        )
    return params


def command_label(command: str) -> str:
    """The metrics label of a received call: its command if allowed, else ``"other"``.

    Anything else is whatever a caller typed: one label for all keeps the metric small.
    """
    return command if command in ALLOWED_COMMANDS else "other"


def refusal(command: str) -> RcError | None:
    """Why ``command`` is not passed on to any rclone, or None when it is allowed."""
    if command in ALLOWED_COMMANDS:
        return None
    if command in DANGEROUS_COMMANDS or command.startswith(DANGEROUS_PREFIXES):
        return RcError(
            403,
            f"shardproxy does not pass {command!r} on: only the cache calls "
            f"{', '.join(sorted(ALLOWED_COMMANDS))} reach the rclones",
        )
    return RcError(404, f"couldn't find method {command!r}")


def _control_params(params: Mapping[str, Any]) -> None:
    """Refuse rclone's job-control parameters (``_async``, ``_config``, ...)."""
    for key, value in params.items():
        if not key.startswith("_"):
            continue
        if key == "_async":
            if _go_bool(value, key) == "false":
                continue
            raise RcError(
                403, "_async is not supported: shardproxy answers every call when it is done"
            )
        raise RcError(400, f"parameter {key!r} is not supported by shardproxy")


def _go_bool(value: Any, key: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and value in _GO_BOOLS:
        return _GO_BOOLS[value]
    raise RcError(400, f"invalid value {key!r}={value!r}: use true or false")


def _as_string(value: Any, key: str) -> str:
    """rclone wants every value of these calls as a string; scalars are converted."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    raise RcError(400, f"value must be a string {key!r}={value!r}")


def _path(value: Any, key: str) -> str:
    path = _as_string(value, key)
    too_long = path_too_long(path, key)
    if too_long is not None:
        raise RcError(400, too_long)
    return path


@dataclass(frozen=True)
class PathParam:
    """One path of a call, as the caller sent it."""

    key: str
    kind: Literal["dir", "file"]
    path: str


@dataclass(frozen=True)
class PathCall:
    """A ``vfs/forget`` or ``vfs/refresh`` call, read and checked."""

    command: str
    paths: tuple[PathParam, ...]
    recursive: bool = False
    fs: str | None = None

    @property
    def everything(self) -> bool:
        """No path keys at all: rclone's "all" (forget all / refresh the root)."""
        return not self.paths


def read_path_call(command: str, params: Mapping[str, Any]) -> PathCall:
    """Check the parameters of a forget or refresh call the way rclone would."""
    _control_params(params)
    paths: list[PathParam] = []
    recursive = False
    fs: str | None = None
    for key, value in params.items():
        if key.startswith("_"):
            continue
        if key == "fs":
            fs = _as_string(value, key)
        elif key.startswith("dir"):
            paths.append(PathParam(key, "dir", _path(value, key)))
        elif key.startswith("file") and command == FORGET:
            paths.append(PathParam(key, "file", _path(value, key)))
        elif key == "recursive" and command == REFRESH:
            recursive = _go_bool(value, key) == "true"
        else:
            raise RcError(400, f"unknown key {key!r}")
    return PathCall(command, tuple(paths), recursive, fs)


def fanout_params(command: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """The caller's parameters a fan-out call passes on (``fs`` is set per target)."""
    _control_params(params)
    if command == "rc/noop":
        return {k: v for k, v in params.items() if not k.startswith("_")}
    if command == "core/stats" and "group" in params:
        return {"group": _as_string(params["group"], "group")}
    return {}
