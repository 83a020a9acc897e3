"""Blocking work on an original's open file, run on the render pool, timed for the render metrics.

Previews and conversions both hand a worker thread the file of an original (local disk, a tier
entry, a fill's reader or ranges from the provider). The job owns the file once a thread starts it
and closes it however the work ends; a job that never started (queue full, deadline passed in the
queue) leaves it to the caller, which closes it here too.
"""

import time
from collections.abc import Callable
from typing import BinaryIO, Generic, TypeVar

from proxy.metrics import Metrics
from proxy.originals import Located
from proxy.render_pool import RenderPool

T = TypeVar("T")


async def run_file_job(pool: RenderPool, metrics: Metrics, operation: str, located: Located,
                       work: Callable[[BinaryIO], T], deadline: float, output_format: str,
                       format_of: Callable[[T], str]) -> T:
    """`work(file)` on the pool; its time goes to render_duration_seconds{operation, format}.

    `output_format` labels a job that fails; `format_of` names the format of one that succeeds.
    """
    job = _FileJob(located, work, output_format, format_of)
    try:
        return await pool.run(job, deadline)
    finally:
        if job.started is None:
            located.close()
        elif job.seconds is not None:
            metrics.render_done(operation, job.output_format, job.seconds)


class _FileJob(Generic[T]):
    """The blocking call, run on a worker thread; it owns (and closes) the located file once started."""

    def __init__(self, located: Located, work: Callable[[BinaryIO], T], output_format: str,
                 format_of: Callable[[T], str]) -> None:
        self.started: float | None = None
        self.seconds: float | None = None
        self.output_format = output_format
        self._located = located
        self._work = work
        self._format_of = format_of

    def __call__(self) -> T:
        self.started = time.monotonic()
        try:
            assert self._located.file is not None
            result = self._work(self._located.file)
            self.output_format = self._format_of(result)
            return result
        finally:
            self.seconds = time.monotonic() - self.started
            self._located.close()
