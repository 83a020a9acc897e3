"""Typed readers for single environment values; each error names the variable and the accepted forms.

Sizes and durations are read by cache.units (read_size, read_duration).
"""

from collections.abc import Mapping

from cache.config import ConfigError

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
