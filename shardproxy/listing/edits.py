"""Writing a kept <response>: 2xx propstats first, new texts in place, the rest as it was.

Output is made of slices of the input, never re-serialised, so whatever the filter does
not change reaches the client byte for byte.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

Edit = tuple[int, int, bytes]
"""Bytes start..end of the body replaced by the third item."""

_STATUS_CODE = re.compile(r"[ \t\r\n]*(?:HTTP/[^ \t\r\n]+[ \t\r\n]+)?([0-9]{3})(?![0-9])")
# Characters XML 1.0 cannot carry at all, not even as character references.
NOT_XML_CHAR = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def is_2xx(status: str) -> bool:
    """True for a status line (or bare code) of the 2xx class."""
    match = _STATUS_CODE.match(status)
    return match is not None and 200 <= int(match.group(1)) < 300


def ordered_ranges(
    start: int, end: int, propstats: Sequence[tuple[int, int, bool]]
) -> list[tuple[int, int]]:
    """A response's byte ranges in output order: 2xx propstats first.

    propstats are (start, end, status is 2xx) in input order, inside start..end. rclone
    1.60.1 reads only the first propstat's status, and NzbDav puts the 404 ones first.
    """
    first_bad = next((i for i, (_start, _end, ok) in enumerate(propstats) if not ok), None)
    if first_bad is None or not any(ok for _start, _end, ok in propstats[first_bad + 1 :]):
        return [(start, end)]  # already 2xx first (or no 2xx at all)
    order = [ps for ps in propstats if ps[2]] + [ps for ps in propstats if not ps[2]]
    # Propstats change places; what lies between them (whitespace) stays put.
    ranges = [(start, propstats[0][0])]
    for slot, (moved_start, moved_end, _ok) in enumerate(order):
        ranges.append((moved_start, moved_end))
        if slot + 1 < len(propstats):
            ranges.append((propstats[slot][1], propstats[slot + 1][0]))
    ranges.append((propstats[-1][1], end))
    return ranges


def render(
    out: list[bytes], body: bytes, ranges: list[tuple[int, int]], edits: Sequence[Edit]
) -> None:
    """Append the ranges of body in order, with the edits that fall inside them applied."""
    for start, end in ranges:
        at = start
        for edit_start, edit_end, data in edits:
            if edit_start >= start and edit_end <= end:
                out.append(body[at:edit_start])
                out.append(data)
                at = edit_end
        out.append(body[at:end])


def last_segment(path: str) -> str:
    """The name a clone's <displayname> shows: the path's last segment."""
    return NOT_XML_CHAR.sub("\ufffd", path.rstrip("/").rpartition("/")[2])
