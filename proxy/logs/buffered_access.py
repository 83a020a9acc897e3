"""Access lines written in batches, for the hot lane: each answer adds a tuple, and the lines are made
and written together once MAX_LINES are waiting or FLUSH_SECONDS after the first, and at shutdown.

Why: the lane answers a hot preview in about 20 us, and a log record made and written for each
answer (a LogRecord, a formatter, a write and a flush on stderr) would cost as much again. Kept as
tuples, the answers' lines cost a list append each; written together, the handler's stream is
written and flushed once per batch. The lines are those of proxy.logs.access, with the time each
answer was given: a batch may reach the log up to FLUSH_SECONDS after aiohttp's lines written
meanwhile. The batch is bounded by MAX_LINES: it is written when full, so nothing waits beyond it.
"""

import asyncio
import contextlib
import logging

from proxy.logs.access import ACCESS_LOGGER, access_fields, access_record

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
            write_together(self._logger, [
                access_record(access_fields(peer, method, target, "1.1", status, size, seconds, cache, agent),
                              request_id, created)
                for created, peer, method, target, status, size, seconds, cache, agent, request_id in lines])


def write_together(logger: logging.Logger, records: list[logging.LogRecord]) -> None:
    """Hand `records` to the handlers `logger` reaches, as logger.handle would one by one, but with one
    write and one flush per stream handler for the whole batch."""
    records = [record for record in records if logger.filter(record)]
    current: logging.Logger | None = logger
    while current is not None:
        for handler in current.handlers:
            if isinstance(handler, logging.StreamHandler):
                _write_to_stream(handler, records)
            else:
                for record in records:
                    if record.levelno >= handler.level:
                        handler.handle(record)
        current = current.parent if current.propagate else None


def _write_to_stream(handler: logging.StreamHandler, records: list[logging.LogRecord]) -> None:
    """What StreamHandler.emit does for each record (its filters, the redaction among them, then its
    formatter), with the lines joined into one write."""
    lines = []
    for record in records:
        if record.levelno >= handler.level and handler.filter(record):
            try:
                lines.append(handler.format(record) + handler.terminator)
            except Exception:
                handler.handleError(record)
    if not lines:
        return
    with handler.lock or contextlib.nullcontext():
        try:
            handler.stream.write("".join(lines))
            handler.flush()
        except Exception:
            handler.handleError(records[0])
