"""CPU work behind three bounds: a fixed number of worker threads, a bounded queue in front of them,
and a budget of memory (proxy.render.memory) that a job's estimated peak must fit in before it starts.
In a server of several worker processes, a fourth: a job on a worker thread also takes one of the
server's cores, shared by every process (proxy.render.shared_bounds), so a busy worker can use an idle one's
core without the processes together running more renders than there are cores.

A request that finds the queue full gets 429 at once; one that waits past its deadline gets 504. A
render that overruns is not killed (threads can't be), but the pipeline checks the same deadline
between steps and stops, and its thread (and its memory) counts as busy until then, so the bounds hold.

Jobs start in arrival order, a job's later trip (its render, after the trip that read its header) in
the place the job took when it first asked: otherwise a large render would wait for a thread twice,
the second time behind every job that came while its header was read. One exception: small ones
(a header read, or a render whose estimated peak is at most SMALL_JOB_BYTES) don't queue behind
large ones. When every worker thread of the process, or every core of the server, holds a large
job, a small one starts on one more thread, the small lane, which takes small jobs only and takes
no core; so a thumbnail doesn't wait for a 50 MP render, and the cores are not shared by more
renders than there are cores the rest of the time. A job that mostly waits for the render host's
answer (a render from kept pixels) takes a thread but no core.
"""

import asyncio
import collections
import concurrent.futures
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from proxy.errors import RenderWaitTimedOut, TooManyRequests
from proxy.render.memory import MIB, RenderMemory, insert_in_order
from proxy.render.shared_bounds import SharedBounds

T = TypeVar("T")
# A preview of a photo of a few megapixels, decoded at a fraction of its size by JPEG's draft mode,
# needs about 5 MiB; a large output or an unreduced decode needs several times that.
SMALL_JOB_BYTES = 8 * MIB
SMALL_LANE = 1  # threads beyond `workers` that only small jobs use, while every worker (or core) holds a large one
LARGE, SMALL, LANE = "large", "small", "lane"  # where a job runs: a worker thread (by its size), or the small lane


class RenderObserver(Protocol):
    """Where the pool reports its gauges (proxy.metrics.registry.Metrics)."""

    def render_queue(self, waiting: int, running: int) -> None:
        """Current queue depth and renders in progress."""

    def render_memory(self, reserved: int, waiting: int) -> None:
        """Bytes reserved by the renders running, and asked for by those waiting for memory."""


