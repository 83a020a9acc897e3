"""proxy.render.memory: the order renders start in when they wait for memory (one process).

First come, first served, except that a small render which fits beside those running may start past
an older, larger one that doesn't, until that one has waited OVERTAKEN_SECONDS. A render's later trip
(its whole render after a header read) comes in the place its job took when it first asked.
"""

import asyncio
import time

import pytest

import proxy.render.memory as memory_module
from proxy.render.memory import MIB, RenderMemory

WAIT = 10.0
TOGETHER = 160 * MIB


async def queued(memory: RenderMemory, size: int) -> "asyncio.Future[None]":
    """A reservation of `size` that could not start at once, waiting (asserted)."""
    before = memory.waiting
    waiting = asyncio.ensure_future(memory.reserve(size, time.monotonic() + WAIT))
    await asyncio.sleep(0)  # one turn of the loop: the reservation has started at once or is queued
    assert not waiting.done() and memory.waiting == before + size
    return waiting


def test_a_small_render_starts_past_a_large_one_that_waits_for_room() -> None:
    async def scenario() -> None:
        memory = RenderMemory(1000 * MIB, together=TOGETHER)
        await memory.reserve(120 * MIB, time.monotonic() + WAIT)  # a 16 MP progressive photo's render
        large = await queued(memory, 115 * MIB)  # another one
        await asyncio.wait_for(memory.reserve(30 * MIB, time.monotonic() + WAIT), WAIT)  # fits beside: starts
        third = await queued(memory, 15 * MIB)  # 165 MiB: doesn't fit, waits
        assert memory.in_use == 150 * MIB
        memory.release(120 * MIB)  # the first ends: the large one, then the third, fit beside the 30
        await asyncio.wait_for(asyncio.gather(large, third), WAIT)
        assert memory.in_use == 160 * MIB and memory.waiting == 0

    asyncio.run(scenario())


@pytest.mark.parametrize("size", [60 * MIB, 20 * MIB], ids=["too-large-to-overtake", "after-the-time"])
def test_no_render_starts_past_one_waiting_when_it_is_large_or_that_one_has_waited_long(
        size: int, monkeypatch: pytest.MonkeyPatch) -> None:
    if size <= TOGETHER // memory_module.OVERTAKER_SHARE:
        monkeypatch.setattr(memory_module, "OVERTAKEN_SECONDS", 0.0)  # the oldest has waited long enough

    async def scenario() -> None:
        memory = RenderMemory(1000 * MIB, together=TOGETHER)
        await memory.reserve(80 * MIB, time.monotonic() + WAIT)
        large = await queued(memory, 100 * MIB)
        later = await queued(memory, size)  # would fit beside the 80 MiB, but waits its turn
        assert memory.in_use == 80 * MIB
        memory.release(80 * MIB)
        await asyncio.wait_for(asyncio.gather(large, later), WAIT)
        assert memory.in_use == 100 * MIB + size

    asyncio.run(scenario())


def test_a_later_trip_waits_for_memory_in_the_place_its_job_took_when_it_first_asked() -> None:
    async def scenario() -> None:
        memory = RenderMemory(1000 * MIB, together=TOGETHER)
        asked = time.monotonic()  # the job read its header while the others came
        await memory.reserve(100 * MIB, time.monotonic() + WAIT)
        newer = await queued(memory, 100 * MIB)
        later_trip = asyncio.ensure_future(memory.reserve(100 * MIB, time.monotonic() + WAIT, since=asked))
        await asyncio.sleep(0)
        assert not later_trip.done() and memory.waiting == 200 * MIB
        memory.release(100 * MIB)  # room for one of them: the job that asked first
        await asyncio.wait_for(later_trip, WAIT)
        assert not newer.done() and memory.in_use == 100 * MIB
        memory.release(100 * MIB)
        await asyncio.wait_for(newer, WAIT)

    asyncio.run(scenario())
