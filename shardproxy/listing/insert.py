"""Adding the <response> elements of one multistatus body to another, byte for byte."""

from __future__ import annotations

import re

_START = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?multistatus\b[^>]*>")
_END = re.compile(rb"</(?:[A-Za-z_][\w.-]*:)?multistatus\s*>")


def insert_responses(listing: bytes, extra: bytes) -> bytes | None:
    """``listing`` with ``extra``'s responses added before its closing tag.

    Both bodies must open their multistatus with the same start tag (so prefixes and
    namespaces mean the same in both, as they do for two replies of one server);
    otherwise, or if either is not a multistatus, None.
    """
    listing_start, extra_start = _START.search(listing), _START.search(extra)
    listing_ends = list(_END.finditer(listing))
    extra_ends = list(_END.finditer(extra))
    if not (listing_start and extra_start and listing_ends and extra_ends):
        return None
    if listing_start.group() != extra_start.group():
        return None
    inner = extra[extra_start.end() : extra_ends[-1].start()]
    at = listing_ends[-1].start()
    return listing[:at] + inner.strip() + b"\n" + listing[at:]
