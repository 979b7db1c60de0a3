"""NzbDav's own delays, added on request: a listing takes milliseconds, a first byte far more.

NzbDav answers a PROPFIND from its database (a few milliseconds), but the first byte of a
file comes from a Usenet provider: tens to hundreds of milliseconds while it fetches and
decodes the first article. ``Latency`` holds both; the server awaits them before it
answers.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field


@dataclass
class Latency:
    """Seconds before a PROPFIND's answer, and before a GET's first byte (drawn in a range)."""

    listing: float = 0.0
    first_byte: tuple[float, float] = (0.0, 0.0)
    seed: int = 0
    _draw: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        low, high = self.first_byte
        if self.listing < 0 or low < 0 or high < low:
            raise ValueError(f"latencies must be >= 0 and low <= high, got {self}")
        self._draw = random.Random(self.seed)

    async def before_listing(self) -> None:
        """Wait as NzbDav does before it answers a PROPFIND."""
        if self.listing:
            await asyncio.sleep(self.listing)

    async def before_first_byte(self) -> None:
        """Wait as NzbDav does before the first byte of a file: a Usenet fetch."""
        low, high = self.first_byte
        if high:
            await asyncio.sleep(low if low == high else self._draw.uniform(low, high))


def parse_milliseconds(text: str) -> tuple[float, float]:
    """``"80"`` or ``"30-300"`` (milliseconds) as a (low, high) range in seconds."""
    low, _, high = text.partition("-")
    try:
        values = (float(low), float(high or low))
    except ValueError:
        raise ValueError(f"want MS or LOW-HIGH in milliseconds, got {text!r}") from None
    if values[0] < 0 or values[1] < values[0]:
        raise ValueError(f"want 0 <= LOW <= HIGH milliseconds, got {text!r}")
    return values[0] / 1000, values[1] / 1000
