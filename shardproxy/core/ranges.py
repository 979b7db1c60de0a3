"""The Range contract between clients, the proxy and NzbDav (RFC 9110 on the client side).

NzbDav reads only the first range, reads ``bytes=-N`` as ``bytes=0-N``, and answers a
whole-file range with ``200`` plus ``Content-Range``. rclone up to 1.75 takes any 200 to
a ranged GET as if it started at the offset it asked for, and caches the wrong bytes.
So the proxy rewrites what it asks for and checks what comes back: a ranged request is
answered with exactly the bytes asked for, or with an error, never with bytes from
another offset. Pure logic: headers in, decisions out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

# re.ASCII: HTTP digits are 0-9 only, not every Unicode decimal digit.
_RANGE_SPEC_RE = re.compile(r"\s*(\d*)\s*-\s*(\d*)\s*", re.ASCII)
_UNSATISFIED_RE = re.compile(r"\s*bytes\s+\*/(\d+)\s*", re.IGNORECASE | re.ASCII)
_CONTENT_RANGE_RE = re.compile(r"\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*", re.IGNORECASE | re.ASCII)
# int() refuses strings of more than 4300 digits; no byte position comes near this many.
_MAX_DIGITS = 1000


@dataclass(frozen=True)
class FromTo:
    """``bytes=start-end`` (end inclusive) or ``bytes=start-`` (end None)."""

    start: int
    end: int | None


@dataclass(frozen=True)
class Suffix:
    """``bytes=-length``: the last ``length`` bytes."""

    length: int


ByteRangeRequest = FromTo | Suffix


def parse_range(value: str) -> ByteRangeRequest | None:
    """The one range a ``Range`` header asks for, or None to serve the whole file.

    RFC 9110 lets a server ignore a Range header; it is ignored when it is not a single
    valid byte range (other units, several ranges, end before start, bad syntax).
    """
    unit, equals, specs = value.partition("=")
    if not equals or unit.strip().lower() != "bytes" or "," in specs:
        return None
    match = _RANGE_SPEC_RE.fullmatch(specs)
    if match is None:
        return None
    first, last = match.groups()
    if len(first) > _MAX_DIGITS or len(last) > _MAX_DIGITS:
        return None
    if not first:
        return Suffix(int(last)) if last else None
    start = int(first)
    end = int(last) if last else None
    if end is not None and end < start:
        return None
    return FromTo(start, end)


def if_range_is_date(value: str) -> bool:
    """True when an If-Range value is an HTTP date (NzbDav ignores the range otherwise)."""
    try:
        parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return False
    return True


@dataclass(frozen=True)
class Unsatisfiable:
    """Answer 416 with ``Content-Range: bytes */length``."""

    length: int

    def header(self) -> str:
        """The Content-Range value of the 416."""
        return f"bytes */{self.length}"


@dataclass(frozen=True)
class WholeFile:
    """Drop the Range header: the whole file, ``200``, as RFC 9110 lets a server answer."""


@dataclass(frozen=True)
class AsIs:
    """Send the request's Range on unchanged and forward the reply unchecked."""


@dataclass(frozen=True)
class AskSizeFirst:
    """A suffix range: ask the backend for the file's size, then ``resolve_suffix``."""

    suffix: Suffix


@dataclass(frozen=True)
class Conditional:
    """A Range sent on with an entity-tag ``If-Range``: the reply may be the whole file
    (200) or exactly the range asked (``asked``; None when it is not one valid range)."""

    asked: ByteRangeRequest | None


RangePlan = AsIs | WholeFile | FromTo | AskSizeFirst | Conditional
"""What to do with a request's Range; a ``FromTo`` is sent upstream and its reply checked."""

Asked = FromTo | WholeFile | Conditional
"""What was sent upstream for a GET or HEAD that had a Range: its reply is checked against it."""


