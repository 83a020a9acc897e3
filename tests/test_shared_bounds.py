"""What the renders of a server's worker processes share (proxy.render.shared_bounds): no more renders at
once than cores across processes, a small render passes when large ones hold them all, the memory
budget counts every process's renders, and what a killed worker held comes back.

Other processes are real ones, started the way the supervisor starts workers (spawn). Every wait is
bounded by a deadline.
"""

import asyncio
import contextlib
import multiprocessing
import threading
import time
from collections.abc import Iterator
from multiprocessing.connection import Connection

import pytest

from proxy.errors import RenderWaitTimedOut
from proxy.render.memory import MIB, OVERTAKEN_SECONDS, RECHECK_SECONDS, RenderMemory
from proxy.render.pool import RenderPool
from proxy.render.shared_bounds import SharedBounds
from tests.support.render_gauges import RecordingGauges

WAIT = 10.0  # seconds any wait lasts at most
REFUSED_AFTER = 0.3  # how long a take that must fail waits before it gives up
LARGE, SMALL = 64 * MIB, MIB
CONTEXT = multiprocessing.get_context("spawn")


def hold_a_core(cores: SharedBounds, slot: int, channel: Connection) -> None:
    """In another process: take a core, say so, and keep it until told to let go (or killed)."""
    cores.attach(slot)
    with cores.core(time.monotonic() + WAIT, large=True):
        channel.send("holding")
        channel.poll(WAIT)


def hold_memory(shared: SharedBounds, slot: int, reserved: int, channel: Connection, waiting_for: float = 0.0) -> None:
    """In another process: say its renders hold `reserved` bytes, and its oldest render waiting for memory
    has waited `waiting_for` seconds (0: none waits), until told they are done (or killed)."""
    shared.attach(slot)
    shared.set_memory_in_use(reserved)
    if waiting_for:
        shared.set_oldest_wait(time.monotonic() - waiting_for)
    channel.send("holding")
    channel.poll(WAIT)
    shared.set_memory_in_use(0)
    shared.set_oldest_wait(0.0)


def start_holder(cores: SharedBounds, slot: int) -> tuple[multiprocessing.process.BaseProcess, Connection]:
    ours, theirs = CONTEXT.Pipe()
    holder = CONTEXT.Process(target=hold_a_core, args=(cores, slot, theirs))
    holder.start()
    theirs.close()
    assert ours.poll(WAIT) and ours.recv() == "holding"
    return holder, ours


def test_a_process_waits_while_another_holds_the_only_core_and_goes_on_once_it_lets_go() -> None:
    cores = SharedBounds(1, slots=2, context=CONTEXT)
    cores.attach(1)
    holder, channel = start_holder(cores, slot=0)
    try:
        assert cores.all_held_by_large()
        with pytest.raises(RenderWaitTimedOut), cores.core(time.monotonic() + REFUSED_AFTER, large=False):
            pass
        channel.send("let go")
        holder.join(WAIT)
        assert holder.exitcode == 0
        with cores.core(time.monotonic() + WAIT, large=False):
            assert not cores.all_held_by_large()
    finally:
        holder.kill()
        holder.join(WAIT)


def test_the_cores_a_killed_process_held_are_given_back_for_its_slot() -> None:
    cores = SharedBounds(2, slots=3, context=CONTEXT)
    cores.attach(2)
    holders = [start_holder(cores, slot) for slot in (0, 1)]
    try:
        with pytest.raises(RenderWaitTimedOut), cores.core(time.monotonic() + REFUSED_AFTER, large=False):
            pass
        killed, _ = holders[0]
        killed.kill()  # SIGKILL: it can't give its core back itself
        killed.join(WAIT)
        with pytest.raises(RenderWaitTimedOut), cores.core(time.monotonic() + REFUSED_AFTER, large=False):
            pass
        cores.give_back_for(0)  # what the supervisor does once the process has exited
        with cores.core(time.monotonic() + WAIT, large=False):
            assert not cores.all_held_by_large()  # the live holder's large render is one of two
    finally:
        for holder, _ in holders:
            holder.kill()
            holder.join(WAIT)


