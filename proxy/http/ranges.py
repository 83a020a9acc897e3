"""The Range header (RFC 9110 section 14.2): one range of bytes, open-ended or suffix."""

import re

from proxy.errors import RangeNotSatisfiable
from proxy.storage.provider import ByteSpan

_SINGLE_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


def parse_range(header: str | None) -> ByteSpan | None:
    """The single byte range asked for, or None to send the whole object.

    A header we don't understand, or one with several ranges, is ignored as RFC 9110 section 14.2
    allows: the answer is then a 200 with the whole object.
    """
    if not header:
        return None
    match = _SINGLE_RANGE.fullmatch(header.strip().replace(" ", ""))
    if match is None:
        return None
    first, last = match.groups()
    if first:
        if last and int(last) < int(first):
            return None  # invalid, so ignored (section 14.1.1)
        return ByteSpan(int(first), int(last) + 1 if last else None)
    if last:
        return ByteSpan(suffix=int(last))
    return None


def resolve_range(span: ByteSpan, size: int) -> tuple[int, int]:
    """[start, end) of `span` in an object of `size` bytes, or RangeNotSatisfiable (section 15.5.17)."""
    if span.suffix is not None:
        if span.suffix == 0 or size == 0:
            raise RangeNotSatisfiable(size)
        return max(0, size - span.suffix), size
    if span.start >= size:
        raise RangeNotSatisfiable(size)
    return span.start, min(size, span.end if span.end is not None else size)
