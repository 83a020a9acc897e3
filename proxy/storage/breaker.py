"""A circuit breaker per provider, so a provider that keeps failing is not hammered.

Closed: calls go through; `failures` failures in a row (5xx, broken connections, timeouts) open it.
Open: calls fail at once with CircuitOpen (a 502, or a stale copy where one is kept) for `cooldown`
seconds. Then half-open: exactly one call goes through as a probe; its success closes the circuit,
its failure opens it for another cool-down. "Not found", "not modified" and "access denied" are
answers, not failures: a bucket the credentials can't read must not cut off the others.
"""

import asyncio
import time
from collections.abc import AsyncIterable, Awaitable, Callable
from enum import Enum
from typing import Protocol, TypeVar

from proxy.storage.errors import CircuitOpen, ProviderFailure, ProviderTimeout
from proxy.storage.provider import ByteSpan, NotModified, ObjectInfo, ObjectRef, ObjectStream, StorageProvider
from proxy.storage.writes import WritePlan, WriteResult

T = TypeVar("T")


class CircuitState(Enum):
    """The breaker's states, valued as the state gauge shows them."""

    CLOSED = 0
    OPEN = 1
    HALF_OPEN = 2


class BreakerObserver(Protocol):
    """Where state changes go (Metrics)."""

    def circuit_changed(self, provider: str, state: int, opened: bool) -> None:
        """The breaker of `provider` is now in `state`; `opened` when this change opened it."""
        ...


class CircuitBreaker:
    """The state machine; every method runs on the event loop, so no lock is needed."""

    def __init__(self, label: str, failures: int, cooldown: float, observer: BreakerObserver,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.label = label
        self.state = CircuitState.CLOSED
        self._threshold = failures
        self._cooldown = cooldown
        self._observer = observer
        self._clock = clock
        self._failures = 0
        self._opened_at = 0.0
        self._probing = False
        observer.circuit_changed(label, CircuitState.CLOSED.value, opened=False)

    async def call(self, awaitable: Awaitable[T]) -> T:
        """Await one provider call through the breaker (closing the awaitable unawaited if it is open)."""
        try:
            self._admit()
        except CircuitOpen:
            getattr(awaitable, "close", lambda: None)()
            raise
        probe = self.state is CircuitState.HALF_OPEN
        decided = False
        try:
            result = await awaitable
            decided = True
            self._success()
            return result
        except (ProviderTimeout, ProviderFailure):
            decided = True
            self._failure()
            raise
        except asyncio.CancelledError:
            raise  # the client went away: this says nothing about the provider
        except Exception:
            decided = True  # an answer (not found, denied): the provider is up
            self._success()
            raise
        finally:
            if probe and not decided:
                self._probing = False  # cancelled: let the next request probe instead

    def _admit(self) -> None:
        if self._threshold <= 0 or self.state is CircuitState.CLOSED:
            return
        if self.state is CircuitState.OPEN and self._clock() - self._opened_at >= self._cooldown:
            self._set(CircuitState.HALF_OPEN)
        if self.state is CircuitState.HALF_OPEN and not self._probing:
            self._probing = True
            return
        raise CircuitOpen()

    def _success(self) -> None:
        self._failures = 0
        self._probing = False
        if self.state is not CircuitState.CLOSED:
            self._set(CircuitState.CLOSED)

    def _failure(self) -> None:
        self._failures += 1
        self._probing = False
        if self._threshold > 0 and (self.state is CircuitState.HALF_OPEN or self._failures >= self._threshold):
            self._opened_at = self._clock()
            self._set(CircuitState.OPEN)

    def _set(self, state: CircuitState) -> None:
        self.state = state
        self._observer.circuit_changed(self.label, state.value, opened=state is CircuitState.OPEN)


class BreakerProvider:
    """A provider whose calls (up to the response headers) go through a CircuitBreaker."""

    def __init__(self, inner: StorageProvider, breaker: CircuitBreaker) -> None:
        self.inner = inner
        self.breaker = breaker
        self.provider_id = inner.provider_id

    async def head(self, ref: ObjectRef) -> ObjectInfo:
        """See StorageProvider.head."""
        return await self.breaker.call(self.inner.head(ref))

    async def get(
        self, ref: ObjectRef, span: ByteSpan | None = None, if_none_match: str | None = None
    ) -> ObjectStream | NotModified:
        """See StorageProvider.get."""
        return await self.breaker.call(self.inner.get(ref, span, if_none_match))

    async def put(self, ref: ObjectRef, chunks: AsyncIterable[bytes], content_type: str) -> None:
        """See StorageProvider.put."""
        await self.breaker.call(self.inner.put(ref, chunks, content_type))

    async def write(self, ref: ObjectRef, chunks: AsyncIterable[bytes], plan: WritePlan) -> WriteResult:
        """See StorageProvider.write; a client's fault (a bad checksum, a body cut off) is no provider failure."""
        return await self.breaker.call(self.inner.write(ref, chunks, plan))

    async def check(self) -> None:
        """Readiness asks the provider itself: an open circuit must not hide a recovery."""
        await self.inner.check()

    async def close(self) -> None:
        """See StorageProvider.close."""
        await self.inner.close()
