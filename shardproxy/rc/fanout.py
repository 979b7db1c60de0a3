"""Fan-out RC calls (``vfs/stats``, ``core/version``, ...): the same call to every rclone,
and their replies merged into one as a single rclone would give it. No I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from shardproxy.rc.calls import RcError
from shardproxy.rc.replies import Failure, RcloneAnswer, Reply
from shardproxy.rc.route import TargetCall
from shardproxy.rc.targets import Target, Topology


def plan_fanout(command: str, params: Mapping[str, Any], topology: Topology) -> list[TargetCall]:
    """The same call to every rclone, with ``fs`` set to each one's own (or left out)."""
    calls = []
    for target in topology.targets:
        body = dict(params)
        fs = topology.fs_names.get(target)
        if fs and command == "vfs/stats":
            body["fs"] = fs
        calls.append(TargetCall(target, command, body, ()))
    return calls


_DISK_SUMS = ("files", "erroredFiles", "bytesUsed", "uploadsInProgress", "uploadsQueued")
_MAX_NOT_SUM = frozenset({"elapsedTime", "transferTime"})


def merge_fanout(
    command: str,
    params: Mapping[str, Any],
    outcomes: Mapping[Target, RcloneAnswer],
    proxy_version: str,
) -> dict[str, Any]:
    """One reply for a fan-out call, as one rclone would give it, plus per-rclone detail.

    ``params`` are the caller's own (``fs`` names the caller's idea of the remote).

    Raises RcError (502) when no rclone answered.
    """
    answered = {t: o.body for t, o in sorted(outcomes.items()) if isinstance(o, Reply)}
    errors = {t.name: o.reason for t, o in sorted(outcomes.items()) if isinstance(o, Failure)}
    if not answered:
        detail = "; ".join(f"{name}: {reason}" for name, reason in errors.items())
        raise RcError(
            502,
            f"no rclone answered {command}: "
            + (detail or "none is configured (--shard-rc, --rc-fallback)"),
        )
    per_target = {t.name: body for t, body in answered.items()}
    reply: dict[str, Any]
    if command == "vfs/stats":
        reply = _merge_vfs_stats(params, answered)
    elif command == "vfs/list":
        names: list[str] = []
        for body in answered.values():
            for name in body.get("vfses") or []:
                if isinstance(name, str) and name not in names:
                    names.append(name)
        reply = {"vfses": names, "targets": per_target}
    elif command == "core/version":
        oldest = min(answered.values(), key=_version_order)
        reply = dict(oldest)
        reply["shardproxy"] = proxy_version
        reply["targets"] = per_target
    elif command == "core/stats":
        reply = _sum_merge(list(answered.values()))
        reply["targets"] = per_target
    else:  # rc/noop echoes its input, like rclone
        reply = {k: v for k, v in params.items() if not k.startswith("_")}
    if errors:
        reply["errors"] = errors
    return reply


def _version_order(body: dict[str, Any]) -> tuple[int, ...]:
    decomposed = body.get("decomposed")
    if isinstance(decomposed, list) and all(isinstance(n, int) for n in decomposed):
        return tuple(decomposed)
    return (1 << 30,)


def _merge_vfs_stats(
    params: Mapping[str, Any], answered: Mapping[Target, dict[str, Any]]
) -> dict[str, Any]:
    """Totals of the counters a caller reads, with each rclone's stats under its names."""
    fs = params.get("fs")
    reply: dict[str, Any] = {
        "fs": fs if isinstance(fs, str) and fs else "shardproxy",
        "inUse": sum(_number(b.get("inUse")) for b in answered.values()),
        "metadataCache": {
            key: sum(_number((b.get("metadataCache") or {}).get(key)) for b in answered.values())
            for key in ("dirs", "files")
        },
    }
    disks = [b["diskCache"] for b in answered.values() if isinstance(b.get("diskCache"), dict)]
    if disks:
        disk: dict[str, Any] = {key: sum(_number(d.get(key)) for d in disks) for key in _DISK_SUMS}
        disk["outOfSpace"] = any(bool(d.get("outOfSpace")) for d in disks)
        reply["diskCache"] = disk
    reply["targets"] = {t.name: body for t, body in answered.items()}
    reply["vfses"] = {str(body.get("fs") or t.name): body for t, body in answered.items()}
    return reply


def _number(value: Any) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    return value


def _sum_merge(bodies: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Add up numbers, OR booleans, join lists, keep the first string (for core/stats)."""
    merged: dict[str, Any] = {}
    for body in bodies:
        for key, value in body.items():
            if key not in merged:
                merged[key] = _copy(value)
                continue
            have = merged[key]
            if isinstance(value, bool) and isinstance(have, bool):
                merged[key] = have or value
            elif isinstance(value, int | float) and isinstance(have, int | float):
                merged[key] = max(have, value) if key in _MAX_NOT_SUM else have + value
            elif isinstance(value, list) and isinstance(have, list):
                merged[key] = have + value
            elif isinstance(value, dict) and isinstance(have, dict):
                merged[key] = _sum_merge([have, value])
            elif not have and value:
                merged[key] = _copy(value)
    return merged


def _copy(value: Any) -> Any:
    if isinstance(value, list):
        return list(value)
    if isinstance(value, dict):
        return dict(value)
    return value
