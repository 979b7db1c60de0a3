"""One check at a time for every caller, its answer reused for a while."""

from __future__ import annotations

import asyncio

import pytest

from shardproxy.ops.coalesce import Coalesced


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Check:
    """Counts its runs; each waits for ``release`` and answers the run's number."""

    def __init__(self) -> None:
        self.runs = 0
        self.release = asyncio.Event()

    async def __call__(self) -> int:
        self.runs += 1
        run = self.runs
        await self.release.wait()
        return run


async def test_concurrent_callers_share_one_run() -> None:
    check = Check()
    shared = Coalesced(check, 1.0, clock=Clock())
    waiting = [asyncio.create_task(shared.get()) for _ in range(5)]
    await asyncio.sleep(0)
    check.release.set()
    assert await asyncio.gather(*waiting) == [1] * 5
    assert check.runs == 1


async def test_an_answer_is_reused_until_it_is_ttl_old() -> None:
    check, clock = Check(), Clock()
    check.release.set()
    shared = Coalesced(check, 1.0, clock=clock)
    assert await shared.get() == 1
    clock.now += 0.99
    assert await shared.get() == 1
    clock.now += 0.01
    assert await shared.get() == 2


async def test_a_caller_that_goes_away_does_not_cancel_the_others_check() -> None:
    check = Check()
    shared = Coalesced(check, 1.0, clock=Clock())
    first = asyncio.create_task(shared.get())
    second = asyncio.create_task(shared.get())
    await asyncio.sleep(0)
    first.cancel()
    check.release.set()
    assert await second == 1


async def test_a_failed_check_is_not_kept() -> None:
    calls = 0

    async def failing() -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise OSError("down")
        return calls

    shared = Coalesced(failing, 1.0, clock=Clock())
    with pytest.raises(OSError, match="down"):
        await shared.get()
    assert await shared.get() == 2