@dataclass(eq=False)
class _Turn:
    """A job waiting for a thread."""

    small: bool
    since: float  # when its job first asked the pool: turns are granted oldest first
    granted: "asyncio.Future[str]" = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class RenderPool:
    """Runs blocking functions on `workers` threads (and the small lane) with at most `queue_size` callers
    waiting (0: no bound)."""

    def __init__(self, workers: int, queue_size: int, observer: RenderObserver,
                 memory: RenderMemory | None = None, cores: SharedBounds | None = None,
                 host: str | None = None) -> None:
        self.memory = memory  # None: jobs are not admitted by memory
        self.host = host  # the render host's socket (proxy.render.host) for large jobs, or None: all run here
        self.workers = workers
        self._cores = cores  # None: this process's threads are the only bound
        # Threads start when first needed: the small lane's only once every worker holds a large job.
        self._executor = concurrent.futures.ThreadPoolExecutor(workers + SMALL_LANE, thread_name_prefix="render")
        self._turns: collections.deque[_Turn] = collections.deque()
        self._queue_size = queue_size
        self._observer = observer
        self._waiting = 0
        self._running = {LARGE: 0, SMALL: 0, LANE: 0}
        self._report_due = False

    async def run(self, work: Callable[[], T], deadline: float, memory: int = 0, admitted: float | None = None,
                  on_a_core: bool = True) -> T:
        """`work()` on a worker thread, once `memory` bytes (its estimated peak) are reserved.

        TooManyRequests if the queue is full, RenderWaitTimedOut past `deadline`, and render_memory's
        refusals for the memory. `admitted`: for a later trip of a job the queue already took
        (proxy.render.file_jobs), when the job first asked: the queue's bound doesn't turn it away, and
        it waits for its thread and memory in that place, not behind the jobs that came since.
        `on_a_core=False`: work that mostly waits for the render host's answer (a render from kept
        pixels, which the host refuses at once when it keeps none): it takes a thread but none of the
        server's cores.
        """
        if admitted is None and self._queue_size and self._waiting >= self._queue_size:
            raise TooManyRequests("render queue is full, try again shortly")
        since = admitted if admitted is not None else time.monotonic()
        reserved = memory if self.memory is not None else 0
        small = memory <= SMALL_JOB_BYTES
        self._waiting += 1
        self._report()
        try:
            if reserved and self.memory is not None:
                await self.memory.reserve(reserved, deadline, since)
            try:
                seat = await self._take_turn(small, deadline, since)
            except BaseException:
                self._release_memory(reserved)
                raise
        except TimeoutError:
            raise RenderWaitTimedOut("render timed out waiting for a worker") from None
        finally:
            self._waiting -= 1
        self._report()
        if seat != LANE and self._cores is not None and on_a_core:
            work = _on_a_core(work, self._cores, deadline, large=seat == LARGE)
        future = asyncio.get_running_loop().run_in_executor(self._executor, work)
        # The thread and the memory are freed when the work is done, not when a caller stops waiting for it.
        future.add_done_callback(lambda _: self._done(seat, reserved))
        try:
            return await asyncio.wait_for(asyncio.shield(future), _remaining(deadline))
        except TimeoutError:
            future.add_done_callback(_consume_result)
            raise RenderWaitTimedOut() from None

    @property
    def running(self) -> int:
        """Jobs on threads now."""
        return sum(self._running.values())

    def _seat(self, small: bool) -> str | None:
        """Where a job may start now (LARGE, SMALL or LANE), or None if it must wait."""
        if small and self._running[LANE] < SMALL_LANE and self._lane_open():
            return LANE
        if self._running[LARGE] + self._running[SMALL] < self.workers:
            return SMALL if small else LARGE
        return None

    def _lane_open(self) -> bool:
        # Every worker thread of this process holds a large job, or every core of the server does.
        return self._running[LARGE] >= self.workers or (self._cores is not None and self._cores.all_held_by_large())

    async def _take_turn(self, small: bool, deadline: float, since: float) -> str:
        """Wait for a thread: at once if one is free and nobody older waits, else in order of `since`."""
        if not (self._turns and self._turns[0].since <= since) and (seat := self._seat(small)) is not None:
            self._running[seat] += 1
            return seat
        turn = _Turn(small, since)
        insert_in_order(self._turns, turn)
        try:
            return await asyncio.wait_for(asyncio.shield(turn.granted), _remaining(deadline))
        except BaseException:
            if turn.granted.done():
                self._done(turn.granted.result(), 0)  # granted as the wait ended: give the thread back
            else:
                self._turns.remove(turn)
            raise

    def _grant(self) -> None:
        # In arrival order (`_Turn.since`): a job that can't start holds back the same kind behind it; a
        # small one passes a large one only into the small lane (_seat).
        for turn in list(self._turns):
            if (seat := self._seat(turn.small)) is not None:
                self._turns.remove(turn)
                self._running[seat] += 1
                turn.granted.set_result(seat)

    def _done(self, seat: str, reserved: int) -> None:
        self._running[seat] -= 1
        self._release_memory(reserved)
        self._grant()
        self._report()

    def _release_memory(self, reserved: int) -> None:
        if reserved and self.memory is not None:
            self.memory.release(reserved)
            self._report()

    def _report(self) -> None:
        # Once per turn of the event loop, however many jobs moved in it: each report writes the
        # gauges of every process's shared metrics files, several times per render otherwise.
        if not self._report_due:
            self._report_due = True
            asyncio.get_running_loop().call_soon(self._send_report)

    def _send_report(self) -> None:
        self._report_due = False
        self._observer.render_queue(self._waiting, self.running)
        if self.memory is not None:
            self._observer.render_memory(self.memory.in_use, self.memory.waiting)

    def close(self) -> None:
        """Stop taking work; threads finish what they run."""
        self._executor.shutdown(wait=False, cancel_futures=True)


def _on_a_core(work: Callable[[], T], cores: SharedBounds, deadline: float, large: bool) -> Callable[[], T]:
    """`work`, run once its thread holds one of the server's cores (the wait blocks that thread)."""

    def on_a_core() -> T:
        with cores.core(deadline, large):
            return work()

    return on_a_core


def _remaining(deadline: float) -> float:
    return max(0.0, deadline - time.monotonic())


def _consume_result(future: "asyncio.Future[Any]") -> None:
    # Nobody awaits an abandoned render any more; reading its exception keeps asyncio quiet.
    if not future.cancelled():
        future.exception()
