"""How log lines look and which are written: LOG_FORMAT and LOG_LEVEL, with imgproxy's
IMGPROXY_LOG_FORMAT and IMGPROXY_LOG_LEVEL as aliases (ours win when both are set)."""

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from proxy.settings.errors import ConfigError

TEXT, JSON = "text", "json"
# imgproxy's names beside ours: its `pretty` is a line of text, and its `gcp` is JSON with `severity`
# and `message`, which ours has. Its `structured` (logfmt) has no counterpart, so it is refused.
FORMATS = {"text": TEXT, "pretty": TEXT, "json": JSON, "gcp": JSON}
LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "warn": logging.WARNING,
          "error": logging.ERROR}


@dataclass(frozen=True)
class LogConfig:
    """One line of text or one JSON object per record (`format`), and the least level written."""

    format: str = TEXT
    level: int = logging.INFO

    def describe(self) -> dict[str, str]:
        """The settings as `preview-proxy config` prints them."""
        return {"LOG_FORMAT": self.format, "LOG_LEVEL": logging.getLevelName(self.level).lower()}


def read_log_config(env: Mapping[str, str]) -> LogConfig:
    """LOG_FORMAT and LOG_LEVEL (or their IMGPROXY_ aliases); ConfigError names the variable read."""
    name, text = _setting(env, "LOG_FORMAT")
    log_format = FORMATS.get(text.lower(), "") if text else TEXT
    if not log_format:
        raise ConfigError(f"{name}={text!r}: expected text or json (imgproxy's pretty and gcp are read as "
                          "text and json; structured is not supported)")
    name, text = _setting(env, "LOG_LEVEL")
    level = LEVELS.get(text.lower()) if text else logging.INFO
    if level is None:
        raise ConfigError(f"{name}={text!r}: expected debug, info, warning or error")
    return LogConfig(log_format, level)


def _setting(env: Mapping[str, str], name: str) -> tuple[str, str]:
    """The variable that is set, ours first, and its text."""
    for variable in (name, f"IMGPROXY_{name}"):
        text = (env.get(variable) or "").strip()
        if text:
            return variable, text
    return name, ""
