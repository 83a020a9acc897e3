"""The render pool's threads: small jobs don't queue behind large ones, large ones keep to the workers, and
the heap kept between renders (and handed back before a big one).

Jobs block on events the test sets; every wait is bounded, and "not started" is read from the pool's
own state once the job that proves the point has finished.
"""

import asyncio
import io
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import TypeVar, cast

import pytest

from cache.entry import ObjectInfo
from proxy.metrics.registry import Metrics
from proxy.render.file_jobs import run_file_job
from proxy.render.memory import MIB, RenderMemory
from proxy.render.pool import SMALL_JOB_BYTES, RenderPool
from proxy.tiers.originals import Located
from tests.conftest import REPO
from tests.support.render_gauges import RecordingGauges

T = TypeVar("T")

LARGE = 64 * MIB
SMALL = MIB
WAIT = 10.0  # seconds any blocked job waits at most
_INFO = ObjectInfo(8, '"etag"', 0.0, "image/jpeg")


def blocking(started: threading.Event, release: threading.Event, name: str) -> Callable[[], str]:
    """A job that says it started, then holds its thread until released (bounded)."""
    def work() -> str:
        started.set()
        if not release.wait(WAIT):
            raise TimeoutError(f"{name} was never released")
        return name
    return work


async def until(condition: Callable[[], bool]) -> None:
    """Wait (bounded) for a condition the pool's threads make true."""
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.005)  # polling a thread's flag; the deadline bounds it


def test_the_sizes_the_tests_use_are_on_either_side_of_the_bound() -> None:
    assert SMALL <= SMALL_JOB_BYTES < LARGE


def test_a_small_render_does_not_wait_for_a_large_one_holding_every_worker() -> None:
    async def scenario() -> None:
        pool = RenderPool(workers=1, queue_size=0, observer=RecordingGauges())
        large_started, release_large = threading.Event(), threading.Event()
        try:
            deadline = time.monotonic() + WAIT
            large = asyncio.ensure_future(pool.run(blocking(large_started, release_large, "large"), deadline, LARGE))
            await until(large_started.is_set)
            # The one worker holds the large render; the small one is done while it still does.
            assert await pool.run(lambda: "small", deadline, SMALL) == "small"
            assert not large.done()
            release_large.set()
            assert await large == "large"
        finally:
            release_large.set()
            pool.close()
    asyncio.run(scenario())


def test_a_large_render_waits_for_a_worker_while_small_ones_pass_it_in_their_lane() -> None:
    async def scenario() -> None:
        pool = RenderPool(workers=1, queue_size=0, observer=RecordingGauges())
        first_started, release_first = threading.Event(), threading.Event()
        second_started, release_second = threading.Event(), threading.Event()
        try:
            deadline = time.monotonic() + WAIT
            first = asyncio.ensure_future(pool.run(blocking(first_started, release_first, "first"), deadline, LARGE))
            await until(first_started.is_set)
            second = asyncio.ensure_future(pool.run(blocking(second_started, release_second, "second"), deadline,
                                                    LARGE))
            # Queued after the second large render, a small one starts and ends before it.
            assert await pool.run(lambda: "small", deadline, SMALL) == "small"
            assert not second_started.is_set() and not second.done()
            assert pool.running == 1
            release_first.set()
            assert await first == "first"
            await until(second_started.is_set)  # the worker is free: the large render starts
            release_second.set()
            assert await second == "second"
        finally:
            release_first.set()
            release_second.set()
            pool.close()
    asyncio.run(scenario())


def test_a_jobs_later_trip_gets_the_next_thread_before_the_jobs_that_asked_after_it() -> None:
    async def scenario() -> None:
        pool = RenderPool(workers=1, queue_size=0, observer=RecordingGauges())
        held_started, release_held = threading.Event(), threading.Event()
        started: list[str] = []
        try:
            deadline = time.monotonic() + WAIT
            asked = time.monotonic()  # a job that read its header before the others asked
            held = asyncio.ensure_future(pool.run(blocking(held_started, release_held, "held"), deadline, LARGE))
            await until(held_started.is_set)
            newer = asyncio.ensure_future(pool.run(lambda: started.append("newer"), deadline, LARGE))
            await asyncio.sleep(0)  # one turn of the loop: the newer job waits for the thread
            later_trip = asyncio.ensure_future(pool.run(lambda: started.append("later trip"), deadline, LARGE,
                                                        admitted=asked))
            await asyncio.sleep(0)
            assert started == [] and pool.running == 1
            release_held.set()
            await asyncio.wait_for(asyncio.gather(held, newer, later_trip), WAIT)
            assert started == ["later trip", "newer"]
        finally:
            release_held.set()
            pool.close()
    asyncio.run(scenario())


