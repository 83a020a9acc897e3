"""A migration's progress: one tqdm bar for the run and one per large file on a terminal, else a log line
every few seconds.

The run's bar counts bytes (its rate and ETA are the ones that matter with large files), with the
objects done, copied, skipped and failed beside it. Its total grows while the listing runs, so the
ETA is right from the moment the listing ends. Without a terminal, bars' carriage returns would fill a
log file; the same figures go out as plain lines instead (proxy.commands.warm_progress does the same).
"""

import contextlib
import logging
import sys
import time
from collections import Counter
from collections.abc import Iterator
from typing import TextIO

from tqdm import tqdm

from proxy.commands.migrate.outcomes import Outcome
from proxy.commands.warm_progress import human_bytes

log = logging.getLogger("proxy.commands.migrate")


class Progress:
    """Objects and bytes of one run: listed, done, and by outcome."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.objects = 0
        self.bytes = 0
        self.done = 0
        self.done_bytes = 0
        self.outcomes: Counter[Outcome] = Counter()
        self._started = time.monotonic()
        self._stream = stream or sys.stderr
        self._bar: tqdm[None] | None = (
            tqdm(total=0, unit="B", unit_scale=True, unit_divisor=1024, file=self._stream, dynamic_ncols=True,
                 smoothing=0.1) if self._stream.isatty() else None)

    @property
    def is_bar(self) -> bool:
        """True when a terminal shows bars (then log lines must go through tqdm.write)."""
        return self._bar is not None

    def listed(self, count: int, size: int) -> None:
        """The listing found `count` more objects of `size` bytes in all."""
        self.objects += count
        self.bytes += size
        if self._bar is not None:
            self._bar.total = self.bytes
            self._postfix()

    def moved(self, count: int) -> None:
        """`count` bytes of an object in progress were sent (negative: a retry takes back what its try sent)."""
        self.done_bytes += count
        if self._bar is not None:
            self._bar.update(count)

    def finished(self, outcome: Outcome, size: int, moved: int) -> None:
        """One object done; `moved` of its `size` bytes were already counted by `moved()`."""
        self.done += 1
        self.outcomes[outcome] += 1
        self.moved(max(0, size - moved))  # a skip or a failure still counts its bytes as behind us
        if self._bar is not None:
            self._postfix()

    @contextlib.contextmanager
    def file_bar(self, name: str, size: int) -> Iterator["tqdm[None] | None"]:
        """A bar of its own for one large file, on a terminal; None without one."""
        if self._bar is None:
            yield None
            return
        bar: tqdm[None] = tqdm(total=size, unit="B", unit_scale=True, unit_divisor=1024, file=self._stream,
                               dynamic_ncols=True, leave=False, desc=name[-40:])
        try:
            yield bar
        finally:
            bar.close()

    def log_line(self) -> None:
        """Without a bar: the figures as one log line (called every few seconds)."""
        if self._bar is None:
            log.info("migrate: %d/%d objects (%s), %s of %s, %s, ETA %s", self.done, self.objects,
                     self._counts(), human_bytes(self.done_bytes), human_bytes(self.bytes), self._rate(), self._eta())

    def close(self) -> None:
        """Leave the run's bar where it is, complete or not."""
        if self._bar is not None:
            self._bar.close()

    def _postfix(self) -> None:
        assert self._bar is not None
        self._bar.set_postfix_str(f"{self.done}/{self.objects} objects, {self._counts()}", refresh=False)

    def _counts(self) -> str:
        return ", ".join(f"{outcome.value} {self.outcomes[outcome]}" for outcome in Outcome if self.outcomes[outcome])

    def _rate(self) -> str:
        return f"{human_bytes(self.done_bytes / max(1e-3, time.monotonic() - self._started))}/s"

    def _eta(self) -> str:
        if not self.done_bytes:
            return "?"
        left = (self.bytes - self.done_bytes) * (time.monotonic() - self._started) / self.done_bytes
        return f"{int(left // 60)}m{int(left % 60):02d}s"
