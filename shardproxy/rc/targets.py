"""The rclones there are and the work each gets: ``Target``, ``Topology``, ``Delivery``.

Pure values shared by the planner (``route``), the refresh bound (``bounds``), the
merged reply (``replies``) and the senders.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from shardproxy.core.shards import ShardMap

Kind = Literal["dir", "file", "all"]


def trimmed(path: str) -> str:
    """A path without its leading and trailing slashes: how two spellings compare."""
    return path.strip("/")


@dataclass(frozen=True, order=True)
class Target:
    """One rclone RC endpoint: shard N's, or the k-th fallback."""

    role: Literal["shard", "fallback"]
    index: int

    @property
    def name(self) -> str:
        """``shard0``, ``fallback1``: how logs, replies and metrics name it."""
        return f"{self.role}{self.index}"

    @property
    def label(self) -> str:
        """The ``shard`` label of its metrics: ``"0"`` for shard 0's, ``"fallback0"`` and on."""
        return str(self.index) if self.role == "shard" else self.name

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
        return (self.target, self.command, self.kind, trimmed(self.path))