def test_the_small_lane_is_one_thread_and_small_jobs_take_turns_in_it() -> None:
    async def scenario() -> None:
        gauges = RecordingGauges()
        pool = RenderPool(workers=1, queue_size=0, observer=gauges)
        large_started, release_large = threading.Event(), threading.Event()
        small_started, release_small = threading.Event(), threading.Event()
        try:
            deadline = time.monotonic() + WAIT
            large = asyncio.ensure_future(pool.run(blocking(large_started, release_large, "large"), deadline, LARGE))
            await until(large_started.is_set)
            small = asyncio.ensure_future(pool.run(blocking(small_started, release_small, "small"), deadline, SMALL))
            await until(small_started.is_set)
            later = asyncio.ensure_future(pool.run(lambda: "later", deadline, SMALL))
            await until(lambda: gauges.queue[-1] == (1, 2))  # one waiting, two running: the lane is full
            assert not later.done()
            release_small.set()
            assert await later == "later"  # its turn in the lane, the large render still running
            assert not large.done()
            release_large.set()
            assert await asyncio.gather(large, small) == ["large", "small"]
            assert gauges.queue[-1] == (0, 0)
        finally:
            release_large.set()
            release_small.set()
            pool.close()
    asyncio.run(scenario())


def test_without_large_renders_no_more_run_at_once_than_there_are_workers() -> None:
    async def scenario() -> None:
        gauges = RecordingGauges()
        pool = RenderPool(workers=2, queue_size=0, observer=gauges)
        release = threading.Event()
        starts = [threading.Event() for _ in range(3)]
        try:
            deadline = time.monotonic() + WAIT
            jobs = [asyncio.ensure_future(pool.run(blocking(start, release, f"job{n}"), deadline, SMALL))
                    for n, start in enumerate(starts)]
            await until(lambda: starts[0].is_set() and starts[1].is_set())
            await until(lambda: gauges.queue[-1] == (1, 2))
            assert not starts[2].is_set()  # small jobs alone don't open the lane
            release.set()
            assert await asyncio.gather(*jobs) == ["job0", "job1", "job2"]
        finally:
            release.set()
            pool.close()
    asyncio.run(scenario())