def test_two_pools_sharing_one_core_run_one_render_at_a_time_and_a_small_one_passes_in_its_lane() -> None:
    """Two processes' pools, each with threads free, sharing one core: the second large render waits
    for the core, not for a thread; a small one does not wait behind either."""

    async def scenario() -> None:
        cores = SharedBounds(1, slots=1, context=CONTEXT)
        cores.attach(0)
        first_pool = RenderPool(workers=2, queue_size=0, observer=RecordingGauges(), cores=cores)
        second_pool = RenderPool(workers=2, queue_size=0, observer=RecordingGauges(), cores=cores)
        first_started, second_started = threading.Event(), threading.Event()
        release_first = threading.Event()

        def first_work() -> str:
            first_started.set()
            if not release_first.wait(WAIT):
                raise TimeoutError("the first render was never released")
            return "first"

        def second_work() -> str:
            second_started.set()
            return "second"

        try:
            deadline = time.monotonic() + WAIT
            first = asyncio.ensure_future(first_pool.run(first_work, deadline, LARGE))
            await asyncio.to_thread(first_started.wait, WAIT)
            assert first_started.is_set()
            second = asyncio.ensure_future(second_pool.run(second_work, deadline, LARGE))
            # The small one is queued after the second large render, on a pool with a thread free.
            assert await second_pool.run(lambda: "small", deadline, SMALL) == "small"
            assert not second_started.is_set() and second_pool.running == 1  # on a thread, waiting for the core
            release_first.set()
            assert await asyncio.gather(first, second) == ["first", "second"]
            assert second_started.is_set()
        finally:
            release_first.set()
            first_pool.close()
            second_pool.close()

    asyncio.run(scenario())


@contextlib.contextmanager
def pool_on_one_core() -> Iterator[tuple[SharedBounds, RenderPool]]:
    """A pool of two threads whose process is the server's only one, on a server of one core."""
    cores = SharedBounds(1, slots=1, context=CONTEXT)
    cores.attach(0)
    pool = RenderPool(workers=2, queue_size=0, observer=RecordingGauges(), cores=cores)
    try:
        yield cores, pool
    finally:
        pool.close()


def test_a_render_that_gets_no_core_by_its_deadline_is_refused_and_frees_its_thread() -> None:
    async def scenario() -> None:
        with pool_on_one_core() as (cores, pool):
            # The core is held by another process's render, say.
            with cores.core(time.monotonic() + WAIT, large=False), pytest.raises(RenderWaitTimedOut):
                await pool.run(lambda: "never", time.monotonic() + REFUSED_AFTER, LARGE)
            deadline = time.monotonic() + WAIT
            while pool.running:  # the thread gives up its own wait at the same deadline
                if time.monotonic() > deadline:
                    raise AssertionError("the refused render still holds its thread")
                await asyncio.sleep(0.01)  # polling a thread's count; the deadline bounds it
            assert await pool.run(lambda: "later", time.monotonic() + WAIT, LARGE) == "later"

    asyncio.run(scenario())


def test_work_that_waits_for_the_render_host_takes_no_core() -> None:
    async def scenario() -> None:
        # Every core held, by a large render.
        with pool_on_one_core() as (cores, pool), cores.core(time.monotonic() + WAIT, large=True):
            assert await pool.run(lambda: "kept", time.monotonic() + WAIT, LARGE, on_a_core=False) == "kept"
            with pytest.raises(RenderWaitTimedOut):  # the same work on a core waits for it
                await pool.run(lambda: "never", time.monotonic() + REFUSED_AFTER, LARGE)

    asyncio.run(scenario())


@contextlib.contextmanager
def memory_held_elsewhere(reserved: int, waiting_for: float = 0.0) -> Iterator[
        tuple[SharedBounds, multiprocessing.process.BaseProcess, Connection]]:
    """Bounds shared with another process (slot 0) whose renders hold `reserved` bytes (and whose oldest
    render waiting for memory has waited `waiting_for` s) until told they are done; this process is slot 1."""
    shared = SharedBounds(1, slots=2, context=CONTEXT)
    shared.attach(1)
    ours, theirs = CONTEXT.Pipe()
    other = CONTEXT.Process(target=hold_memory, args=(shared, 0, reserved, theirs, waiting_for))
    other.start()
    theirs.close()
    try:
        assert ours.poll(WAIT) and ours.recv() == "holding"
        yield shared, other, ours
    finally:
        other.kill()
        other.join(WAIT)


def test_a_render_waits_for_memory_another_process_holds_and_starts_once_that_is_released() -> None:
    async def scenario(shared: SharedBounds, channel: Connection) -> None:
        memory = RenderMemory(1000 * MIB, together=192 * MIB, shared=shared)
        assert shared.memory_in_use_elsewhere() == 120 * MIB
        deadline = time.monotonic() + WAIT
        await memory.reserve(40 * MIB, deadline)  # 160 MiB over the server: fits
        waiting = asyncio.ensure_future(memory.reserve(40 * MIB, deadline))  # 200: over 192
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(asyncio.shield(waiting), REFUSED_AFTER)
        assert memory.in_use == 40 * MIB
        channel.send("done")  # the other process's render ends; it can't tell this one
        await asyncio.wait_for(waiting, WAIT)
        assert memory.in_use == 80 * MIB

    with memory_held_elsewhere(120 * MIB) as (shared, _, channel):
        asyncio.run(scenario(shared, channel))


