"""Merging the rclones' answers into the one reply the caller expects, in rclone's format.

Only what every owning rclone confirmed is reported as done; the rest is named with
the reason and retried. Pure: answers in, reply out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from shardproxy.rc.bounds import CLAMP_NOTE
from shardproxy.rc.calls import FORGET, REFRESH, PathCall, RcError
from shardproxy.rc.route import PathPlan, TargetCall
from shardproxy.rc.targets import Delivery, Target, trimmed


@dataclass(frozen=True)
class Reply:
    """An rclone answered 200 with this JSON object."""

    body: dict[str, Any]


@dataclass(frozen=True)
class Failure:
    """The call did not get through: refused, unreachable, timed out, or garbage back."""

    reason: str


RcloneAnswer = Reply | Failure


def delivered_by(
    call: TargetCall, outcome: RcloneAnswer
) -> dict[tuple[Target, str, str, str], str]:
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
            {trimmed(p) for p in forgotten if isinstance(p, str)}
            if isinstance(forgotten, list)
            else set()
        )
        return {
            d.key: "OK"
            for d in call.deliveries
            if d.kind == "all" or (isinstance(forgotten, list) and trimmed(d.path) in echoed)
        }
    result = body.get("result")
    if not isinstance(result, dict):
        return {}
    answers = {trimmed(str(k)): v for k, v in result.items()}
    return {
        d.key: str(answers[trimmed(d.path)]) for d in call.deliveries if trimmed(d.path) in answers
    }


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
            forgotten.append(trimmed(planned.param.path))
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
