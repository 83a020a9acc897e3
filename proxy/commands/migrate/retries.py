"""Retries of one object's copy or check: bounded tries, exponential backoff with full jitter.

Only a provider's failures and timeouts are retried (a 5xx, a reset, a stall); "not found", "access
denied" or a bad name would fail the same way again. Full jitter (a delay drawn from zero to an
exponential ceiling, as in AWS's "Exponential Backoff And Jitter") keeps the jobs of a run, and runs
on several machines, from retrying in step after a shared outage.
"""

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from proxy.storage.errors import ProviderFailure, ProviderTimeout

log = logging.getLogger("proxy.commands.migrate")
T = TypeVar("T")
RETRYABLE = (ProviderFailure, ProviderTimeout)
BACKOFF_FIRST = 0.5  # seconds: the ceiling of the first delay, doubled at each try
BACKOFF_CAP = 30.0


async def with_retries(attempt: Callable[[], Awaitable[T]], retries: int, what: str) -> T:
    """Await a fresh `attempt()` until it succeeds, retrying a provider error at most `retries` times."""
    for number in range(retries + 1):
        try:
            return await attempt()
        except RETRYABLE as error:
            if number == retries:
                log.warning("migrate: %s: %s; no try left", what, error.reason)
                raise
            delay = random.uniform(0, min(BACKOFF_CAP, BACKOFF_FIRST * 2 ** number))
            log.warning("migrate: %s: %s; try %d of %d in %.1f s", what, error.reason, number + 2, retries + 1, delay)
            await asyncio.sleep(delay)
    raise AssertionError("unreachable: the last try returns or raises")
