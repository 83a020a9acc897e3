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
        self._access_template: tuple[int, str, str, str] | None = None  # for the prototype's pid: see access_line

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        """logging's default time (`2026-01-31 12:00:00,123`, local time), its seconds made once a second:
        a busy server writes thousands of lines in each."""
        return self._time(record.created, record.msecs, datefmt)

    def _time(self, created: float, msecs: float, datefmt: str | None = None) -> str:
        second = int(created)
        if second != self._second:
            stamp = logging.makeLogRecord({"created": created, "msecs": msecs})
            self._second, self._second_text = second, super().formatTime(stamp, datefmt)[:19]
        return f"{self._second_text},{int(msecs):03d}"

    def access_line(self, prototype: dict[str, Any], created: float, message: str, request_id: str | None,
                    fields: dict[str, Any] | None = None) -> str:
        """What format() writes for an access record (proxy.logs.access.access_record) of these values,
        made without the record: its fixed parts (level, pid, logger) put in a template once per process.
        `message` must have passed the handler's redaction filter already."""
        template = self._access_template
        if template is None or template[0] != prototype["process"]:
            marked = self._style._fmt % {**prototype, "asctime": "\0", "message": "\0"}
            before, between, after = marked.split("\0")
            template = self._access_template = (prototype["process"], before, between, after)
        _, before, between, after = template
        line = f"{before}{self._time(created, (created - int(created)) * 1000)}{between}{message}{after}"
        request_id = request_id or REQUEST_ID.get()
        return self.registry.redact(f"{line} request_id={request_id}" if request_id else line)

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
        fields = self._fields(record.created, record.levelname, record.name, record.process, record.getMessage(),
                              record_request_id(record), getattr(record, "access", None))
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            fields["exception"] = redact(record.exc_text)
        if record.stack_info:
            fields["stack"] = redact(self.formatStack(record.stack_info))
        # Non-ASCII as it is: an escaped form of a secret (\u00e9) is one the registry does not know.
        return redact(json.dumps(fields, ensure_ascii=False))

    def access_line(self, prototype: dict[str, Any], created: float, message: str, request_id: str | None,
                    fields: dict[str, Any] | None = None) -> str:
        """What format() writes for an access record (proxy.logs.access.access_record) of these values and
        access `fields`, made without the record. `message` must have passed the handler's redaction filter."""
        return self.registry.redact(json.dumps(self._fields(
            created, prototype["levelname"], prototype["name"], prototype["process"], message,
            request_id or REQUEST_ID.get(), fields), ensure_ascii=False))

    def _fields(self, created: float, levelname: str, logger: str, pid: int | None, message: str,
                request_id: str | None, access: object) -> dict[str, Any]:
        redact = self.registry.redact
        fields: dict[str, Any] = {
            "time": datetime.datetime.fromtimestamp(created, datetime.UTC).isoformat(timespec="milliseconds"),
            "severity": levelname, "logger": logger, "pid": pid, "message": redact(message),
        }
        if request_id:
            fields["request_id"] = request_id
        if isinstance(access, dict):
            fields.update((name, redact(value) if isinstance(value, str) else value) for name, value in access.items())
        return fields
