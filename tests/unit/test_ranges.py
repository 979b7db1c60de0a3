"""Unit tests of the Range contract: what clients ask, what NzbDav answers, what passes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shardproxy.core.ranges import (
    AsIs,
    AskLength,
    AskSizeFirst,
    BodyCut,
    Conditional,
    ContentRange,
    Forward,
    FromTo,
    Reject,
    Suffix,
    Unsatisfiable,
    WholeFile,
    check_ranged_reply,
    check_reply,
    if_range_is_date,
    parse_content_range,
    parse_range,
    plan_range,
    resolve_suffix,
    upstream_range_header,
)

# --- parse_range ----------------------------------------------------------------------


def test_closed_range_is_parsed() -> None:
    assert parse_range("bytes=0-499") == FromTo(0, 499)


def test_one_byte_range_is_parsed() -> None:
    assert parse_range("bytes=7-7") == FromTo(7, 7)


def test_open_range_has_no_end() -> None:
    assert parse_range("bytes=500-") == FromTo(500, None)


def test_suffix_range_is_a_suffix() -> None:
    assert parse_range("bytes=-500") == Suffix(500)


def test_zero_suffix_is_kept_for_a_416_later() -> None:
    assert parse_range("bytes=-0") == Suffix(0)


def test_unit_is_case_insensitive_and_whitespace_is_tolerated() -> None:
    assert parse_range(" Bytes = 10 - 20 ") == FromTo(10, 20)


def test_huge_end_is_kept_as_asked() -> None:
    assert parse_range("bytes=0-18446744073709551615") == FromTo(0, 18446744073709551615)


@pytest.mark.parametrize("value", ["bytes=0-1,5-9", "bytes=0-1, -5", "bytes=-5,0-1"])
def test_several_ranges_are_ignored(value: str) -> None:
    assert parse_range(value) is None


@pytest.mark.parametrize(
    "value",
    [
        "bytes=",
        "bytes=-",
        "bytes=abc",
        "bytes=1",
        "bytes=1-2-3",
        "bytes=+1-2",
        "bytes=-1-2",
        "bytes=0x10-",
        "bytes 0-1",
        "0-1",
        "",
    ],
)
def test_bad_syntax_is_ignored(value: str) -> None:
    assert parse_range(value) is None


def test_end_before_start_is_ignored() -> None:
    assert parse_range("bytes=10-9") is None


@pytest.mark.parametrize("value", ["items=0-5", "none=0-5", "bites=0-5"])
def test_other_units_are_ignored(value: str) -> None:
    assert parse_range(value) is None


def test_non_ascii_digits_are_ignored() -> None:
    assert parse_range("bytes=\u0660-\u0665") is None  # Arabic-Indic 0 and 5


def test_number_of_thousands_of_digits_is_ignored_not_an_error() -> None:
    assert parse_range("bytes=" + "9" * 5000 + "-") is None
    assert parse_range("bytes=-" + "9" * 5000) is None


@given(st.text())
def test_parse_range_never_raises(value: str) -> None:
    parse_range("bytes=" + value)
    parse_range(value)


# --- if_range_is_date -------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "Wed, 21 Oct 2015 07:28:00 GMT",
        "Mon, 01 Jan 0001 00:00:00 GMT",  # NzbDav's date for virtual folders
        "Sunday, 06-Nov-94 08:49:37 GMT",
    ],
)
def test_http_dates_are_dates(value: str) -> None:
    assert if_range_is_date(value) is True


@pytest.mark.parametrize("value", ['"abc"', 'W/"abc"', "", "yesterday", "2015-10-21"])
def test_entity_tags_and_junk_are_not_dates(value: str) -> None:
    assert if_range_is_date(value) is False


@given(st.text())
def test_if_range_is_date_never_raises(value: str) -> None:
    assert if_range_is_date(value) in (True, False)


# --- resolve_suffix ---------------------------------------------------------------------


def test_suffix_becomes_the_last_n_bytes() -> None:
    assert resolve_suffix(Suffix(10), 100) == FromTo(90, 99)


def test_suffix_as_long_as_the_file_is_the_whole_file() -> None:
    assert resolve_suffix(Suffix(100), 100) == FromTo(0, 99)


def test_suffix_longer_than_the_file_is_the_whole_file() -> None:
    assert resolve_suffix(Suffix(1000), 100) == FromTo(0, 99)


def test_zero_suffix_is_unsatisfiable() -> None:
    assert resolve_suffix(Suffix(0), 100) == Unsatisfiable(100)


def test_suffix_of_an_empty_file_is_the_whole_empty_file() -> None:
    assert resolve_suffix(Suffix(5), 0) == WholeFile()


def test_suffix_of_a_file_of_unknown_size_is_the_whole_file() -> None:
    assert resolve_suffix(Suffix(5), None) == WholeFile()


@given(st.integers(1, 10**12), st.integers(1, 10**12))
def test_resolved_suffix_ends_at_the_last_byte_and_is_never_longer_than_asked(
    suffix: int, length: int
) -> None:
    resolved = resolve_suffix(Suffix(suffix), length)
    assert isinstance(resolved, FromTo)
    assert resolved.end == length - 1
    assert resolved.start >= 0
    assert resolved.end - resolved.start + 1 == min(suffix, length)


# --- headers ----------------------------------------------------------------------------


def test_upstream_header_of_a_closed_range() -> None:
    assert upstream_range_header(FromTo(5, 9)) == "bytes=5-9"


def test_upstream_header_of_an_open_range() -> None:
    assert upstream_range_header(FromTo(5, None)) == "bytes=5-"


def test_content_range_is_parsed() -> None:
    assert parse_content_range("bytes 0-99/1000") == ContentRange(0, 99, 1000)


def test_content_range_with_unknown_length_is_parsed() -> None:
    assert parse_content_range("bytes 5-9/*") == ContentRange(5, 9, None)


def test_content_range_unit_is_case_insensitive() -> None:
    assert parse_content_range("BYTES 1-2/3") == ContentRange(1, 2, 3)


@pytest.mark.parametrize(
    "value", ["bytes */1000", "bytes 0-99", "0-99/1000", "items 0-9/10", "bytes 0-\u0669/10"]
)
def test_content_range_not_of_the_satisfied_form_is_none(value: str) -> None:
    assert parse_content_range(value) is None


def test_content_range_of_thousands_of_digits_is_none() -> None:
    assert parse_content_range(f"bytes 0-{'9' * 5000}/*") is None


def test_content_range_header_round_trips() -> None:
    assert ContentRange(0, 99, 1000).header() == "bytes 0-99/1000"
    assert ContentRange(5, 9, None).header() == "bytes 5-9/*"


def test_content_range_size_counts_both_ends() -> None:
    assert ContentRange(10, 19, 100).size == 10


# --- check_ranged_reply: well-behaved replies --------------------------------------------


def test_matching_206_is_forwarded() -> None:
    assert check_ranged_reply(FromTo(100, 199), 206, "bytes 100-199/1000", 100) == Forward(
        206, ContentRange(100, 199, 1000)
    )


def test_matching_206_without_content_length_is_forwarded() -> None:
    assert check_ranged_reply(FromTo(100, None), 206, "bytes 100-999/1000", None) == Forward(
        206, ContentRange(100, 999, 1000)
    )


def test_206_with_unknown_length_is_checked_against_the_asked_end() -> None:
    assert check_ranged_reply(FromTo(0, 9), 206, "bytes 0-9/*", 10) == Forward(
        206, ContentRange(0, 9, None)
    )


@pytest.mark.parametrize("status", [304, 404, 499, 500, 503])
def test_other_statuses_pass_unchanged(status: int) -> None:
    assert check_ranged_reply(FromTo(0, 9), status, "bytes */10", 0) == Forward(status, None)


def test_backend_416_with_its_length_is_answered_with_it() -> None:
    verdict = check_ranged_reply(FromTo(20, 29), 416, "bytes */10", 0)
    assert verdict == Unsatisfiable(10)
    assert verdict.header() == "bytes */10"


@pytest.mark.parametrize("header", [None, "", "bytes */", "bytes 0-1/10", "items */10"])
def test_backend_416_without_its_length_asks_for_it(header: str | None) -> None:
    assert check_ranged_reply(FromTo(20, 29), 416, header, 0) == AskLength()


# --- plan_range ---------------------------------------------------------------------------


def test_closed_range_is_asked_for_and_checked() -> None:
    assert plan_range("GET", "bytes=5-9", None) == FromTo(5, 9)


def test_head_is_planned_like_get() -> None:
    assert plan_range("HEAD", "bytes=5-", None) == FromTo(5, None)


def test_suffix_range_asks_for_the_size_first() -> None:
    assert plan_range("GET", "bytes=-5", None) == AskSizeFirst(Suffix(5))


def test_unparseable_range_is_dropped_for_the_whole_file() -> None:
    assert plan_range("GET", "bytes=5-1", None) == WholeFile()


def test_if_range_with_an_entity_tag_sends_the_range_on_to_be_checked() -> None:
    assert plan_range("GET", "bytes=5-9", '"etag"') == Conditional(FromTo(5, 9))


def test_if_range_with_a_date_is_checked() -> None:
    assert plan_range("GET", "bytes=5-9", "Mon, 01 Jan 2024 00:00:00 GMT") == FromTo(5, 9)


@pytest.mark.parametrize("method", ["PUT", "PROPFIND", "DELETE"])
def test_other_methods_send_the_range_as_is(method: str) -> None:
    assert plan_range(method, "bytes=-5", None) == AsIs()


# --- check_ranged_reply: NzbDav's quirks -------------------------------------------------


def test_whole_file_200_with_content_range_becomes_206() -> None:
    # NzbDav: bytes=0- gives 200 with Content-Range.
    assert check_ranged_reply(FromTo(0, None), 200, "bytes 0-999/1000", 1000) == Forward(
        206, ContentRange(0, 999, 1000)
    )


def test_whole_file_closed_range_200_with_content_range_becomes_206() -> None:
    assert check_ranged_reply(FromTo(0, 999), 200, "bytes 0-999/1000", 1000) == Forward(
        206, ContentRange(0, 999, 1000)
    )


def test_end_past_eof_is_clamped_to_the_last_byte() -> None:
    assert check_ranged_reply(FromTo(500, 5000), 206, "bytes 500-999/1000", 500) == Forward(
        206, ContentRange(500, 999, 1000)
    )


def test_whole_file_range_with_end_past_eof_200_becomes_206() -> None:
    assert check_ranged_reply(FromTo(0, 10**9), 200, "bytes 0-999/1000", 1000) == Forward(
        206, ContentRange(0, 999, 1000)
    )


def test_resolved_suffix_answered_correctly_is_forwarded() -> None:
    asked = resolve_suffix(Suffix(10), 1000)
    assert isinstance(asked, FromTo)
    assert check_ranged_reply(asked, 206, "bytes 990-999/1000", 10) == Forward(
        206, ContentRange(990, 999, 1000)
    )


def test_suffix_read_as_a_prefix_is_rejected() -> None:
    # NzbDav reads bytes=-10 as bytes=0-10: those are not the last ten bytes.
    asked = resolve_suffix(Suffix(10), 1000)
    assert isinstance(asked, FromTo)
    verdict = check_ranged_reply(asked, 206, "bytes 0-10/1000", 11)
    assert verdict == Reject(
        "backend answered range bytes=990-999 with Content-Range bytes 0-10/1000"
    )


def test_plain_200_for_a_range_from_zero_is_truncated_to_a_206() -> None:
    assert check_ranged_reply(FromTo(0, 99), 200, None, 1000) == Forward(
        206, ContentRange(0, 99, 1000), truncate_to=100
    )


def test_plain_200_for_an_open_range_from_zero_is_the_whole_file_as_206() -> None:
    assert check_ranged_reply(FromTo(0, None), 200, None, 1000) == Forward(
        206, ContentRange(0, 999, 1000), truncate_to=1000
    )


def test_plain_200_for_a_range_from_zero_past_eof_is_clamped() -> None:
    assert check_ranged_reply(FromTo(0, 5000), 200, None, 1000) == Forward(
        206, ContentRange(0, 999, 1000), truncate_to=1000
    )


def test_plain_200_of_an_empty_file_stays_200() -> None:
    assert check_ranged_reply(FromTo(0, None), 200, None, 0) == Forward(200, None)


def test_plain_200_for_a_range_past_zero_is_rejected() -> None:
    verdict = check_ranged_reply(FromTo(100, 199), 200, None, 1000)
    assert isinstance(verdict, Reject)
    assert "ignored Range bytes=100-" in verdict.reason
    assert "wrong offset" in verdict.reason


def test_plain_200_from_zero_without_content_length_is_rejected() -> None:
    verdict = check_ranged_reply(FromTo(0, 99), 200, None, None)
    assert isinstance(verdict, Reject)
    assert "ignored Range bytes=0-" in verdict.reason


def test_200_with_unparsable_content_range_is_treated_as_plain() -> None:
    assert isinstance(check_ranged_reply(FromTo(5, 9), 200, "garbage", 1000), Reject)
    assert check_ranged_reply(FromTo(0, 9), 200, "garbage", 1000) == Forward(
        206, ContentRange(0, 9, 1000), truncate_to=10
    )


def test_206_without_content_range_is_rejected() -> None:
    verdict = check_ranged_reply(FromTo(5, 9), 206, None, 5)
    assert verdict == Reject(
        "backend answered 206 without a usable Content-Range for FromTo(start=5, end=9)"
    )


def test_content_range_starting_elsewhere_is_rejected() -> None:
    verdict = check_ranged_reply(FromTo(100, 199), 206, "bytes 0-99/1000", 100)
    assert verdict == Reject(
        "backend answered range bytes=100-199 with Content-Range bytes 0-99/1000"
    )


def test_content_range_ending_elsewhere_is_rejected() -> None:
    verdict = check_ranged_reply(FromTo(100, 199), 206, "bytes 100-149/1000", 50)
    assert verdict == Reject(
        "backend answered range bytes=100-199 with Content-Range bytes 100-149/1000"
    )


def test_open_range_answered_short_of_the_end_is_rejected() -> None:
    verdict = check_ranged_reply(FromTo(100, None), 206, "bytes 100-149/1000", 50)
    assert isinstance(verdict, Reject)
    assert "bytes=100- with Content-Range bytes 100-149/1000" in verdict.reason


def test_content_length_not_matching_content_range_is_rejected() -> None:
    verdict = check_ranged_reply(FromTo(100, 199), 206, "bytes 100-199/1000", 1000)
    assert verdict == Reject(
        "backend's Content-Length 1000 does not match its Content-Range bytes 100-199/1000"
    )


def test_whole_file_200_with_wrong_content_length_is_rejected() -> None:
    verdict = check_ranged_reply(FromTo(0, None), 200, "bytes 0-999/1000", 999)
    assert isinstance(verdict, Reject)
    assert "Content-Length 999" in verdict.reason


@given(
    start=st.integers(0, 1000),
    span=st.one_of(st.none(), st.integers(0, 1000)),
    length=st.integers(1, 2000),
    first_shift=st.sampled_from([0, 0, 0, -1, 1, 7]),
    last=st.one_of(st.sampled_from(["end", "eof"]), st.integers(0, 3000)),
    length_shift=st.sampled_from([0, 0, 0, -1, 1]),
    status=st.sampled_from([200, 206]),
)
def test_a_forwarded_range_always_starts_where_asked_and_stays_in_the_file(
    *,
    start: int,
    span: int | None,
    length: int,
    first_shift: int,
    last: str | int,
    length_shift: int,
    status: int,
) -> None:
    asked = FromTo(start, None if span is None else start + span)
    first = max(0, start + first_shift)
    if last == "end":
        last = length - 1 if asked.end is None else asked.end
    elif last == "eof":
        last = length - 1
    assert isinstance(last, int)
    content_length = max(0, last - first + 1 + length_shift)
    verdict = check_ranged_reply(asked, status, f"bytes {first}-{last}/{length}", content_length)
    if isinstance(verdict, Forward):
        assert verdict.status == 206
        assert verdict.truncate_to is None
        assert verdict.content_range == ContentRange(start, last, length)
        assert content_length == last - start + 1
        assert last == (length - 1 if asked.end is None else min(asked.end, length - 1))


# --- check_reply: every ranged request's reply, whatever was sent ------------------------


@pytest.mark.parametrize("status", [206, 416])
def test_a_part_in_reply_to_a_request_sent_without_range_is_rejected(status: int) -> None:
    # A suffix whose size could not be had goes without Range: a 206 is some other part.
    verdict = check_reply(WholeFile(), status, "bytes 7-106/1000", 100)
    assert isinstance(verdict, Reject)
    assert "without Range" in verdict.reason


@pytest.mark.parametrize("status", [200, 404, 500])
def test_a_whole_reply_to_a_request_sent_without_range_passes(status: int) -> None:
    assert check_reply(WholeFile(), status, None, 1000) == Forward(status, None)


def test_a_sent_range_is_checked_as_before() -> None:
    assert isinstance(check_reply(FromTo(100, 199), 206, "bytes 7-106/1000", 100), Reject)


def test_a_conditional_range_may_get_the_whole_file() -> None:
    assert check_reply(Conditional(FromTo(5, 9)), 200, None, 1000) == Forward(200, None)


def test_a_conditional_range_may_get_exactly_its_part() -> None:
    verdict = check_reply(Conditional(FromTo(5, 9)), 206, "bytes 5-9/1000", 5)
    assert verdict == Forward(206, ContentRange(5, 9, 1000))


def test_a_conditional_range_answered_with_another_part_is_rejected() -> None:
    assert isinstance(check_reply(Conditional(FromTo(5, 9)), 206, "bytes 7-11/1000", 5), Reject)


def test_a_conditional_suffix_answered_with_the_last_bytes_passes() -> None:
    verdict = check_reply(Conditional(Suffix(100)), 206, "bytes 900-999/1000", 100)
    assert verdict == Forward(206, ContentRange(900, 999, 1000))


def test_a_conditional_suffix_longer_than_the_file_gets_it_all() -> None:
    verdict = check_reply(Conditional(Suffix(5000)), 206, "bytes 0-999/1000", 1000)
    assert verdict == Forward(206, ContentRange(0, 999, 1000))


@pytest.mark.parametrize(
    ("content_range", "length"),
    [
        ("bytes 7-106/1000", 100),  # another part
        ("bytes 900-999/*", 100),  # no total: cannot be the last bytes
        ("bytes 900-998/1000", 99),  # not to the end
        ("bytes 900-999/1000", 50),  # its length disagrees
        (None, 100),
    ],
)
def test_a_conditional_suffix_answered_otherwise_is_rejected(
    content_range: str | None, length: int
) -> None:
    assert isinstance(check_reply(Conditional(Suffix(100)), 206, content_range, length), Reject)


def test_a_206_to_a_conditional_request_that_was_not_one_range_is_rejected() -> None:
    assert isinstance(check_reply(Conditional(None), 206, "bytes 0-9/1000", 10), Reject)


# --- the cut of a reply to the asked range ------------------------------------------------


def cut_into(cut: BodyCut, chunks: list[bytes]) -> bytes:
    """What the copying loop sends: each chunk through the cut, stopping once complete."""
    sent = b""
    for chunk in chunks:
        sent += cut.take(chunk)
        if cut.complete:
            break
    return sent


def test_a_cut_keeps_exactly_the_first_limit_bytes_across_chunks() -> None:
    body = bytes(range(256)) * 4
    chunks = [body[i : i + 100] for i in range(0, len(body), 100)]
    cut = BodyCut(250)
    assert cut_into(cut, chunks) == body[:250]
    assert cut.complete


def test_a_cut_at_a_chunk_boundary_takes_nothing_of_the_next_chunk() -> None:
    cut = BodyCut(4)
    assert cut.take(b"abcd") == b"abcd"
    assert cut.complete
    assert cut.take(b"efgh") == b""


def test_no_limit_keeps_everything_and_never_completes() -> None:
    cut = BodyCut(None)
    assert cut_into(cut, [b"ab", b"cd", b"ef"]) == b"abcdef"
    assert not cut.complete


def test_the_size_of_a_cut_body_is_the_smaller_of_limit_and_length() -> None:
    assert BodyCut(100).size_of(1000) == 100
    assert BodyCut(100).size_of(40) == 40
    assert BodyCut(None).size_of(1000) == 1000
