"""Planning of rclone remote-control (RC) calls over the shard rclones, with no I/O.

A caller that believes it talks to one rclone sends ``vfs/forget {"dir": ".ids/9/6/1/b/0",
"dir2": "/content/tv/Show"}``. Here that call is read, each path is placed on the rclone
that owns it (shard N for ``.ids/<h>/...``, the fallback rclones for the rest) with the
path mapped into that rclone's view, the per-rclone calls are planned, and their replies
are merged back into one reply in rclone's format that lists only what was delivered.
Everything is values in, values out: the aiohttp glue in ``rcserver`` does the sending.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qsl

import orjson

from shardproxy.core.shards import IDS_NAME, ShardMap, ViewPath, ViewPathError, is_ids_root_name
from shardproxy.rc.bounds import CLAMP_NOTE, bound
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

Kind = Literal["dir", "file", "all"]


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


# --- where a path goes --------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class Target:
    """One rclone RC endpoint: shard N's, or the k-th fallback."""

    role: Literal["shard", "fallback"]
    index: int

    @property
    def name(self) -> str:
        """``shard0``, ``fallback1``: how logs, replies and metrics name it."""
        return f"{self.role}{self.index}"

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class Topology:
    """The rclones there are to talk to."""

    shard_map: ShardMap
    shards: frozenset[int]
    fallbacks: int = 0
    fs_names: Mapping[Target, str] = field(default_factory=dict)

    @property
    def targets(self) -> tuple[Target, ...]:
        """Every configured rclone: shards in order, then fallbacks."""
        return (
            *(Target("shard", n) for n in sorted(self.shards)),
            *(Target("fallback", k) for k in range(self.fallbacks)),
        )


@dataclass(frozen=True)
class Placement:
    """Where one caller path goes and how those rclones spell it.

    ``missing`` says why it cannot be delivered everywhere it should go (an rclone that
    is not configured, or a path that names no rclone); such a path is never reported
    as done, though the configured rclones among its owners still get it.
    """

    targets: tuple[Target, ...]
    path: str
    missing: str = ""


def _segments(path: str) -> list[str] | None:
    names = [name for name in path.split("/") if name]
    if any(name in (".", "..") for name in names):
        return None
    return names


def place(path: str, topology: Topology) -> Placement:
    """Place one caller path: ``.ids/<h>/...`` on h's shard, ``.ids`` on every shard."""
    names = _segments(path)
    if names is None:
        return Placement((), "", f"path {path!r} has a '.' or '..' segment; send a plain path")
    shard_map = topology.shard_map
    if not names:
        everyone = (*(Target("shard", n) for n in range(shard_map.count)), *_fallbacks(topology))
        return _configured(everyone, "", topology)
    if is_ids_root_name(names[0]):
        try:
            # Only the first level decides the owner; deeper names go to it as written.
            place = ViewPath.parse(names[0], names[1:2], shard_map)
        except ViewPathError as exc:
            return Placement((), "", f"{path!r}: {exc}")
        owner = place.owner(shard_map)
        owners = range(shard_map.count) if owner is None else (owner,)
        below = "/".join(names[1:])
        return _configured(tuple(Target("shard", n) for n in owners), below, topology)
    if topology.fallbacks == 0:
        return Placement(
            (), "", "it is outside .ids and no fallback rclone is configured (--rc-fallback)"
        )
    return Placement(_fallbacks(topology), path)


def _fallbacks(topology: Topology) -> tuple[Target, ...]:
    return tuple(Target("fallback", k) for k in range(topology.fallbacks))


def _configured(wanted: Sequence[Target], path: str, topology: Topology) -> Placement:
    have = set(topology.targets)
    targets = tuple(t for t in wanted if t in have)
    absent = [t for t in wanted if t not in have]
    if not absent:
        return Placement(targets, path)
    shards = [str(t.index) for t in absent if t.role == "shard"]
    reasons = []
    if shards:
        reasons.append(f"shard {', '.join(shards)} has no RC URL (--shard-rc N=URL)")
    if any(t.role == "fallback" for t in absent):
        reasons.append("no fallback rclone is configured (--rc-fallback)")
    return Placement(targets, path, "; ".join(reasons))


