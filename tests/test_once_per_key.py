"""proxy.tiers.once_per_key: one job per key, and the hit/miss each request counts.

Real locks in a temporary folder; the tier and the metrics are stand-ins that keep what they are told.
"""

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import pytest

from cache.disk_tier import DiskTier
from cache.key_lock import KeyLocks
from proxy.metrics.registry import Metrics
from proxy.tiers.once_per_key import Delivery, OncePerKey, Outcome


class Counted:
    """The two metrics a OncePerKey reports: cache results and joined waiters."""

    def __init__(self) -> None:
        self.results: list[str] = []
        self.joined = 0

    def cache_result(self, tier: str, result: str) -> None:
        assert tier == "t"
        self.results.append(result)

    def singleflight_joined(self, tier: str) -> None:
        assert tier == "t"
        self.joined += 1


def _once(tmp_path: Path) -> tuple[OncePerKey[str], Counted]:
    tier = SimpleNamespace(name="t", config=SimpleNamespace(path=tmp_path), report_error=lambda *_: None)
    counted = Counted()
    return OncePerKey(cast(DiskTier, tier), cast(Metrics, counted)), counted


async def _nothing() -> str | None:
    return None


def _no_timeout() -> str:
    raise AssertionError("the lock was free")


def test_one_job_for_concurrent_requests_a_miss_for_its_starter_and_a_hit_for_the_joiner(tmp_path: Path) -> None:
    async def run() -> None:
        once, counted = _once(tmp_path)
        jobs = 0

        async def make(deliver: Delivery[str]) -> None:
            nonlocal jobs
            jobs += 1
            await asyncio.sleep(0.01)
            deliver.set_result("made")

        deadline = asyncio.get_running_loop().time() + 10
        first, second = await asyncio.gather(*(once.get("k", _nothing, make, _no_timeout, 5, deadline)
                                               for _ in range(2)))
        assert jobs == 1
        assert (first.value, first.outcome) == ("made", Outcome.MADE)
        assert (second.value, second.outcome) == ("made", Outcome.JOINED)
        assert sorted(counted.results) == ["hit", "miss"]
        assert counted.joined == 1

    asyncio.run(run())


def test_an_entry_found_under_the_lock_is_a_hit_not_made_here(tmp_path: Path) -> None:
    async def run() -> None:
        once, counted = _once(tmp_path)

        async def found() -> str | None:
            return "made elsewhere"

        async def make(deliver: Delivery[str]) -> None:
            raise AssertionError("the entry was there")

        got = await once.get("k", found, make, _no_timeout, 5, asyncio.get_running_loop().time() + 10)
        assert (got.value, got.made_here, got.outcome) == ("made elsewhere", False, Outcome.MADE_ELSEWHERE)
        assert counted.results == ["hit"]

    asyncio.run(run())


def test_a_failed_job_fails_every_waiter_and_counts_its_starter_a_miss(tmp_path: Path) -> None:
    async def run() -> None:
        once, counted = _once(tmp_path)

        async def make(deliver: Delivery[str]) -> None:
            await asyncio.sleep(0.01)
            raise LookupError("the source is gone")

        deadline = asyncio.get_running_loop().time() + 10
        results = await asyncio.gather(*(once.get("k", _nothing, make, _no_timeout, 5, deadline) for _ in range(2)),
                                       return_exceptions=True)
        assert [type(result) for result in results] == [LookupError, LookupError]
        assert sorted(counted.results) == ["hit", "miss"]

    asyncio.run(run())


def test_fetch_leaves_the_count_to_the_caller_and_a_lock_held_too_long_takes_the_fallback(tmp_path: Path) -> None:
    async def run() -> None:
        once, counted = _once(tmp_path)
        other_process = KeyLocks(tmp_path / "locks", lambda *_: None)  # each hold opens the file: it contends

        async def make(deliver: Delivery[str]) -> None:
            raise AssertionError("the lock was never ours")

        async with other_process.hold("k", 1):
            got = await once.fetch("k", _nothing, make, lambda: "fallback", 0.02)
        assert (got.value, got.outcome) == ("fallback", Outcome.MADE)
        assert counted.results == []
        assert counted.joined == 0, "only a wait that ends holding the lock counts as joining"
        once.record(got.outcome)
        once.record(Outcome.STALE)
        assert counted.results == ["miss", "stale"]

    asyncio.run(run())


@pytest.mark.parametrize(("outcome", "result"), [(Outcome.FOUND, "hit"), (Outcome.JOINED, "hit"),
                                                 (Outcome.MADE, "miss"), (Outcome.MADE_ELSEWHERE, "hit"),
                                                 (Outcome.STALE, "stale")])
def test_each_outcome_counts_as(tmp_path: Path, outcome: Outcome, result: str) -> None:
    once, counted = _once(tmp_path)
    once.record(outcome)
    assert counted.results == [result]


def test_undelivered_holds_from_the_start_of_a_job_to_its_result_under_the_job_key(tmp_path: Path) -> None:
    async def run() -> None:
        tier = SimpleNamespace(name="t", config=SimpleNamespace(path=tmp_path), report_error=lambda *_: None)
        once = OncePerKey(cast(DiskTier, tier), cast(Metrics, Counted()), job_key=lambda key: f"1:{key}")
        started, deliver_now, finish = asyncio.Event(), asyncio.Event(), asyncio.Event()

        async def make(deliver: Delivery[str]) -> None:
            started.set()
            await deliver_now.wait()
            deliver.set_result("made")
            await finish.wait()  # committing, after its waiters have their result

        assert not once.undelivered("k")
        deadline = asyncio.get_running_loop().time() + 10
        got = asyncio.create_task(once.get("k", _nothing, make, _no_timeout, 5, deadline))
        await started.wait()
        assert once.undelivered("k") and not once.undelivered("other")
        deliver_now.set()
        assert (await got).value == "made"
        assert not once.undelivered("k"), "a job committing what it gave its waiters is not awaited"
        finish.set()

    asyncio.run(run())
