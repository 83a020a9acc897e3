"""Access lines written in batches, for the hot lane: each answer adds a tuple, and the lines are made
and written together once MAX_LINES are waiting or FLUSH_SECONDS after the first, and at shutdown.

Why: the lane answers a hot preview in about 20 us, and a log record made and written for each
answer (a LogRecord, a formatter, a write and a flush on stderr) would cost as much again. Kept as
tuples, the answers' lines cost a list append each; written together, the handler's stream is
written and flushed once per batch. The lines are those of proxy.logs.access, with the time each
answer was given: a batch may reach the log up to FLUSH_SECONDS after aiohttp's lines written
meanwhile. The batch is bounded by MAX_LINES: it is written when full, so nothing waits beyond it.

Where the logging set-up is ours (a stream handler with the text or JSON formatter and no filter but
the redaction's, and no filter on the loggers), each line is made by the formatter's `access_line`
from the tuple: the same text as the record would give, without making the record (that was half a
batched line's cost). Any other set-up gets records, through its handlers and filters as logging would.
"""

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from proxy.logs.access import ACCESS_LOGGER, access_fields, access_message, access_prototype, access_record
from proxy.logs.formats import JsonFormatter, TextFormatter
from proxy.runtime.log_redaction import RedactingFilter

MAX_LINES = 256
FLUSH_SECONDS = 1.0
# One answer's line: time given, peer, method, target, status, body bytes, seconds taken, X-Cache,
# User-Agent, request id.
PendingLine = tuple[float, str, str, str, int, int, float, str, str, str]


class BufferedAccessLog:
    """The lane's access lines, kept as tuples until written together (from the event loop only)."""

    def __init__(self, logger: logging.Logger = ACCESS_LOGGER, max_lines: int = MAX_LINES,
                 flush_seconds: float = FLUSH_SECONDS) -> None:
        self._logger = logger
        self._max_lines = max_lines
        self._flush_seconds = flush_seconds
        self._pending: list[PendingLine] = []
        self._timer: asyncio.TimerHandle | None = None

    @property
    def enabled(self) -> bool:
        """Whether lines are written at all (the access logger's level lets INFO through)."""
        return self._logger.isEnabledFor(logging.INFO)

    def add(self, line: PendingLine) -> None:
        """Keep one answer's line; write the batch if it is full, or schedule its writing."""
        pending = self._pending
        pending.append(line)
        if len(pending) >= self._max_lines:
            self.flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._flush_seconds, self.flush)

    def flush(self) -> None:
        """Write every kept line now (also at shutdown: no line is lost at a clean stop)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        lines, self._pending = self._pending, []
        if lines and self.enabled:
            write_together(self._logger, lines)


def write_together(logger: logging.Logger, lines: list[PendingLine]) -> None:
    """Hand the access lines to the handlers `logger` reaches, as logger.handle would one by one, but
    with one write and one flush per stream handler for the whole batch."""
    made: list[logging.LogRecord] = []

    def records() -> list[logging.LogRecord]:
        """The lines' records, made once for every handler that needs them."""
        if not made:
            made.extend(access_record(_fields(line), line[9], line[0]) for line in lines)
            if logger.filters:
                made[:] = [record for record in made if logger.filter(record)]
        return made

    # The logger's own filters see (and may change or drop) records: then every handler gets those.
    records_only = bool(logger.filters)
    current: logging.Logger | None = logger
    while current is not None:
        for handler in current.handlers:
            if isinstance(handler, logging.StreamHandler):
                _write_to_stream(handler, lines, records, records_only)
            else:
                for record in records():
                    if record.levelno >= handler.level:
                        handler.handle(record)
        current = current.parent if current.propagate else None


def _fields(line: PendingLine) -> dict[str, Any]:
    """The access fields of a kept line."""
    _, peer, method, target, status, size, seconds, cache, agent, _ = line
    return access_fields(peer, method, target, "1.1", status, size, seconds, cache, agent)


def _write_to_stream(handler: logging.StreamHandler, lines: list[PendingLine],
                     records: Callable[[], list[logging.LogRecord]], records_only: bool) -> None:
    """What StreamHandler.emit does for each line (its filters, the redaction among them, then its
    formatter), with the texts joined into one write."""
    if handler.level > logging.INFO:
        return
    texts = None if records_only else _texts(handler, lines)
    if texts is None:
        texts = []
        for record in records():
            if handler.filter(record):
                try:
                    texts.append(handler.format(record) + handler.terminator)
                except Exception:
                    handler.handleError(record)
    if not texts:
        return
    with handler.lock or contextlib.nullcontext():
        try:
            handler.stream.write("".join(texts))
            handler.flush()
        except Exception:
            handler.handleError(access_record(_fields(lines[0]), lines[0][9], lines[0][0]))


def _texts(handler: logging.StreamHandler, lines: list[PendingLine]) -> list[str] | None:
    """The lines as `handler` writes them, made by its formatter's access_line; None when its set-up is
    not ours (another formatter, or a filter other than the redaction's): then records must be made."""
    formatter = handler.formatter
    if type(formatter) not in (TextFormatter, JsonFormatter) or any(
            type(each) is not RedactingFilter for each in handler.filters):
        return None
    assert isinstance(formatter, TextFormatter | JsonFormatter)
    # What each redaction filter does to an access record's message, in the filters' order.
    registries = [each.registry for each in handler.filters if isinstance(each, RedactingFilter)
                  and not each.registry.empty]
    prototype, terminator, is_json = access_prototype(), handler.terminator, type(formatter) is JsonFormatter
    texts = []
    for line in lines:
        created, peer, method, target, status, size, seconds, cache, agent, request_id = line
        message = access_message(peer, method, target, "1.1", status, size, round(seconds, 6), cache, agent)
        for registry in registries:
            message = registry.redact(message)
        texts.append(formatter.access_line(prototype, created, message, request_id,
                                           _fields(line) if is_json else None) + terminator)
    return texts
