"""One job per key, within a process and across the processes that share a tier, and how it counts.

Every tier (originals, previews, conversions) makes a missing entry the same way: the first request
for a key in this process starts a detached job (cache.singleflight) and the others join it; the job
takes the key's tier lock (cache.key_lock), so one process at a time does the work; under the lock
it looks for the entry again (another process may have made it since our miss), and makes it only
if it is still absent. The hit/miss label of each outcome is decided here, in CACHE_RESULT, as with
nginx's proxy_cache_lock: only the request that made the entry missed; a request that joined a job,
or whose job found the entry made by another process, was served from the cache.

What stays different, and why:
- Previews and conversions wait, up to their deadline, for a finished result, and `get` counts as it
  goes: a joiner at once, the starter when its wait ends (a miss if the job failed or timed out).
- Originals don't wait for a finished entry: the job hands over a fill to tail as soon as its first
  bytes can be, and what the caller sees decides the outcome (an entry committed by another process
  but evicted at once, or a fill that had already failed, sends it to the provider: a miss). So
  originals `fetch` the job's result and `record` the outcome themselves; a failure counts nothing.
- What happens when another process holds the lock too long is the tier's: a render gives up, a
  fill streams from the provider instead (`on_lock_timeout`).
"""

import asyncio
import enum
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from cache.disk_tier import DiskTier
from cache.errors import LockTimeout
from cache.key_lock import tier_lock
from cache.singleflight import DetachedFlights
from proxy.errors import ShuttingDown
from proxy.metrics.registry import Metrics

V = TypeVar("V")


class Outcome(enum.Enum):
    """How a request got its entry."""

    FOUND = "found"  # in the tier, before any job
    JOINED = "joined"  # from the job another request of this process started
    MADE = "made"  # this request started the job, and the job made it (or went to the source)
    MADE_ELSEWHERE = "made elsewhere"  # this request started the job, which found another process's entry
    STALE = "stale"  # an old copy, served because the source failed


# The one table from an outcome to the cache-result metric.
CACHE_RESULT = {
    Outcome.FOUND: "hit",
    Outcome.JOINED: "hit",
    Outcome.MADE: "miss",
    Outcome.MADE_ELSEWHERE: "hit",
    Outcome.STALE: "stale",
}


class Delivery(Generic[V]):
    """How a job hands its result to every waiter, as early as it can; it may go on afterwards."""

    def __init__(self, pending: "asyncio.Future[tuple[V, bool]]") -> None:
        self._pending = pending

    def set_result(self, value: V) -> None:
        """Give every waiter `value`, made by this process."""
        self._pending.set_result((value, True))

    def done(self) -> bool:
        """True once the waiters have their result (or error)."""
        return self._pending.done()


@dataclass(frozen=True)
class Got(Generic[V]):
    """A job's result for one request: the value, whether this request started the job, and
    whether the job made the value in this process (False: it found another process's entry)."""

    value: V
    started: bool
    made_here: bool

    @property
    def outcome(self) -> Outcome:
        """The request's outcome (see CACHE_RESULT)."""
        if not self.started:
            return Outcome.JOINED
        return Outcome.MADE if self.made_here else Outcome.MADE_ELSEWHERE


Look = Callable[[], Awaitable[V | None]]
Make = Callable[[Delivery[V]], Awaitable[None]]


class OncePerKey(Generic[V]):
    """The jobs of one tier, one per key at a time among all the processes that share the tier."""

    def __init__(self, tier: DiskTier, metrics: Metrics, label: str | None = None,
                 job_key: Callable[[str], str] | None = None) -> None:
        self._tier = tier
        # The name of a key's job and lock: the key itself, or the key under the purge generation
        # (proxy.tiers.purge_guard), so that no request after a purge joins a job started before it.
        self._job_key = job_key or (lambda key: key)
        self._metrics = metrics
        self._label = label or tier.name  # the tier's name in metrics
        self._jobs: DetachedFlights[str, tuple[V, bool]] = DetachedFlights(
            on_join=lambda: metrics.singleflight_joined(self._label), stopped=ShuttingDown)

    def record(self, outcome: Outcome) -> None:
        """Count `outcome` in the cache-result metric."""
        self._metrics.cache_result(self._label, CACHE_RESULT[outcome])

    async def get(self, key: str, look: Look[V], make: Make[V], on_lock_timeout: Callable[[], V],
                  lock_wait: float, deadline: float) -> Got[V]:
        """Join or start the job for `key` and wait for its result until `deadline` (time.monotonic()).

        Counts as it goes: a joiner at once, the starter when its wait ends, a miss if it failed.
        A wait past the deadline raises TimeoutError (the job goes on for the others).
        """
        pending, started = self._join_or_start(key, look, make, on_lock_timeout, lock_wait)
        if not started:
            self.record(Outcome.JOINED)
        made_here = True
        try:
            # Shielded: a client that goes away must not cancel a job that others wait for.
            value, made_here = await asyncio.wait_for(asyncio.shield(pending),
                                                      max(0.0, deadline - time.monotonic()))
        finally:
            if started:
                self.record(Outcome.MADE if made_here else Outcome.MADE_ELSEWHERE)
        return Got(value, started, made_here)

    async def fetch(self, key: str, look: Look[V], make: Make[V], on_lock_timeout: Callable[[], V],
                    lock_wait: float) -> Got[V]:
        """Join or start the job for `key` and wait for its result, counting nothing: the caller
        `record`s the outcome once it knows what it serves."""
        pending, started = self._join_or_start(key, look, make, on_lock_timeout, lock_wait)
        # Shielded: a client that goes away must not cancel a job that others wait for.
        value, made_here = await asyncio.shield(pending)
        return Got(value, started, made_here)

    def _join_or_start(self, key: str, look: Look[V], make: Make[V], on_lock_timeout: Callable[[], V],
                       lock_wait: float) -> tuple["asyncio.Future[tuple[V, bool]]", bool]:
        job = self._job_key(key)
        return self._jobs.join_or_start(
            job, lambda pending: self._lead(job, look, make, on_lock_timeout, lock_wait, pending))

    async def _lead(self, job: str, look: Look[V], make: Make[V], on_lock_timeout: Callable[[], V],
                    lock_wait: float, pending: "asyncio.Future[tuple[V, bool]]") -> None:
        """The one job named `job` among all the processes that share the tier (see cache.key_lock)."""
        try:
            async with tier_lock(self._tier, job, lock_wait) as waited:
                if waited:
                    self._metrics.singleflight_joined(self._label)
                # Look again under the lock: another process may have made it since our miss.
                found = await look()
                if found is not None:
                    pending.set_result((found, False))
                    return
                await make(Delivery(pending))
                return
        except LockTimeout:
            pass
        # Outside the except block, so an error raised here doesn't carry the LockTimeout along.
        value = on_lock_timeout()
        if not pending.done():
            pending.set_result((value, True))

    def undelivered(self, key: str) -> bool:
        """Whether this process runs the job for `key` and its result is still to come (a `get` now would
        wait for it). Once delivered, the job may still be committing: the entry is then looked up."""
        return self._jobs.undelivered(self._job_key(key))

    @property
    def busy(self) -> bool:
        """True while any job runs."""
        return self._jobs.busy

    async def close(self) -> None:
        """Cancel the jobs still running (at shutdown)."""
        await self._jobs.close()
