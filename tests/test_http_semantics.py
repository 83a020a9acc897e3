"""Range (RFC 9110 section 14) and conditional requests evaluated in the order of section 13.2.2."""

import time
from collections.abc import Iterator
from email.utils import formatdate

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from proxy.errors import PreconditionFailed, RangeNotSatisfiable
from proxy.http.conditional import Decision, Outcome, evaluate
from proxy.http.ranges import parse_range, resolve_range
from proxy.storage.provider import ByteSpan, ObjectInfo

MODIFIED = 1_700_000_000  # whole seconds, as HTTP dates carry
INFO = ObjectInfo(size=1000, etag='"v1"', last_modified=MODIFIED + 0.25, content_type="image/png")
WEAK_INFO = ObjectInfo(size=1000, etag='W/"v1"', last_modified=MODIFIED, content_type="image/png")


def http_date(epoch: float) -> str:
    return formatdate(epoch, usegmt=True)


BEFORE = http_date(MODIFIED - 3600)
AT = http_date(MODIFIED)
AFTER = http_date(MODIFIED + 3600)


def decide(info: ObjectInfo = INFO, **headers: str) -> Decision:
    """evaluate() with headers given as keyword arguments (If_None_Match -> If-None-Match)."""
    pairs = [(name.replace("_", "-"), value) for name, value in headers.items()]
    return evaluate(CIMultiDictProxy(CIMultiDict(pairs)), info)


# --- Range -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "span"),
    [
        ("bytes=0-499", ByteSpan(0, 500)),
        ("bytes=500-999", ByteSpan(500, 1000)),
        ("bytes=7-7", ByteSpan(7, 8)),
        ("bytes=500-", ByteSpan(500, None)),
        ("bytes=-200", ByteSpan(suffix=200)),
        (" bytes = 10 - 20 ", ByteSpan(10, 21)),
    ],
)
def test_parse_single_range(header: str, span: ByteSpan) -> None:
    assert parse_range(header) == span


@pytest.mark.parametrize("header", ["bytes=0-1,5-6", "bytes=0-1, -5", "bytes=-5,0-1"])
def test_multiple_ranges_ignored(header: str) -> None:
    assert parse_range(header) is None


@pytest.mark.parametrize(
    "header", [None, "", "bytes=", "bytes=-", "items=0-1", "bytes=a-b", "bytes 0-1", "bytes=1.5-2", "bytes=--1"]
)
def test_malformed_range_ignored(header: str | None) -> None:
    assert parse_range(header) is None


def test_last_before_first_ignored() -> None:
    assert parse_range("bytes=500-499") is None
    assert parse_range("bytes=500-500") is not None


@pytest.mark.parametrize(
    ("span", "size", "expected"),
    [
        (ByteSpan(0, 500), 1000, (0, 500)),
        (ByteSpan(900, 5000), 1000, (900, 1000)),
        (ByteSpan(999, None), 1000, (999, 1000)),
        (ByteSpan(suffix=200), 1000, (800, 1000)),
        (ByteSpan(suffix=5000), 1000, (0, 1000)),
        (ByteSpan(suffix=1), 1, (0, 1)),
    ],
)
def test_resolve_range(span: ByteSpan, size: int, expected: tuple[int, int]) -> None:
    assert resolve_range(span, size) == expected


@pytest.mark.parametrize(
    ("span", "size"),
    [(ByteSpan(1000, None), 1000), (ByteSpan(5000, 6000), 1000), (ByteSpan(suffix=0), 1000), (ByteSpan(0), 0)],
)
def test_unsatisfiable_range(span: ByteSpan, size: int) -> None:
    with pytest.raises(RangeNotSatisfiable) as excinfo:
        resolve_range(span, size)
    assert excinfo.value.status == 416
    assert excinfo.value.size == size


# --- 13.2.2 step 1: If-Match -------------------------------------------------------------------


@pytest.mark.parametrize("header", ['"v1"', '"x", "v1"', "*"])
def test_if_match_holds(header: str) -> None:
    assert decide(If_Match=header).outcome is Outcome.FULL


@pytest.mark.parametrize("header", ['"v2"', 'W/"v1"', '"x", "y"'])
def test_if_match_fails_412(header: str) -> None:
    with pytest.raises(PreconditionFailed) as excinfo:
        decide(If_Match=header)
    assert excinfo.value.status == 412


def test_if_match_strong_compare_rejects_weak_etag() -> None:
    with pytest.raises(PreconditionFailed):
        decide(WEAK_INFO, If_Match='W/"v1"')


# --- step 2: If-Unmodified-Since ---------------------------------------------------------------


def test_if_unmodified_since_fails_412() -> None:
    with pytest.raises(PreconditionFailed):
        decide(If_Unmodified_Since=BEFORE)