def test_one_timer_looks_again_for_memory_however_many_renders_end_meanwhile() -> None:
    # A render of this process that ends grants at once; it must not also start a timer of its own that
    # looks every RECHECK_SECONDS for room another process may have freed: with one per release, twenty
    # releases made twenty such timers, each looking for as long as a render waited.
    async def scenario(shared: SharedBounds) -> None:
        memory = RenderMemory(1000 * MIB, together=192 * MIB, shared=shared)
        deadline = time.monotonic() + WAIT
        for _ in range(20):
            await memory.reserve(2 * MIB, deadline)  # 160 MiB over the server
        waiting = asyncio.ensure_future(memory.reserve(75 * MIB, deadline))  # still 195 once ours have ended
        await asyncio.sleep(0)  # one turn of the loop: the reservation is queued
        assert memory.waiting == 75 * MIB
        for _ in range(20):
            memory.release(2 * MIB)
        looks = 0
        look = shared.oldest_wait_elsewhere

        def counted() -> float:
            nonlocal looks
            looks += 1
            return look()

        shared.oldest_wait_elsewhere = counted  # type: ignore[method-assign]
        window = 20 * RECHECK_SECONDS
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(asyncio.shield(waiting), window)
        assert 0 < looks <= 2 * window / RECHECK_SECONDS, looks
        waiting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiting
        assert memory.in_use == 0 and memory.waiting == 0

    with memory_held_elsewhere(120 * MIB) as (shared, _, _):
        asyncio.run(scenario(shared))


@pytest.mark.parametrize(("held", "waited", "asked"), [
    # The budget is the server's: a process running nothing doesn't start a render on top of the others'.
    (190 * MIB, 0.0, 100 * MIB),
    # First come, first served across processes: one that fits (20 + 10) still waits behind a waiter
    # elsewhere that has waited OVERTAKEN_SECONDS.
    (20 * MIB, 2 * OVERTAKEN_SECONDS, 10 * MIB),
    # And one too large to overtake (over a quarter of the budget), however short that wait.
    (20 * MIB, 0.05, 60 * MIB),
], ids=["others-hold-the-budget", "another-waited-long", "too-large-to-overtake"])
def test_a_process_with_no_render_of_its_own_waits_while_another_goes_first(
        held: int, waited: float, asked: int) -> None:
    async def scenario(shared: SharedBounds, channel: Connection) -> None:
        memory = RenderMemory(1000 * MIB, together=192 * MIB, shared=shared)
        waiting = asyncio.ensure_future(memory.reserve(asked, time.monotonic() + WAIT))
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(asyncio.shield(waiting), REFUSED_AFTER)
        assert memory.in_use == 0
        channel.send("done")  # the other process's renders (and its waiter) are done; it can't tell this one
        await asyncio.wait_for(waiting, WAIT)
        assert memory.in_use == asked

    with memory_held_elsewhere(held, waiting_for=waited) as (shared, _, channel):
        asyncio.run(scenario(shared, channel))


def test_a_small_render_starts_past_a_render_that_has_just_begun_to_wait_elsewhere() -> None:
    async def scenario(shared: SharedBounds) -> None:
        memory = RenderMemory(1000 * MIB, together=192 * MIB, shared=shared)
        assert shared.waited_longer_elsewhere(time.monotonic())
        await asyncio.wait_for(memory.reserve(10 * MIB, time.monotonic() + WAIT), WAIT)  # 20 + 10: fits
        assert memory.in_use == 10 * MIB

    with memory_held_elsewhere(20 * MIB, waiting_for=0.05) as (shared, _, _):
        asyncio.run(scenario(shared))


def test_a_render_over_the_budget_starts_when_nothing_runs_anywhere() -> None:
    async def scenario(shared: SharedBounds) -> None:
        memory = RenderMemory(1000 * MIB, together=192 * MIB, shared=shared)
        await asyncio.wait_for(memory.reserve(300 * MIB, time.monotonic() + WAIT), WAIT)
        assert memory.in_use == 300 * MIB
        assert not shared.waited_longer_elsewhere(time.monotonic())

    with memory_held_elsewhere(0) as (shared, _, _):
        asyncio.run(scenario(shared))


def test_the_memory_a_killed_process_held_is_given_back_for_its_slot() -> None:
    with memory_held_elsewhere(150 * MIB, waiting_for=1.0) as (shared, other, _):
        other.kill()  # SIGKILL
        other.join(WAIT)
        assert shared.memory_in_use_elsewhere() == 150 * MIB  # nobody has said otherwise yet
        assert shared.waited_longer_elsewhere(time.monotonic())
        shared.give_back_for(0)
        assert shared.memory_in_use_elsewhere() == 0
        assert not shared.waited_longer_elsewhere(time.monotonic())