def unmap(target: Target, path: str) -> str:
    """The caller-side spelling of a path as ``target`` sees it (for logs and checks)."""
    if target.role == "shard":
        return f"{IDS_NAME}/{path}" if path else IDS_NAME
    return path


# --- planning the outgoing calls ----------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    """One path to be forgotten or refreshed on one rclone (``path`` in its view).

    ``kind`` "all" is a call with no path at all (forget everything, refresh the root).
    A refresh of ``path`` "" is sent as a call without ``dir``, because rclone answers
    ``dir=""`` with "file does not exist".
    """

    target: Target
    command: str
    kind: Kind
    path: str
    recursive: bool = False

    @property
    def key(self) -> tuple[Target, str, str, str]:
        """What makes two deliveries the same work (``recursive`` is merged)."""
        return (self.target, self.command, self.kind, _trim(self.path))


@dataclass(frozen=True)
class TargetCall:
    """One POST to one rclone: the exact JSON body and the deliveries it carries."""

    target: Target
    command: str
    params: dict[str, Any]
    deliveries: tuple[Delivery, ...]


def _trim(path: str) -> str:
    return path.strip("/")


@dataclass(frozen=True)
class PlannedPath:
    """One caller path with its placement and the deliveries it makes."""

    param: PathParam
    placement: Placement
    deliveries: tuple[Delivery, ...]


@dataclass(frozen=True)
class PathPlan:
    """A forget or refresh call split into deliveries and per-rclone calls."""

    call: PathCall
    paths: tuple[PlannedPath, ...]
    whole: tuple[Delivery, ...]
    calls: tuple[TargetCall, ...]

    @property
    def deliveries(self) -> tuple[Delivery, ...]:
        """Every delivery of the call, in call order."""
        return self.whole + tuple(d for planned in self.paths for d in planned.deliveries)


def plan_path_call(call: PathCall, topology: Topology) -> PathPlan:
    """Place each caller path, then group the deliveries into per-rclone calls."""
    whole: tuple[Delivery, ...] = ()
    planned: list[PlannedPath] = []
    if call.everything:
        whole = tuple(
            bound(Delivery(t, call.command, "all", "", call.recursive)) for t in topology.targets
        )
    for param in call.paths:
        placement = place(param.path, topology)
        own = tuple(
            bound(Delivery(target, call.command, param.kind, placement.path, call.recursive))
            for target in placement.targets
        )
        planned.append(PlannedPath(param, placement, own))
    deliveries = whole + tuple(d for p in planned for d in p.deliveries)
    return PathPlan(call, tuple(planned), whole, tuple(plan_calls(deliveries, topology)))


def plan_calls(deliveries: Iterable[Delivery], topology: Topology) -> list[TargetCall]:
    """Group deliveries into calls: one target, one command, keys renumbered, values strings.

    Repeated paths are sent once (every delivery still rides on the call that carries
    its path). A refresh of the root goes alone, without ``dir``; a recursive and a
    plain refresh of the same target go in separate calls.
    """
    groups: dict[tuple[Target, str, bool, bool], dict[tuple[str, str], list[Delivery]]] = {}
    for delivery in deliveries:
        is_refresh = delivery.command == REFRESH
        whole = delivery.kind == "all" or (is_refresh and not _trim(delivery.path))
        group = (delivery.target, delivery.command, delivery.recursive and is_refresh, whole)
        kind = "all" if whole else delivery.kind
        groups.setdefault(group, {}).setdefault((kind, _trim(delivery.path)), []).append(delivery)
    calls: list[TargetCall] = []
    for (target, command, recursive, whole), unique in sorted(groups.items(), key=lambda g: g[0]):
        base: dict[str, Any] = {}
        fs = topology.fs_names.get(target)
        if fs:
            base["fs"] = fs
        if recursive:
            base["recursive"] = "true"
        items = list(unique.values())
        if whole:
            carried = tuple(d for same in items for d in same)
            calls.append(TargetCall(target, command, dict(base), carried))
            continue
        for start in range(0, len(items), MAX_PATHS_PER_CALL):
            chunk = items[start : start + MAX_PATHS_PER_CALL]
            params = dict(base)
            counters: dict[str, int] = {}
            for same in chunk:
                kind = same[0].kind
                counters[kind] = counters.get(kind, 0) + 1
                number = counters[kind]
                params[kind if number == 1 else f"{kind}{number}"] = same[0].path
            carried = tuple(d for same in chunk for d in same)
            calls.append(TargetCall(target, command, params, carried))
    return calls


# --- replies --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """An rclone answered 200 with this JSON object."""

    body: dict[str, Any]


@dataclass(frozen=True)
class Failure:
    """The call did not get through: refused, unreachable, timed out, or garbage back."""

    reason: str


Outcome = Reply | Failure


def delivered_by(call: TargetCall, outcome: Outcome) -> dict[tuple[Target, str, str, str], str]:
    """The deliveries an rclone's reply confirms, with its answer ("OK" or its error).

    A forget counts when its path comes back in ``forgotten``; a refresh when its path
    has an entry in ``result`` (whatever it says: the rclone got it). A call without
    paths counts when the rclone answered at all.
    """
    if isinstance(outcome, Failure):
        return {}
    body = outcome.body
    if call.command == FORGET:
        forgotten = body.get("forgotten")
        echoed = (
            {_trim(p) for p in forgotten if isinstance(p, str)}
            if isinstance(forgotten, list)
            else set()
        )
        return {
            d.key: "OK"
            for d in call.deliveries
            if d.kind == "all" or (isinstance(forgotten, list) and _trim(d.path) in echoed)
        }
    result = body.get("result")
    if not isinstance(result, dict):
        return {}
    answers = {_trim(str(k)): v for k, v in result.items()}
    return {d.key: str(answers[_trim(d.path)]) for d in call.deliveries if _trim(d.path) in answers}


def _not_delivered(delivery: Delivery, failures: Mapping[Target, str]) -> str:
    reason = failures.get(delivery.target, "no confirmation in its reply")
    return f"not delivered to {delivery.target}: {reason}; will retry"


def merge_path_reply(
    plan: PathPlan,
    confirmed: Mapping[tuple[Target, str, str, str], str],
    failures: Mapping[Target, str],
) -> dict[str, Any]:
    """The caller's reply: only paths every owner confirmed, under the caller's spelling.

    Raises RcError for an "everything" call that did not reach every rclone, since its
    rclone reply (an empty list) cannot say so.
    """
    call = plan.call
    if call.everything:
        missing = [d for d in plan.whole if d.key not in confirmed]
        if missing or not plan.whole:
            reasons = [_not_delivered(d, failures) for d in missing] or [
                "no rclone is configured (--shard-rc, --rc-fallback)"
            ]
            raise RcError(502, f"{call.command} of everything: " + "; ".join(reasons))
        if call.command == FORGET:
            return {"forgotten": []}
        answer = _combine([(d.target, confirmed[d.key]) for d in plan.whole])
        return {"result": {"": _clamp_noted(call, plan.whole, answer)}}
    forgotten: list[str] = []
    answered: dict[str, str] = {}
    problems: dict[str, str] = {}
    for planned in plan.paths:
        reasons = [planned.placement.missing] if planned.placement.missing else []
        answers = []
        for d in planned.deliveries:
            if d.key in confirmed:
                answers.append((d.target, confirmed[d.key]))
            else:
                reasons.append(_not_delivered(d, failures))
        if reasons or not answers:
            problems[planned.param.path] = answered[planned.param.path] = "; ".join(reasons)
        else:
            forgotten.append(_trim(planned.param.path))
            answer = _combine(answers)
            answered[planned.param.path] = _clamp_noted(call, planned.deliveries, answer)
    if call.command == REFRESH:
        return {"result": answered}
    reply: dict[str, Any] = {"forgotten": forgotten}
    if problems:
        reply["notForgotten"] = problems
    return reply


def _clamp_noted(call: PathCall, deliveries: Sequence[Delivery], answer: str) -> str:
    """The answer, saying why a recursive refresh was sent without recursion."""
    if call.recursive and any(not d.recursive for d in deliveries):
        return f"{answer} ({CLAMP_NOTE})"
    return answer


def _combine(answers: Sequence[tuple[Target, str]]) -> str:
    """One rclone's answer as is; several rclones' as "OK" only when all said "OK"."""
    if len(answers) == 1:
        return answers[0][1]
    bad = [f"{target}: {answer}" for target, answer in answers if answer != "OK"]
    return "; ".join(bad) if bad else "OK"