HEAP_PROBE = """
import resource, sys
from proxy.render.heap import keep_freed_memory
kept = keep_freed_memory(int(sys.argv[1]))
size = 48 * 1024 * 1024  # above the 32 MiB the C library's own thresholds ever reach
bytearray(size)  # allocated and freed once: with the heap kept, its pages stay for the next
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
bytearray(size)
print(kept, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def heap_probe(keep: int) -> tuple[bool, int]:
    """In a fresh process: whether the heap setting took, and the pages faulted by a second 48 MiB buffer."""
    result = subprocess.run([sys.executable, "-c", HEAP_PROBE, str(keep)], capture_output=True, text=True,
                            timeout=60, check=True)
    kept, faults = result.stdout.split()
    return kept == "True", int(faults)


def test_a_kept_heap_gives_the_next_render_its_pages_without_faulting_them_again() -> None:
    kept, faults = heap_probe(128 * MIB)
    default_kept, default_faults = heap_probe(0)
    pages = 48 * MIB // 4096
    assert kept and not default_kept
    assert default_faults > pages // 2  # by default a fresh mapping each time, every page faulted in
    assert faults < pages // 10


class _Work:
    """Prepared work of a given estimated peak, recording the thread it ran on and whether it was closed."""

    def __init__(self, peak: int) -> None:
        self.peak_bytes = peak
        self.closed = False

    def run(self) -> str:
        return threading.current_thread().name

    def close(self) -> None:
        self.closed = True


class _CountingPool(RenderPool):
    """The real pool, counting the trips it is asked for."""

    trips = 0
    admitted: list[float | None]  # each trip's: when its job first asked, or None for the first

    async def run(self, work: Callable[[], T], deadline: float, memory: int = 0, admitted: float | None = None,
                  on_a_core: bool = True) -> T:
        self.trips += 1
        self.admitted = [*getattr(self, "admitted", []), admitted]
        return await super().run(work, deadline, memory, admitted, on_a_core)


class _RenderTimes:
    def render_done(self, operation: str, output_format: str, seconds: float) -> None:
        """Not what these tests look at."""


def test_a_small_job_runs_on_the_thread_that_read_its_header_and_a_large_one_is_admitted_by_its_estimate() -> None:
    async def one(peak: int) -> tuple[int, _Work, io.BytesIO]:
        pool = _CountingPool(workers=1, queue_size=0, observer=RecordingGauges(), memory=RenderMemory(256 * MIB))
        work, original = _Work(peak), io.BytesIO(b"original")
        before = time.monotonic()
        try:
            await run_file_job(pool, cast(Metrics, _RenderTimes()), "preview", Located(_INFO, "MISS", original),
                               lambda _: work, time.monotonic() + WAIT, "jpeg", lambda _: "jpeg")
        finally:
            pool.close()
        if pool.trips == 2:  # the second trip waits in the place the job took when it first asked
            first, second = pool.admitted
            assert first is None and second is not None and before <= second <= time.monotonic()
        return pool.trips, work, original

    small_trips, small, small_file = asyncio.run(one(SMALL))
    large_trips, large, large_file = asyncio.run(one(LARGE))
    assert (small_trips, large_trips) == (1, 2)
    assert small.closed and large.closed and small_file.closed and large_file.closed


FREED = """
import asyncio, ctypes, json, os, threading, time
from proxy.metrics.registry import Metrics
from proxy.render.file_jobs import run_file_job
from proxy.render.memory import MIB, RenderMemory
from proxy.render.pool import RenderPool
from proxy.storage.provider import ObjectInfo
from proxy.tiers.originals import Located
def rss():
    return next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmRSS"))
class Sized:  # a prepared render of a given estimate; its work reports the RSS it starts with, and where
    def __init__(self, peak_bytes):
        self.peak_bytes = peak_bytes
    def run(self):
        return rss()
    def close(self):
        pass
import proxy.render.file_jobs as file_jobs
trims = []  # the thread each hand-back ran on (the real one still runs)
def recorded(give_back=file_jobs.give_back_freed_memory):
    trims.append(threading.current_thread().name)
    return give_back()
file_jobs.give_back_freed_memory = recorded
pool = RenderPool(1, 0, Metrics(None), RenderMemory(1000 * MIB, together=100 * MIB))
def render(peak):
    located = Located(ObjectInfo(0, '"e"', 0.0, "image/jpeg"), "MISS", file=open(os.devnull, "rb"))
    return asyncio.run(run_file_job(pool, Metrics(None), "preview", located, lambda file: Sized(peak),
                                    time.monotonic() + 5, "jpeg", lambda result: "jpeg"))
before = rss()
blocks = [bytearray(64 * 1024) for _ in range(1600)]  # 100 MiB on malloc's heap, below its mmap threshold
kept = blocks[-1]  # the heap's top stays in use, so freeing the rest can't shrink it from the end
del blocks
freed = rss()
small = render(50 * MIB)  # not over half of `together`: nothing given back
big = render(51 * MIB)  # a big one
print(json.dumps({"held": freed - before, "small": small - before, "big": big - before, "trims": trims,
                  "glibc": hasattr(ctypes.CDLL(None), "malloc_trim")}))
"""


def test_what_renders_freed_goes_back_to_the_system_before_a_big_render() -> None:
    result = subprocess.run([sys.executable, "-c", FREED], cwd=REPO, capture_output=True, text=True, timeout=60,
                            check=True)
    figures = json.loads(result.stdout)
    if not figures["glibc"]:
        pytest.skip("no glibc malloc_trim here")
    assert figures["held"] > 80 * MIB  # freed, but still the process's
    assert figures["small"] > 80 * MIB  # small renders reuse it
    assert figures["big"] < 20 * MIB, figures
    # Once, for the big one, on its render thread: not on the event loop's.
    assert len(figures["trims"]) == 1 and figures["trims"][0].startswith("render"), figures
