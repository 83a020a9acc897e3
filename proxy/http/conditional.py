"""Conditional requests (RFC 9110 section 13), evaluated in the order of section 13.2.2.

`evaluate` does no I/O: it takes the request headers and what we know of the representation, and
returns the outcome the handler then carries out.
"""

import enum
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime

from aiohttp import hdrs
from multidict import CIMultiDictProxy

from proxy.errors import PreconditionFailed
from proxy.http.ranges import parse_range, resolve_range
from proxy.storage.provider import ObjectInfo


class Outcome(enum.Enum):
    """What to send."""

    FULL = 200
    PARTIAL = 206
    NOT_MODIFIED = 304


@dataclass(frozen=True)
class Decision:
    """The outcome and, for bodies, the bytes [start, end) to send."""

    outcome: Outcome
    start: int = 0
    end: int = 0


def evaluate(headers: CIMultiDictProxy[str], info: ObjectInfo) -> Decision:
    """Apply If-Match, If-Unmodified-Since, If-None-Match, If-Modified-Since, If-Range and Range."""
    if_match = headers.get(hdrs.IF_MATCH)
    if if_match is not None:
        if not _etag_listed(if_match, info.etag, weak=False):  # 13.1.1: strong comparison
            raise PreconditionFailed()
    elif (since := _http_date(headers.get(hdrs.IF_UNMODIFIED_SINCE))) is not None:
        if int(info.last_modified) > since:  # 13.1.4
            raise PreconditionFailed()
    if_none_match = headers.get(hdrs.IF_NONE_MATCH)
    if if_none_match is not None:
        if _etag_listed(if_none_match, info.etag, weak=True):  # 13.1.2: weak comparison
            return Decision(Outcome.NOT_MODIFIED)
    elif (since := _http_date(headers.get(hdrs.IF_MODIFIED_SINCE))) is not None:
        if int(info.last_modified) <= since:  # 13.1.3
            return Decision(Outcome.NOT_MODIFIED)
    span = parse_range(headers.get(hdrs.RANGE))
    if span is None or not _if_range_holds(headers.get(hdrs.IF_RANGE), info):
        return Decision(Outcome.FULL, 0, info.size)
    start, end = resolve_range(span, info.size)
    return Decision(Outcome.PARTIAL, start, end)


def _if_range_holds(validator: str | None, info: ObjectInfo) -> bool:
    """13.1.5: an ETag must match strongly, a date exactly; otherwise the whole object is sent."""
    if validator is None:
        return True
    if validator.startswith(('"', "W/")):
        return not info.etag.startswith("W/") and validator.strip() == info.etag
    date = _http_date(validator)
    return date is not None and date == int(info.last_modified)


def _etag_listed(header: str, etag: str, weak: bool) -> bool:
    if header.strip() == "*":
        return True
    wanted = etag.removeprefix("W/") if weak else etag
    for candidate in header.split(","):
        candidate = candidate.strip()
        if weak:
            candidate = candidate.removeprefix("W/")
        elif candidate.startswith("W/") or etag.startswith("W/"):
            continue
        if candidate == wanted:
            return True
    return False


def _http_date(value: str | None) -> int | None:
    """Seconds since the epoch of an HTTP-date, or None when absent or unreadable (then ignored)."""
    if not value:
        return None
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if moment.tzinfo is None:
        # asctime dates carry no zone, and RFC 9110 section 5.6.7 says every HTTP-date is GMT.
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())
