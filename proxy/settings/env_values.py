"""Typed readers for single environment values; each error names the variable and the accepted forms.

Only proxy/ reads the environment: previews/ and cache/ take the frozen values read here.

Sizes and durations are read by proxy.settings.units (read_size, read_duration).
"""

from collections.abc import Mapping
from pathlib import Path

from proxy.settings.errors import ConfigError

TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off"}


def read_flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    """A true/false switch (1/0, yes/no, on/off also read)."""
    text = (env.get(name) or "").strip().lower()
    if not text:
        return default
    if text in TRUE_WORDS | FALSE_WORDS:
        return text in TRUE_WORDS
    raise ConfigError(f"{name}={text!r}: expected true or false")


def read_count(env: Mapping[str, str], name: str, default: int) -> int:
    """A whole number, 0 or more."""
    text = (env.get(name) or str(default)).strip()
    if not text.isascii() or not text.isdigit():
        raise ConfigError(f"{name}={text!r}: expected a whole number, 0 or more")
    return int(text)


def read_number(env: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    """A decimal number in [low, high]."""
    text = (env.get(name) or "").strip()
    if not text:
        return default
    try:
        value = float(text) if text.isascii() else float("nan")
    except ValueError:
        value = float("nan")
    if not low <= value <= high:  # also refuses NaN
        raise ConfigError(f"{name}={text!r}: expected a number from {low:g} to {high:g}")
    return value


def read_folder(env: Mapping[str, str], name: str, default: str | Path) -> Path:
    """An absolute folder path (created later if absent); ConfigError naming `name` when a file is there."""
    path = Path(env.get(name) or default).absolute()
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{name}={str(path)!r}: not a folder")
    return path
