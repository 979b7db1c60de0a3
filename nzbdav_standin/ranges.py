"""The Range header as NWebDav reads it, and the reply NzbDav's GET handler plans from it.

NWebDav matches ``bytes=(\\d*)-(\\d*)`` anywhere in the header and keeps the
first match, so only the first range counts and a suffix range ``bytes=-N``
becomes ``0..N`` (the first N+1 bytes). A header that does not match is an
error (500). An ``If-Range`` that is not a date drops the range altogether; a
date is accepted and never compared.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime

_RANGE = re.compile(r"bytes=(?P<start>[0-9]*)-(?P<end>[0-9]*)")
_INT64_MAX = 2**63 - 1
_DATE_FORMATS = (
    "%Y-%m-%d",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M:%S",
    "%m/%d/%Y",
    "%m/%d/%Y %H:%M:%S",
    "%d %b %Y",
    "%d %B %Y",
    "%b %d %Y",
    "%B %d %Y",
)


class RangeFormatError(ValueError):
    """The Range header is not ``bytes=<start>-<end>``; NzbDav answers 500."""


@dataclass(frozen=True)
class ByteRange:
    """The range NWebDav parsed: either bound may be missing."""

    start: int | None
    end: int | None


def looks_like_date(text: str) -> bool:
    """Approximate .NET ``DateTime.TryParse`` (invariant culture) for ``If-Range`` values."""
    value = text.strip()
    if not value or value.startswith(('"', "W/")):
        return False
    try:
        parsedate_to_datetime(value)
        return True
    except (TypeError, ValueError, IndexError):
        pass
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
        return True
    except ValueError:
        pass
    for pattern in _DATE_FORMATS:
        try:
            datetime.strptime(value, pattern)
            return True
        except ValueError:
            continue
    return False


def parse_range(range_header: str | None, if_range: str | None) -> ByteRange | None:
    """Parse ``Range`` (and ``If-Range``) like NWebDav's ``RequestHelper.GetRange``.

    Returns ``None`` when there is no range to honour. Raises
    ``RangeFormatError`` for a header NWebDav cannot parse.
    """
    if not range_header:
        return None
    match = _RANGE.search(range_header)
    if match is None:
        raise RangeFormatError(f"Illegal format for range header: {range_header}")
    start_text, end_text = match.group("start"), match.group("end")
    start = int(start_text) if start_text else None
    end = int(end_text) if end_text else None
    if (start or 0) > _INT64_MAX or (end or 0) > _INT64_MAX:
        # long.Parse overflows: another unhandled exception, another 500.
        raise RangeFormatError(f"Range bound does not fit in a long: {range_header}")
    if if_range is not None and not looks_like_date(if_range):
        return None
    return ByteRange(start, end)


@dataclass(frozen=True)
class RangePlan:
    """What the GET handler sends for one file: status, body bounds and Content-Range."""

    status: int
    start: int
    end_inclusive: int
    content_range: str | None

    @property
    def length(self) -> int:
        """Number of body bytes (0 for 416)."""
        return 0 if self.status == 416 else self.end_inclusive - self.start + 1


def plan_range(requested: ByteRange | None, size: int) -> RangePlan:
    """Plan the reply to a GET of ``size`` bytes, with NzbDav's quirks.

    Content-Range is sent whenever a range was honoured; the status is 206
    only when fewer bytes than the whole file go out, so ``bytes=0-`` is a
    200 with a Content-Range. A start past the end is 416 ``bytes */size``.
    """
    if requested is None:
        return RangePlan(200, 0, size - 1, None)
    start = requested.start if requested.start is not None else 0
    end = min(requested.end if requested.end is not None else _INT64_MAX, size - 1)
    if start > end:
        return RangePlan(416, start, end, f"bytes */{size}")
    length = end - start + 1
    return RangePlan(206 if length < size else 200, start, end, f"bytes {start}-{end}/{size}")
