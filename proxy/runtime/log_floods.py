"""Malformed requests as one rate-limited warning line each, not an error with a traceback.

aiohttp's RequestHandler logs every request it can't parse (`Error handling request from <peer>`,
logger `aiohttp.server`) with logger.exception: a full traceback at ERROR for what is the
client's mistake, already answered 400. A URL fuzzer or a port scanner turns that into thousands
of tracebacks. A filter on that logger rewrites such records, whose exception is an
aiohttp.http_exceptions.HttpProcessingError, into one WARNING line, at most WARNINGS_PER_SECOND
per process; the rest are counted and reported in one "suppressed" line. Real server errors keep
their level and traceback.
"""

import asyncio
import logging
import time

from aiohttp.http_exceptions import HttpProcessingError

from proxy.secrets.registry import SECRETS

AIOHTTP_SERVER_LOGGER = "aiohttp.server"
WARNINGS_PER_SECOND = 5
REASON_MAX_CHARS = 200  # a bad request line can be 8 KiB; the start of it says enough
log = logging.getLogger(__name__)


class MalformedRequestFilter(logging.Filter):
    """On `aiohttp.server`: parse errors become one-line warnings, `per_second` at most each second."""

    def __init__(self, per_second: int = WARNINGS_PER_SECOND) -> None:
        super().__init__()
        self.per_second = per_second
        self._window_start = float("-inf")
        self._used = 0
        self._suppressed = 0
        self._flush_scheduled = False

    def filter(self, record: logging.LogRecord) -> bool:
        """Pass other records untouched; rewrite or drop (counting) a malformed request's."""
        error = record.exc_info[1] if record.exc_info else None
        if not isinstance(error, HttpProcessingError) or record.levelno < logging.WARNING:
            return True
        now = time.monotonic()
        if now - self._window_start >= 1.0:
            self._flush()
            self._window_start, self._used = now, 0
        if self._used >= self.per_second:
            self._suppressed += 1
            self._schedule_flush(self._window_start + 1.0 - now)
            return False
        self._used += 1
        _as_warning(record, error)
        return True

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._suppressed:
            count, self._suppressed = self._suppressed, 0
            log.warning("suppressed %d similar warnings (malformed requests, answered 400)", count)

    def _schedule_flush(self, delay: float) -> None:
        """Report the count when the window ends, even if no other malformed request comes."""
        if self._flush_scheduled:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # not on the event loop: the next window's first warning reports the count
        self._flush_scheduled = True
        loop.call_later(max(delay, 0.0), self._flush)


def _as_warning(record: logging.LogRecord, error: HttpProcessingError) -> None:
    peer = record.args[0] if isinstance(record.args, tuple) and record.args else "an unknown peer"
    # Redacted before it is cut: a cut through a secret would leave a piece the log filter can't match.
    reason = SECRETS.redact(" ".join(str(error.message).split()))
    if len(reason) > REASON_MAX_CHARS:
        reason = reason[:REASON_MAX_CHARS] + "..."
    record.levelno, record.levelname = logging.WARNING, logging.getLevelName(logging.WARNING)
    record.msg, record.args = "malformed request from %s, answered %d: %s: %s", (
        peer, error.code, type(error).__name__, reason)
    record.exc_info, record.exc_text, record.stack_info = None, None, None


def install_flood_filters() -> None:
    """Put the filter on aiohttp's server logger (once; a logger's filters survive logging.basicConfig)."""
    logger = logging.getLogger(AIOHTTP_SERVER_LOGGER)
    if not any(isinstance(f, MalformedRequestFilter) for f in logger.filters):
        logger.addFilter(MalformedRequestFilter())
