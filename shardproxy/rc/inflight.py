"""RC deliveries on their way to an rclone, so that none is sent twice while it runs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable

from shardproxy.rc.replies import Failure, RcloneAnswer
from shardproxy.rc.route import TargetCall
from shardproxy.rc.targets import Delivery, Target

FlightKey = tuple[tuple[Target, str, str, str], bool]
Joined = tuple[Delivery, "asyncio.Future[RcloneAnswer]"]
AsDone = Callable[[list[TargetCall]], AsyncIterator[tuple[TargetCall, RcloneAnswer]]]


class InFlight:
    """Deliveries on their way to an rclone, so that none is sent again while it runs.

    A refresh can keep an rclone busy for long; a caller repeating it, or the retry
    loop, must not start the same work a second time. A delivery already on its way
    shares the answer of the call carrying it instead.
    """

    def __init__(self) -> None:
        self._answers: dict[FlightKey, asyncio.Future[RcloneAnswer]] = {}
        # Deliveries that shared a running call's answer instead of being sent again.
        self.shared_count = 0

    @staticmethod
    def _key(delivery: Delivery) -> FlightKey:
        return (delivery.key, delivery.recursive)

    def is_running(self, delivery: Delivery) -> bool:
        """True while a call carrying this delivery waits for its rclone."""
        return self._key(delivery) in self._answers

    def split(self, deliveries: Iterable[Delivery]) -> tuple[list[Delivery], list[Joined]]:
        """(to send, already on their way); marks the first as on their way at once.

        No await between the check and the mark: two calls cannot both send a path.
        Each delivery already on its way comes with the answer it will share, taken now:
        by the time the caller awaits it, the call carrying it may be done and unmarked.
        """
        free: list[Delivery] = []
        running: list[Joined] = []
        loop = asyncio.get_running_loop()
        for delivery in deliveries:
            key = self._key(delivery)
            answer = self._answers.get(key)
            if answer is not None:
                running.append((delivery, answer))
            else:
                self._answers[key] = loop.create_future()
                free.append(delivery)
        return free, running

    async def send_each(
        self, as_done: AsDone, calls: list[TargetCall]
    ) -> AsyncIterator[tuple[TargetCall, RcloneAnswer]]:
        """Send calls whose deliveries ``split`` marked; yield and share each answer.

        Each answer is yielded as soon as it is back and its deliveries are unmarked; a
        call cut short answers those sharing it with a Failure.
        """
        answered: set[int] = set()
        try:
            async for call, outcome in as_done(calls):
                self._answer(call, outcome)
                answered.add(id(call))
                yield call, outcome
        finally:
            for call in calls:
                if id(call) not in answered:
                    self._answer(call, Failure("the call carrying it was cancelled"))

    def _answer(self, call: TargetCall, outcome: RcloneAnswer) -> None:
        for delivery in call.deliveries:
            answer = self._answers.pop(self._key(delivery), None)
            if answer is not None and not answer.done():
                answer.set_result(outcome)

    async def join(self, running: Iterable[Joined]) -> list[tuple[TargetCall, RcloneAnswer]]:
        """The answers of deliveries already on their way, each as a call of its own."""
        joined = []
        for delivery, answer in running:
            self.shared_count += 1
            # shield: a caller that hangs up must not cancel the answer others await.
            outcome = await asyncio.shield(answer)
            joined.append((TargetCall(delivery.target, delivery.command, {}, (delivery,)), outcome))
        return joined