def plan_range(method: str, range_value: str, if_range: str | None) -> RangePlan:
    """How to forward a request that has a ``Range`` header."""
    if method not in ("GET", "HEAD"):
        return AsIs()
    if if_range is not None and not if_range_is_date(if_range):
        # NzbDav sends no ETags, so an entity-tag If-Range never matches: RFC 9110 says
        # send the whole file with 200, which is what NzbDav does with it.
        return Conditional(parse_range(range_value))
    asked = parse_range(range_value)
    if asked is None:
        return WholeFile()
    if isinstance(asked, Suffix):
        return AskSizeFirst(asked)
    return asked


def resolve_suffix(request: Suffix, length: int | None) -> FromTo | Unsatisfiable | WholeFile:
    """Turn ``bytes=-N`` into the closed range NzbDav reads correctly, given the file size.

    Without a size the backend answers for itself (its 401 or 404, or the whole file). An
    empty file is sent whole (200, empty body), as web servers and rclone do.
    """
    if length is None or length == 0:
        return WholeFile()
    if request.length == 0:
        return Unsatisfiable(length)
    return FromTo(max(0, length - request.length), length - 1)


def upstream_range_header(request: FromTo) -> str:
    """The Range header to send NzbDav for a closed or open range."""
    return f"bytes={request.start}-" + ("" if request.end is None else str(request.end))


@dataclass(frozen=True)
class ContentRange:
    """A satisfied ``Content-Range: bytes first-last/length``; ``length`` None for ``*``."""

    first: int
    last: int
    length: int | None

    def header(self) -> str:
        """The header value."""
        total = "*" if self.length is None else str(self.length)
        return f"bytes {self.first}-{self.last}/{total}"

    @property
    def size(self) -> int:
        """How many bytes the range holds."""
        return self.last - self.first + 1


def parse_content_range(value: str) -> ContentRange | None:
    """Parse a satisfied Content-Range; None when absent or not of that form."""
    match = _CONTENT_RANGE_RE.fullmatch(value)
    if match is None:
        return None
    first, last, total = match.groups()
    if max(len(first), len(last), len(total)) > _MAX_DIGITS:
        return None
    return ContentRange(int(first), int(last), None if total == "*" else int(total))


@dataclass(frozen=True)
class Forward:
    """Send the backend's reply on, as ``status`` with ``content_range`` (if any).

    ``truncate_to`` is set when only the first bytes of the backend's body belong to the
    answer (the backend sent the whole file for a range starting at 0).
    """

    status: int
    content_range: ContentRange | None
    truncate_to: int | None = None


@dataclass
class BodyCut:
    """The part of the backend's body that belongs to the answer: its first ``limit`` bytes.

    The one place a reply is cut to the asked range (``Forward.truncate_to``; None keeps
    all): the copying and the splice paths both take their bytes through it, so the rule
    is tested here by feeding it chunks.
    """

    limit: int | None
    taken: int = 0

    def size_of(self, length: int) -> int:
        """How many bytes of a body ``length`` long the answer has."""
        return length if self.limit is None else min(self.limit, length)

    def take(self, data: bytes) -> bytes:
        """The part of the next chunk that belongs to the answer (all, some or none)."""
        if self.limit is not None:
            data = data[: self.limit - self.taken]
        self.taken += len(data)
        return data

    @property
    def complete(self) -> bool:
        """True once every byte of the answer was taken: read no more from the backend."""
        return self.limit is not None and self.taken >= self.limit


@dataclass(frozen=True)
class Reject:
    """The backend's reply cannot be made into a correct answer: 502 with this reason."""

    reason: str


@dataclass(frozen=True)
class AskLength:
    """The backend's 416 does not say the file's size: ask for it, then answer
    ``Unsatisfiable`` (or forward the 416 as it is when the size cannot be had)."""


def unsatisfiable_reply(content_range_header: str | None) -> Unsatisfiable | AskLength:
    """A backend's 416, made to carry ``Content-Range: bytes */length``."""
    if content_range_header is not None:
        match = _UNSATISFIED_RE.fullmatch(content_range_header)
        if match is not None and len(match.group(1)) <= _MAX_DIGITS:
            return Unsatisfiable(int(match.group(1)))
    return AskLength()


