"""cache/singleflight.py: one job per key in a process (SingleFlight), and the detached work every caller
of a key awaits (DetachedFlights), its errors and its shutdown.

Each test drives its own event loop, bounded in time (tests.support.event_loops).
"""

import asyncio
import time

import pytest

from cache.singleflight import DetachedFlights, SingleFlight
from tests.support.event_loops import run_bounded as run

# --- SingleFlight ------------------------------------------------------------------------------


def test_singleflight_claim_get_release() -> None:
    joins: list[None] = []
    flights: SingleFlight[str, object] = SingleFlight(on_join=lambda: joins.append(None))
    work = object()
    assert flights.get("k") is None
    flights.claim("k", work)
    assert flights.get("k") is work
    assert flights.get("k") is work
    assert flights.get("other") is None
    assert len(joins) == 2  # only lookups that found work count as joins
    flights.release("k")
    assert flights.get("k") is None
    assert len(joins) == 2


def test_singleflight_claim_twice_raises() -> None:
    flights: SingleFlight[str, object] = SingleFlight()
    first = object()
    flights.claim("k", first)
    with pytest.raises(RuntimeError, match="k"):
        flights.claim("k", object())
    assert flights.get("k") is first


def test_singleflight_reclaim_after_release() -> None:
    flights: SingleFlight[str, object] = SingleFlight()
    flights.claim("k", object())
    flights.release("k")
    flights.release("k")  # releasing twice is harmless
    second = object()
    flights.claim("k", second)
    assert flights.get("k") is second


# --- DetachedFlights ---------------------------------------------------------------------------


def test_detached_flights_run_once_per_key_and_free_the_key_after() -> None:
    async def scenario() -> None:
        joins: list[None] = []
        flights: DetachedFlights[str, int] = DetachedFlights(on_join=lambda: joins.append(None))
        gate = asyncio.Event()
        runs: list[str] = []

        async def work(future: asyncio.Future[int]) -> None:
            runs.append("ran")
            await gate.wait()
            future.set_result(len(runs))

        callers = [flights.join_or_start("k", work) for _ in range(5)]
        assert [started for _, started in callers] == [True, False, False, False, False]
        assert len({id(future) for future, _ in callers}) == 1
        gate.set()
        assert await callers[0][0] == 1
        assert len(joins) == 4
        await asyncio.gather(*flights._tasks)  # the work has ended: the key is free again
        again, started = flights.join_or_start("k", work)
        assert started and await again == 2

    run(scenario())


def test_detached_flights_pass_errors_to_waiters_and_survive_a_leaving_caller() -> None:
    async def scenario() -> None:
        flights: DetachedFlights[str, int] = DetachedFlights()
        gate = asyncio.Event()

        async def failing(future: asyncio.Future[int]) -> None:
            await gate.wait()
            raise ValueError("origin broke")

        first, _ = flights.join_or_start("k", failing)
        leaving = asyncio.ensure_future(asyncio.shield(first))
        leaving.cancel()  # a client that goes away doesn't cancel the work
        second, started = flights.join_or_start("k", failing)
        assert second is first and not started
        gate.set()
        with pytest.raises(ValueError, match="origin broke"):
            await second

    run(scenario())


def test_detached_flights_close_fails_waiters_instead_of_cancelling_them() -> None:
    async def scenario() -> None:
        flights: DetachedFlights[str, int] = DetachedFlights()

        async def endless(future: asyncio.Future[int]) -> None:
            await asyncio.Event().wait()

        pending, _ = flights.join_or_start("k", endless)
        await asyncio.sleep(0)  # let the task start (a scheduling step, not a wait for time)
        await flights.close()
        with pytest.raises(RuntimeError, match="stopped"):
            await pending

        # The owner names the error (the server passes its 503 ShuttingDown).
        draining: DetachedFlights[str, int] = DetachedFlights(stopped=lambda: LookupError("draining"))
        waiting, _ = draining.join_or_start("k", endless)
        await asyncio.sleep(0)
        await draining.close()
        with pytest.raises(LookupError, match="draining"):
            await waiting

    run(scenario())


def test_detached_flights_close_lets_answered_work_commit_and_bounds_the_wait() -> None:
    """At shutdown, work whose waiters already have their result (a render being stored) finishes its
    commit; work still making its result is cancelled at once; a commit that hangs is cut at the grace."""
    async def scenario() -> None:
        flights: DetachedFlights[str, int] = DetachedFlights()
        committed: list[str] = []
        commit_gate, making_started = asyncio.Event(), asyncio.Event()

        async def answers_then_commits(future: asyncio.Future[int]) -> None:
            future.set_result(1)
            await commit_gate.wait()
            committed.append("stored")

        async def still_making(future: asyncio.Future[int]) -> None:
            making_started.set()
            await asyncio.Event().wait()

        answered, _ = flights.join_or_start("a", answers_then_commits)
        making, _ = flights.join_or_start("b", still_making)
        assert await answered == 1
        await making_started.wait()
        closing = asyncio.ensure_future(flights.close(grace=30.0))
        await asyncio.sleep(0)  # one scheduling step: close has cancelled what was still making
        with pytest.raises(RuntimeError, match="stopped"):
            await making
        assert not closing.done() and committed == []  # the commit is still allowed to run
        commit_gate.set()
        await asyncio.wait_for(closing, 10)
        assert committed == ["stored"]

        hanging: DetachedFlights[str, int] = DetachedFlights()
        forever, _ = hanging.join_or_start("c", lambda future: _answer_then_hang(future))
        assert await forever == 2
        started = time.monotonic()
        await asyncio.wait_for(hanging.close(grace=0.2), 10)
        assert time.monotonic() - started < 5 and not hanging.busy

    run(scenario())


async def _answer_then_hang(future: asyncio.Future[int]) -> None:
    future.set_result(2)
    await asyncio.Event().wait()
