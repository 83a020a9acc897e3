"""CPU work behind three bounds: a fixed number of worker threads, a bounded queue in front of them,
and a budget of memory (proxy.render.memory) that a job's estimated peak must fit in before it starts.

A request that finds the queue full gets 429 at once; one that waits past its deadline gets 504. A
render that overruns is not killed (threads can't be), but the pipeline checks the same deadline
between steps and stops, and its thread (and its memory) counts as busy until then, so the bounds hold.
"""

import asyncio
import concurrent.futures
import time
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from proxy.errors import RenderWaitTimedOut, TooManyRequests
from proxy.render.memory import RenderMemory

T = TypeVar("T")


class RenderObserver(Protocol):
    """Where the pool reports its gauges (proxy.metrics.registry.Metrics)."""

    def render_queue(self, waiting: int, running: int) -> None:
        """Current queue depth and renders in progress."""

    def render_memory(self, reserved: int, waiting: int) -> None:
        """Bytes reserved by the renders running, and asked for by those waiting for memory."""


class RenderPool:
    """Runs blocking functions on `workers` threads with at most `queue_size` callers waiting (0: no bound)."""

    def __init__(self, workers: int, queue_size: int, observer: RenderObserver,
                 memory: RenderMemory | None = None) -> None:
        self.memory = memory  # None: jobs are not admitted by memory
        self._executor = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="render")
        self._slots = asyncio.Semaphore(workers)
        self._queue_size = queue_size
        self._observer = observer
        self._waiting = 0
        self._running = 0

    async def run(self, work: Callable[[], T], deadline: float, memory: int = 0, admitted: bool = False) -> T:
        """`work()` on a worker thread, once `memory` bytes (its estimated peak) are reserved.

        TooManyRequests if the queue is full, RenderWaitTimedOut past `deadline`, and render_memory's
        refusals for the memory. `admitted`: the second trip of a job the queue already took
        (proxy.render.file_jobs), which the queue's bound doesn't turn away.
        """
        if not admitted and self._queue_size and self._waiting >= self._queue_size:
            raise TooManyRequests("render queue is full, try again shortly")
        reserved = memory if self.memory is not None else 0
        self._waiting += 1
        self._report()
        try:
            if reserved and self.memory is not None:
                await self.memory.reserve(reserved, deadline)
            try:
                await asyncio.wait_for(self._slots.acquire(), _remaining(deadline))
            except BaseException:
                self._release_memory(reserved)
                raise
        except TimeoutError:
            raise RenderWaitTimedOut("render timed out waiting for a worker") from None
        finally:
            self._waiting -= 1
        self._running += 1
        self._report()
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._executor, work)
        # The slot and the memory are freed when the thread is, not when a caller stops waiting for it.
        future.add_done_callback(self._free_slot)
        if reserved:
            future.add_done_callback(lambda _: self._release_memory(reserved))
        try:
            return await asyncio.wait_for(asyncio.shield(future), _remaining(deadline))
        except TimeoutError:
            future.add_done_callback(_consume_result)
            raise RenderWaitTimedOut() from None

    def _free_slot(self, _: "asyncio.Future[Any]") -> None:
        self._running -= 1
        self._slots.release()
        self._report()

    def _release_memory(self, reserved: int) -> None:
        if reserved and self.memory is not None:
            self.memory.release(reserved)
            self._report()

    def _report(self) -> None:
        self._observer.render_queue(self._waiting, self._running)
        if self.memory is not None:
            self._observer.render_memory(self.memory.in_use, self.memory.waiting)

    def close(self) -> None:
        """Stop taking work; threads finish what they run."""
        self._executor.shutdown(wait=False, cancel_futures=True)


def _remaining(deadline: float) -> float:
    return max(0.0, deadline - time.monotonic())


def _consume_result(future: "asyncio.Future[Any]") -> None:
    # Nobody awaits an abandoned render any more; reading its exception keeps asyncio quiet.
    if not future.cancelled():
        future.exception()
