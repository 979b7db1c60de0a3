"""rclone's answers to planned RC calls, as rclone 1.60.1 gives them."""

from __future__ import annotations

from typing import Any

from shardproxy.rc.calls import FORGET
from shardproxy.rc.replies import Reply, delivered_by
from shardproxy.rc.route import TargetCall


def answer_all(calls: list[TargetCall] | tuple[TargetCall, ...]) -> dict[Any, str]:
    """Every call answered the way rclone answers it."""
    confirmed: dict[Any, str] = {}
    for call in calls:
        confirmed.update(delivered_by(call, rclone_reply(call)))
    return confirmed


def rclone_reply(call: TargetCall) -> Reply:
    """What rclone 1.60.1 answers to ``call``."""
    paths = [v for k, v in call.params.items() if k.startswith(("dir", "file"))]
    if call.command == FORGET:
        return Reply({"forgotten": [p.strip("/") for p in paths]})
    return Reply({"result": {p: "OK" for p in paths} if paths else {"": "OK"}})
