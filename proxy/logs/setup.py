"""Logging set up for a process from LOG_FORMAT and LOG_LEVEL: one handler on stderr, its formatter,
and the redaction filter. The CLI, the supervisor and every worker call it, so all write alike."""

import logging

from proxy.logs.formats import JsonFormatter, TextFormatter
from proxy.runtime.log_redaction import install_redaction
from proxy.settings.operations.logs import JSON, LogConfig

DEFAULT = LogConfig()


def configure_logging(config: LogConfig = DEFAULT, with_pid: bool = False) -> None:
    """Replace the root logger's handlers with one that writes `config`'s format at its level
    (`with_pid`: text lines name the process, for a server of several)."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if config.format == JSON else TextFormatter(with_pid))
    logging.basicConfig(level=config.level, handlers=[handler], force=True)
    install_redaction()
