"""nginx-style sizes (`512m`, `10g`) and durations (`12h`, `1h30m`), as operators already write them,
and reading them from the environment.

Every size unit is a power of 1024, however it is spelled: `1g`, `1G`, `1gb`, `1GB` and `1GiB` are the
same 1073741824 bytes. Operators write `GB` meaning what nginx means by `g`; reading it as 10**9 would
give a cache 7% smaller than the one asked for, and a unit that is refused in one spelling and read in
another is the kind of surprise this module exists to avoid. A number may have a decimal part
(`1.5g`, `0.5h`); the result is rounded down to a whole byte or millisecond.
"""

import re
from collections.abc import Callable, Mapping
from fractions import Fraction

from proxy.settings.errors import ConfigError

# Powers of 1024, as nginx's `max_size=` reads them.
SIZE_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "M": 30 * 86400,
                  "y": 365 * 86400}

SIZE_FORMS = ("a byte count or a number with k, m, g or t (powers of 1024, also written kb/KiB, gb/GiB, ...), "
              "e.g. 512m, 1.5g, 10GiB")
DURATION_FORMS = "a number with ms, s, m, h, d, w, M or y, combinable as in nginx, e.g. 30s, 12h, 1h30m"

_NUMBER = r"([0-9]+(?:\.[0-9]+)?)"
# `10`, `10b`, `10k`, `10kb`, `10KiB`: the unit letter, then an optional `b` or `ib`.
_SIZE = re.compile(_NUMBER + r"(?:([kmgt])(?:i?b)?|b)?", re.IGNORECASE)
_DURATION_PART = re.compile(_NUMBER + r"(ms|[smhdwMy]?)")


def parse_size(text: str) -> int:
    """Return the byte count of an nginx-style size, or raise ValueError."""
    match = _SIZE.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a size")
    number, unit = match.groups()
    if unit is None and "." in number:
        raise ValueError(f"{text!r}: a fraction of a byte")
    return int(Fraction(number) * SIZE_UNITS[(unit or "").lower()])  # exact: no float rounding of big counts


def parse_duration(text: str) -> float:
    """Return the seconds of an nginx-style duration (`1h30m`; a bare number is seconds), or raise ValueError."""
    compact = text.strip().replace(" ", "")
    if not compact:
        raise ValueError("empty duration")
    seconds = Fraction(0)
    position = 0
    while position < len(compact):
        match = _DURATION_PART.match(compact, position)
        if match is None or match.end() == position:
            raise ValueError(f"{text!r} is not a duration")
        number, unit = match.groups()
        seconds += Fraction(number) * Fraction(str(DURATION_UNITS[unit or "s"]))
        position = match.end()
    return int(seconds * 1000) / 1000


def read_size(env: Mapping[str, str], name: str, default: str) -> int:
    """A positive size from variable `name`, or ConfigError naming it and the accepted forms."""
    return int(_read_positive(env, name, default, parse_size, SIZE_FORMS))


def read_duration(env: Mapping[str, str], name: str, default: str) -> float:
    """A positive duration in seconds from variable `name`, or ConfigError naming it and the forms."""
    return _read_positive(env, name, default, parse_duration, DURATION_FORMS)


def _read_positive(env: Mapping[str, str], name: str, default: str, parse: Callable[[str], float],
                   forms: str) -> float:
    text = env.get(name) or default
    try:
        value = parse(text)
    except ValueError:
        raise ConfigError(f"{name}={text!r}: expected {forms}") from None
    if value <= 0:
        raise ConfigError(f"{name}={text!r}: must be above zero; expected {forms}")
    return value
