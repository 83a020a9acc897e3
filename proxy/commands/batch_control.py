"""What the long batch commands (warm, migrate) share around their workers: a progress line every few
seconds when there is no terminal for a bar, and Ctrl-C or SIGTERM cancelling the workers, so the run
still ends with its summary and, for migrate, aborts the multipart upload in flight."""

import asyncio
import contextlib
import signal
from collections.abc import Iterator
from typing import Protocol


class LogsProgress(Protocol):
    """A run's progress that can write one line of where it is."""

    def log_line(self) -> None: ...


class Interruptible(Protocol):
    """A run that records it was stopped by a signal (its summary says so, its exit status is 130)."""

    interrupted: bool


async def log_progress_every(progress: LogsProgress, every: float) -> None:
    """Write `progress`'s line every `every` seconds, until cancelled."""
    while True:
        await asyncio.sleep(every)
        progress.log_line()


@contextlib.contextmanager
def cancelled_by_signals(tasks: list["asyncio.Task[None]"], run: Interruptible) -> Iterator[None]:
    """While inside, SIGINT and SIGTERM mark `run` interrupted and cancel `tasks`."""
    loop = asyncio.get_running_loop()

    def stop() -> None:
        run.interrupted = True
        for task in tasks:
            task.cancel()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop)
    try:
        yield
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
