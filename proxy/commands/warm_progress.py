"""A warm run's progress: a tqdm bar on a terminal, a log line every few seconds without one.

A bar's carriage returns and escape codes would fill a log file (cron, systemd, CI) with noise, so
when standard error is not a terminal the same figures go out as plain log lines instead.
"""

import logging
import sys
import time
from typing import TextIO

from tqdm import tqdm

from proxy.commands.warm_run import SourceResult, Status

log = logging.getLogger("proxy.commands.warm")


class Progress:
    """Sources done and failed, bytes, rate and ETA of one run."""

    def __init__(self, total: int, stream: TextIO | None = None) -> None:
        self.total = total
        self.done = 0
        self.failed = 0
        self.bytes = 0
        self._started = time.monotonic()
        stream = stream or sys.stderr
        self._bar: tqdm[None] | None = (
            tqdm(total=total, unit="src", file=stream, dynamic_ncols=True, smoothing=0.1) if stream.isatty() else None)

    @property
    def is_bar(self) -> bool:
        """True when a terminal shows a bar (then log lines must go through tqdm.write)."""
        return self._bar is not None

    def advance(self, result: SourceResult) -> None:
        """One source finished, whatever its outcome."""
        self.done += 1
        self.failed += result.status is Status.FAILED
        self.bytes += result.bytes
        if self._bar is not None:
            self._bar.set_postfix_str(f"failed={self.failed} {human_bytes(self.bytes)} {self._byte_rate()}",
                                      refresh=False)
            self._bar.update(1)

    def log_line(self) -> None:
        """Without a bar: the figures as one log line (called every few seconds)."""
        if self._bar is None:
            log.info("warm: %d/%d sources, %d failed, %s, %s, ETA %s", self.done, self.total, self.failed,
                     human_bytes(self.bytes), self._byte_rate(), self._eta())

    def close(self) -> None:
        """Leave the bar where it is, complete or not."""
        if self._bar is not None:
            self._bar.close()

    def _byte_rate(self) -> str:
        return f"{human_bytes(self.bytes / max(1e-3, time.monotonic() - self._started))}/s"

    def _eta(self) -> str:
        if not self.done:
            return "?"
        left = (self.total - self.done) * (time.monotonic() - self._started) / self.done
        return f"{int(left // 60)}m{int(left % 60):02d}s"


def human_bytes(count: float) -> str:
    """1536 -> '1.5 KiB'."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024:
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} TiB"
