"""RC deliveries on their way to an rclone, so that none is sent twice while it runs."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable

from shardproxy.rcroute import Delivery, Failure, Outcome, Target, TargetCall

FlightKey = tuple[tuple[Target, str, str, str], bool]
SendAll = Callable[[list[TargetCall]], Awaitable[list[tuple[TargetCall, Outcome]]]]


class InFlight:
    """Deliveries on their way to an rclone, so that none is sent again while it runs.

    A refresh can keep an rclone busy for long; a caller repeating it, or the retry
    loop, must not start the same work a second time. A delivery already on its way
    shares the answer of the call carrying it instead.
    """

    def __init__(self) -> None:
        self._answers: dict[FlightKey, asyncio.Future[Outcome]] = {}
        # Deliveries that shared a running call's answer instead of being sent again.
        self.shared_count = 0

    @staticmethod
    def _key(delivery: Delivery) -> FlightKey:
        return (delivery.key, delivery.recursive)

    def is_running(self, delivery: Delivery) -> bool:
        """True while a call carrying this delivery waits for its rclone."""
        return self._key(delivery) in self._answers

    def split(self, deliveries: Iterable[Delivery]) -> tuple[list[Delivery], list[Delivery]]:
        """(to send, already on their way); marks the first as on their way at once.

        No await between the check and the mark: two calls cannot both send a path.
        """
        free: list[Delivery] = []
        running: list[Delivery] = []
        loop = asyncio.get_running_loop()
        for delivery in deliveries:
            key = self._key(delivery)
            if key in self._answers:
                running.append(delivery)
            else:
                self._answers[key] = loop.create_future()
                free.append(delivery)
        return free, running

    async def send(
        self, send_all: SendAll, calls: list[TargetCall]
    ) -> list[tuple[TargetCall, Outcome]]:
        """Send calls whose deliveries ``split`` marked; share each answer, then unmark."""
        results: list[tuple[TargetCall, Outcome]] = []
        try:
            results = await send_all(calls)
        finally:
            outcomes = {id(call): outcome for call, outcome in results}
            for call in calls:
                outcome = outcomes.get(id(call), Failure("the call carrying it was cancelled"))
                for delivery in call.deliveries:
                    answer = self._answers.pop(self._key(delivery), None)
                    if answer is not None and not answer.done():
                        answer.set_result(outcome)
        return results

    async def join(self, deliveries: Iterable[Delivery]) -> list[tuple[TargetCall, Outcome]]:
        """The answers of deliveries already on their way, each as a call of its own."""
        joined = []
        for delivery in deliveries:
            self.shared_count += 1
            answer = self._answers.get(self._key(delivery))
            # shield: a caller that hangs up must not cancel the answer others await.
            outcome = await asyncio.shield(answer) if answer is not None else Failure("lost")
            joined.append((TargetCall(delivery.target, delivery.command, {}, (delivery,)), outcome))
        return joined
