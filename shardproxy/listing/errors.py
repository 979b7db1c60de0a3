"""What filtering a listing gives: the body and its counts, or a ListingError."""

from __future__ import annotations

from dataclasses import dataclass


class ListingError(ValueError):
    """The backend's listing is not a well-formed DAV: multistatus.

    The message says what was wrong and at which byte offset of the body.
    """


@dataclass(frozen=True)
class Filtered:
    """A filtered listing and what became of its entries."""

    body: bytes
    responses_in: int
    """<response> elements read."""
    responses_out: int
    """<response> elements written (a cloned response counts once per clone)."""
    bad_hrefs: int
    """hrefs that could not be decoded (or were missing); their responses are dropped."""

    @property
    def dropped(self) -> int:
        """<response> elements read and not written (clones aside)."""
        return max(0, self.responses_in - self.responses_out)
