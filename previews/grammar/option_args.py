"""Readers for option arguments, each raising InvalidOption that names the option."""

import math

from previews.errors import InvalidOption
from previews.grammar.options import Gravity, GravityType

# strconv.ParseBool's spellings, which imgproxy accepts.
_TRUE = {"1", "t", "T", "true", "TRUE", "True"}
_FALSE = {"0", "f", "F", "false", "FALSE", "False"}
_COMPASS = {g.value for g in GravityType} - {GravityType.SMART.value, GravityType.FOCUS_POINT.value}
MAX_DIMENSION = 16384


def read_int(option: str, text: str, low: int = 0, high: int = MAX_DIMENSION) -> int:
    """A whole number in [low, high]."""
    if not text.isascii() or not text.lstrip("-").isdigit():
        raise InvalidOption(f"{option}: {text!r} is not a whole number")
    value = int(text)
    if not low <= value <= high:
        raise InvalidOption(f"{option}: {value} is outside {low}..{high}")
    return value


def read_float(option: str, text: str, low: float = 0.0, high: float = float(MAX_DIMENSION)) -> float:
    """A finite decimal number in [low, high]."""
    try:
        value = float(text) if text.isascii() and text.strip() == text else math.nan
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise InvalidOption(f"{option}: {text!r} is not a number")
    if not low <= value <= high:
        raise InvalidOption(f"{option}: {value:g} is outside {low:g}..{high:g}")
    return value


def read_bool(option: str, text: str) -> bool:
    """imgproxy's booleans: 1/0, t/f, true/false."""
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise InvalidOption(f"{option}: {text!r} is not a boolean (use 1 or 0)")


def read_gravity(option: str, args: list[str], allow_smart: bool = True) -> Gravity:
    """`type[:x:y]`: compass points with pixel offsets, `fp:x:y` with fractions, or `sm`."""
    if not args or not args[0]:
        raise InvalidOption(f"{option}: gravity type is missing")
    kind = args[0]
    if kind == GravityType.FOCUS_POINT:
        if len(args) != 3:
            raise InvalidOption(f"{option}: fp takes x and y, as fractions from 0 to 1")
        return Gravity(GravityType.FOCUS_POINT, read_float(option, args[1], 0, 1), read_float(option, args[2], 0, 1))
    if kind == GravityType.SMART:
        if not allow_smart or len(args) > 1:
            raise InvalidOption(f"{option}: smart gravity takes no offsets here")
        return Gravity(GravityType.SMART)
    if kind not in _COMPASS:
        raise InvalidOption(f"{option}: unknown gravity {kind!r}")
    if len(args) > 3:
        raise InvalidOption(f"{option}: gravity takes a type and optionally x and y offsets")
    x, y = (read_float(option, a, -MAX_DIMENSION, MAX_DIMENSION) if a else 0.0 for a in [*args[1:], "", ""][:2])
    return Gravity(GravityType(kind), x, y)


def read_color(option: str, args: list[str]) -> tuple[int, int, int]:
    """`R:G:B` (0..255 each) or a hex colour `RRGGBB`."""
    if len(args) == 3:
        red, green, blue = (read_int(option, a, 0, 255) for a in args)
        return red, green, blue
    if len(args) == 1 and len(args[0]) == 6 and all(c in "0123456789abcdefABCDEF" for c in args[0]):
        hex_color = args[0]
        return int(hex_color[0:2], 16), int(hex_color[2:4], 16), int(hex_color[4:6], 16)
    raise InvalidOption(f"{option}: a colour is R:G:B or a hex RRGGBB")


def count_args(option: str, args: list[str], low: int, high: int) -> None:
    """Fail unless `low <= len(args) <= high`."""
    if not low <= len(args) <= high:
        wanted = str(low) if low == high else f"{low} to {high}"
        raise InvalidOption(f"{option}: takes {wanted} argument(s), got {len(args)}")