@pytest.mark.parametrize("date", [AT, AFTER])
def test_if_unmodified_since_holds(date: str) -> None:
    assert decide(If_Unmodified_Since=date).outcome is Outcome.FULL


def test_if_unmodified_since_ignored_with_if_match() -> None:
    assert decide(If_Match='"v1"', If_Unmodified_Since=BEFORE).outcome is Outcome.FULL


def test_unreadable_date_ignored() -> None:
    assert decide(If_Unmodified_Since="yesterday").outcome is Outcome.FULL


# --- step 3: If-None-Match ---------------------------------------------------------------------


@pytest.mark.parametrize("header", ['"v1"', 'W/"v1"', '"a", "v1"', '"a",W/"v1"', "*"])
def test_if_none_match_weak_compare_304(header: str) -> None:
    assert decide(If_None_Match=header).outcome is Outcome.NOT_MODIFIED


def test_if_none_match_weak_etag_304() -> None:
    assert decide(WEAK_INFO, If_None_Match='"v1"').outcome is Outcome.NOT_MODIFIED


def test_if_none_match_miss_sends_full() -> None:
    assert decide(If_None_Match='"v0", "v2"') == Decision(Outcome.FULL, 0, INFO.size)


def test_if_match_checked_before_if_none_match() -> None:
    with pytest.raises(PreconditionFailed):
        decide(If_Match='"v2"', If_None_Match='"v1"')


# --- step 4: If-Modified-Since -----------------------------------------------------------------


@pytest.mark.parametrize("date", [AT, AFTER])
def test_if_modified_since_304(date: str) -> None:
    assert decide(If_Modified_Since=date).outcome is Outcome.NOT_MODIFIED


def test_if_modified_since_older_sends_full() -> None:
    assert decide(If_Modified_Since=BEFORE).outcome is Outcome.FULL


def test_if_modified_since_ignored_with_if_none_match() -> None:
    assert decide(If_None_Match='"v2"', If_Modified_Since=AFTER).outcome is Outcome.FULL


@pytest.fixture
def non_utc_zone(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Run with the process in New York time, then put the zone back."""
    monkeypatch.setenv("TZ", "EST5EDT")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_asctime_date_is_gmt(non_utc_zone: None) -> None:
    # RFC 9110 section 5.6.7: asctime-date is one of the three forms a recipient MUST accept, and
    # every HTTP-date is in GMT. 08:00 is an hour before the representation was modified.
    modified = 784_111_777  # Sun, 06 Nov 1994 08:49:37 GMT
    info = ObjectInfo(size=10, etag='"v1"', last_modified=modified, content_type="image/png")
    assert decide(info, If_Modified_Since="Sun Nov  6 08:49:37 1994").outcome is Outcome.NOT_MODIFIED
    assert decide(info, If_Modified_Since="Sun Nov  6 07:49:37 1994").outcome is Outcome.FULL


# --- step 5: If-Range and Range ----------------------------------------------------------------


def test_range_partial() -> None:
    assert decide(Range="bytes=100-199") == Decision(Outcome.PARTIAL, 100, 200)


def test_suffix_range_partial() -> None:
    assert decide(Range="bytes=-100") == Decision(Outcome.PARTIAL, INFO.size - 100, INFO.size)


def test_unsatisfiable_range_raises_416() -> None:
    with pytest.raises(RangeNotSatisfiable) as excinfo:
        decide(Range=f"bytes={INFO.size}-")
    assert excinfo.value.size == INFO.size


def test_ignored_range_sends_full() -> None:
    assert decide(Range="bytes=0-1,4-5") == Decision(Outcome.FULL, 0, INFO.size)


def test_not_modified_beats_range() -> None:
    assert decide(If_None_Match='"v1"', Range="bytes=0-9").outcome is Outcome.NOT_MODIFIED


@pytest.mark.parametrize("validator", ['"v1"', AT])
def test_if_range_match_partial(validator: str) -> None:
    assert decide(If_Range=validator, Range="bytes=10-19") == Decision(Outcome.PARTIAL, 10, 20)


@pytest.mark.parametrize("validator", ['"v2"', 'W/"v1"', BEFORE, AFTER, "not a date"])
def test_if_range_mismatch_full(validator: str) -> None:
    assert decide(If_Range=validator, Range="bytes=10-19") == Decision(Outcome.FULL, 0, INFO.size)


def test_if_range_weak_etag_never_matches() -> None:
    decision = decide(WEAK_INFO, If_Range='W/"v1"', Range="bytes=10-19")
    assert decision == Decision(Outcome.FULL, 0, WEAK_INFO.size)


def test_if_range_without_range_is_full() -> None:
    assert decide(If_Range='"v1"') == Decision(Outcome.FULL, 0, INFO.size)