def check_ranged_reply(
    asked: FromTo,
    status: int,
    content_range_header: str | None,
    content_length: int | None,
) -> Forward | Reject | Unsatisfiable | AskLength:
    """Decide how to answer a ranged GET/HEAD from the backend's status and headers.

    200 and 206 are checked and 416 made to say the size; every other status goes to the
    client unchanged.
    """
    if status == 416:
        return unsatisfiable_reply(content_range_header)
    if status not in (200, 206):
        return Forward(status, None)
    got = parse_content_range(content_range_header) if content_range_header else None
    if got is None:
        if status == 206:
            return Reject(f"backend answered 206 without a usable Content-Range for {asked}")
        # A plain 200: the backend ignored the range and sends the file from byte 0.
        if asked.start != 0 or content_length is None:
            return Reject(
                f"backend ignored Range bytes={asked.start}- and sent the whole file; "
                "refusing to pass bytes from the wrong offset"
            )
        last = content_length - 1 if asked.end is None else min(asked.end, content_length - 1)
        if last < 0:
            return Forward(200, None)
        return Forward(206, ContentRange(0, last, content_length), truncate_to=last + 1)
    expected_last = asked.end
    if got.length is not None:
        expected_last = got.length - 1 if asked.end is None else min(asked.end, got.length - 1)
    if got.first != asked.start or (expected_last is not None and got.last != expected_last):
        return Reject(
            f"backend answered range {upstream_range_header(asked)} with "
            f"Content-Range {got.header()}"
        )
    if content_length is not None and content_length != got.size:
        return Reject(
            f"backend's Content-Length {content_length} does not match its "
            f"Content-Range {got.header()}"
        )
    # NzbDav's 200 + Content-Range for a whole-file range is made a proper 206.
    return Forward(206, got)


def check_reply(
    asked: Asked,
    status: int,
    content_range_header: str | None,
    content_length: int | None,
) -> Forward | Reject | Unsatisfiable | AskLength:
    """Judge the backend's reply to a GET/HEAD that had a Range, by what was sent for it.

    A range sent (``FromTo``) is checked by ``check_ranged_reply``. A request sent
    without its Range (``WholeFile``: not one valid range, or a suffix of a file whose
    size could not be had) must not get a partial reply. A conditional one may get the
    whole file, or exactly the range asked. Anything else is a ``Reject``: 502.
    """
    if isinstance(asked, FromTo):
        return check_ranged_reply(asked, status, content_range_header, content_length)
    if isinstance(asked, WholeFile):
        if status in (206, 416):
            return Reject(
                f"backend answered {status} (Content-Range {content_range_header}) to a "
                "request sent without Range; refusing to pass a part as the whole file"
            )
        return Forward(status, None)
    if status != 206:
        return Forward(status, None)
    got = parse_content_range(content_range_header) if content_range_header else None
    if got is None or asked.asked is None:
        return Reject(
            f"backend answered 206 with Content-Range {content_range_header} to "
            f"Range {_spelled(asked.asked)}"
        )
    if isinstance(asked.asked, FromTo):
        return check_ranged_reply(asked.asked, 206, content_range_header, content_length)
    return _check_suffix_reply(asked.asked, got, content_length)


def _check_suffix_reply(
    asked: Suffix, got: ContentRange, content_length: int | None
) -> Forward | Reject:
    """A 206 to ``bytes=-N``: the last N bytes (or the whole file, if shorter)."""
    total = got.length
    if (
        total is None
        or got.last != total - 1
        or got.first != max(0, total - asked.length)
        or (content_length is not None and content_length != got.size)
    ):
        return Reject(
            f"backend answered Range bytes=-{asked.length} with Content-Range {got.header()}"
            + (f" and Content-Length {content_length}" if content_length is not None else "")
        )
    return Forward(206, got)


def _spelled(asked: ByteRangeRequest | None) -> str:
    if asked is None:
        return "(not one valid byte range)"
    if isinstance(asked, Suffix):
        return f"bytes=-{asked.length}"
    return upstream_range_header(asked)


def resolve_unsatisfiable(length: int | None) -> Unsatisfiable | Forward:
    """A backend's 416 that did not say the size, once the size was asked for."""
    return Forward(416, None) if length is None else Unsatisfiable(length)
