"""The two forms of a log line, LOG_FORMAT=text and LOG_FORMAT=json, each with the request id.

Both end with the secret registry's mask over the whole line, as it will be written: the redaction
filter (proxy.runtime.log_redaction) already masked the message and the traceback, and this pass
covers what it can't see, such as a field of an access line or a form a secret only takes once
encoded into the line.
"""

import datetime
import json
import logging
from typing import Any

from proxy.logs.request_ids import REQUEST_ID
from proxy.secrets.registry import SECRETS, SecretRegistry

TEXT_LINE = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# With several workers the pid tells which one wrote a line; the supervisor's lines carry its own.
TEXT_LINE_WITH_PID = "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"


def record_request_id(record: logging.LogRecord) -> str | None:
    """The id of the request a record is about: its own (an access line's), else the one being handled."""
    return getattr(record, "request_id", None) or REQUEST_ID.get()


class TextFormatter(logging.Formatter):
    """`<time> <LEVEL> [<pid>] <logger>: <message> request_id=<id>`; a traceback follows on its own lines."""

    def __init__(self, with_pid: bool = False, registry: SecretRegistry = SECRETS) -> None:
        super().__init__(TEXT_LINE_WITH_PID if with_pid else TEXT_LINE)
        self.registry = registry
        self._second = -1
        self._second_text = ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        """logging's default time (`2026-01-31 12:00:00,123`, local time), its seconds made once a second:
        a busy server writes thousands of lines in each."""
        second = int(record.created)
        if second != self._second:
            self._second, self._second_text = second, super().formatTime(record, datefmt)[:19]
        return f"{self._second_text},{int(record.msecs):03d}"

    def formatMessage(self, record: logging.LogRecord) -> str:
        """The line before any traceback, with the request id at its end."""
        line = super().formatMessage(record)
        request_id = record_request_id(record)
        return f"{line} request_id={request_id}" if request_id else line

    def format(self, record: logging.LogRecord) -> str:
        """The whole text, masked."""
        return self.registry.redact(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object a line: `time` (UTC, ISO 8601), `severity`, `logger`, `pid`, `message`, the
    `request_id` when there is one, an access line's fields, and `exception` with its traceback.
    `severity` and `message` are what Google Cloud Logging reads from a line, as most collectors do."""

    def __init__(self, registry: SecretRegistry = SECRETS) -> None:
        super().__init__()
        self.registry = registry

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON, masked before and after encoding."""
        redact = self.registry.redact
        fields: dict[str, Any] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(timespec="milliseconds"),
            "severity": record.levelname, "logger": record.name, "pid": record.process,
            "message": redact(record.getMessage()),
        }
        request_id = record_request_id(record)
        if request_id:
            fields["request_id"] = request_id
        access = getattr(record, "access", None)
        if isinstance(access, dict):
            fields.update((name, redact(value) if isinstance(value, str) else value) for name, value in access.items())
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            fields["exception"] = redact(record.exc_text)
        if record.stack_info:
            fields["stack"] = redact(self.formatStack(record.stack_info))
        # Non-ASCII as it is: an escaped form of a secret (\u00e9) is one the registry does not know.
        return redact(json.dumps(fields, ensure_ascii=False))
