"""Deliveries on their way: a second caller shares the first call's answer, never 'lost'."""

from __future__ import annotations

from collections.abc import AsyncIterator

from shardproxy.rc.calls import FORGET
from shardproxy.rc.inflight import InFlight
from shardproxy.rc.replies import RcloneAnswer, Reply
from shardproxy.rc.route import TargetCall
from shardproxy.rc.targets import Delivery, Target

S2 = Target("shard", 2)
ANSWER = Reply({"forgotten": ["9/6", "9/7"]})


async def answered(calls: list[TargetCall]) -> AsyncIterator[tuple[TargetCall, RcloneAnswer]]:
    for call in calls:
        yield call, ANSWER


async def test_a_shared_delivery_gets_the_answer_of_a_call_that_finished_first() -> None:
    flight = InFlight()
    deliveries = [Delivery(S2, FORGET, "dir", "9/6"), Delivery(S2, FORGET, "dir", "9/7")]
    free, running = flight.split(deliveries)
    assert running == []
    _, shared = flight.split(deliveries)
    # The carrying call comes back (and unmarks its paths) before the sharer awaits.
    async for _ in flight.send_each(answered, [TargetCall(S2, FORGET, {}, tuple(free))]):
        pass
    joined = await flight.join(shared)
    assert [outcome for _, outcome in joined] == [ANSWER, ANSWER]
    assert [call.deliveries for call, _ in joined] == [(d,) for d in deliveries]
    assert not any(flight.is_running(d) for d in deliveries)
