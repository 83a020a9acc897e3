"""The numbers of IIIF parameters: whole numbers and plain decimals, never signs or exponents."""

import re

from previews.iiif.errors import InvalidIiifRequest

_WHOLE = re.compile(r"[0-9]{1,9}")
_DECIMAL = re.compile(r"[0-9]{1,9}(\.[0-9]{1,9})?|\.[0-9]{1,9}")


def whole(text: str, what: str) -> int:
    """A whole number (`0`, `512`), else InvalidIiifRequest naming `what`."""
    if not _WHOLE.fullmatch(text):
        raise InvalidIiifRequest(f"{what}: expected a whole number, got {text[:20]!r}")
    return int(text)


def decimal(text: str, what: str) -> float:
    """A plain decimal (`12`, `12.5`, `.5`), else InvalidIiifRequest naming `what`."""
    if not _DECIMAL.fullmatch(text):
        raise InvalidIiifRequest(f"{what}: expected a number, got {text[:20]!r}")
    return float(text)


def shortest(value: float) -> str:
    """A decimal written the one way (`12`, `12.5`): the same value gives the same cache key."""
    return f"{value:.9f}".rstrip("0").rstrip(".") or "0"
