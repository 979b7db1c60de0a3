"""Parsing a large body on a thread, so the event loop (and every other client) goes on.

A listing of a few KiB parses in microseconds, cheaper than a hop to a thread; one of
megabytes takes long enough to stall every stream the process serves.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

# Bodies above this many bytes are parsed on a thread.
OFF_LOOP_BYTES = 256 << 10


async def parse_body(function: Callable[..., T], *args: Any, size: int) -> T:
    """``function(*args)``, on a thread when the body it parses is over ``OFF_LOOP_BYTES``."""
    if size > OFF_LOOP_BYTES:
        return await asyncio.to_thread(function, *args)
    return function(*args)
