"""Planning of rclone remote-control (RC) calls over the shard rclones, with no I/O.

A caller that believes it talks to one rclone sends ``vfs/forget {"dir": ".ids/9/6/1/b/0",
"dir2": "/content/tv/Show"}``. Here each path of that call (read by ``calls``) is placed
on the rclone that owns it (shard N for ``.ids/<h>/...``, the fallback rclones for the
rest) with the path mapped into that rclone's view, and the per-rclone calls are planned;
``replies`` merges their answers back into one. Values in, values out: ``server`` and
``send`` do the I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from shardproxy.core.shards import (
    IDS_NAME,
    ViewPath,
    ViewPathError,
    is_ids_root_name,
    view_name,
)
from shardproxy.rc.bounds import bound
from shardproxy.rc.calls import FORGET, MAX_PATHS_PER_CALL, REFRESH, PathCall, PathParam
from shardproxy.rc.targets import Delivery, Target, Topology, trimmed


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
            view = ViewPath.parse(names[0], names[1:2], shard_map)
        except ViewPathError as exc:
            return Placement((), "", f"{path!r}: {exc}")
        owner = view.owner(shard_map)
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
class TargetCall:
    """One POST to one rclone: the exact JSON body and the deliveries it carries."""

    target: Target
    command: str
    params: dict[str, Any]
    deliveries: tuple[Delivery, ...]


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


def fallback_forgets(placement: Placement, topology: Topology) -> list[tuple[Target, str]]:
    """The fallback rclones' share of a forget of ``.ids`` paths: (target, path) pairs.

    A fallback (``rest``) mounts the proxy's whole root, and reads a shard's files while
    that shard is down, so its directory cache may hold the same folders: under
    ``.ids/...`` (links unchanged) and under ``.ids-s<N>/...`` (shard links). It is told
    to forget both spellings whenever the owning shard is, not only while the shard is
    down: the proxy cannot see which branch mergerfs falls back to, and a forget is
    cheap (rclone echoes it without touching the backend). Refreshes are not copied:
    they would make ``rest`` list folders it may never show.
    """
    shards = [target for target in placement.targets if target.role == "shard"]
    if not shards or topology.fallbacks == 0:
        return []
    below = f"/{placement.path}" if placement.path else ""
    spellings = [IDS_NAME + below] + [view_name(t.index) + below for t in shards]
    return [(target, path) for target in _fallbacks(topology) for path in spellings]


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
        if call.command == FORGET:
            own += tuple(
                Delivery(target, FORGET, param.kind, path)
                for target, path in fallback_forgets(placement, topology)
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
        whole = delivery.kind == "all" or (is_refresh and not trimmed(delivery.path))
        group = (delivery.target, delivery.command, delivery.recursive and is_refresh, whole)
        kind = "all" if whole else delivery.kind
        groups.setdefault(group, {}).setdefault((kind, trimmed(delivery.path)), []).append(delivery)
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
