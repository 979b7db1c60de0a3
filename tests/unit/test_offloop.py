"""Large bodies are parsed on a thread; small ones where they are."""

from __future__ import annotations

import threading

from shardproxy.web.offloop import OFF_LOOP_BYTES, parse_body


def thread_of(_body: bytes) -> int:
    return threading.get_ident()


async def test_a_large_body_is_parsed_off_the_event_loop() -> None:
    body = b"x" * (OFF_LOOP_BYTES + 1)
    assert await parse_body(thread_of, body, size=len(body)) != threading.get_ident()


async def test_a_small_body_is_parsed_on_the_event_loop() -> None:
    body = b"x" * OFF_LOOP_BYTES
    assert await parse_body(thread_of, body, size=len(body)) == threading.get_ident()
