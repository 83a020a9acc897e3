"""proxy/storage/breaker.py's state machine, on a clock the test moves (the integration test in
tests/test_upstream_faults.py runs it against moto through the TCP proxy)."""

import asyncio

import pytest

from proxy.storage.breaker import CircuitBreaker, CircuitState
from proxy.storage.errors import CircuitOpen, ObjectNotFound, ProviderAccessDenied, ProviderFailure, ProviderTimeout


class Recorder:
    """A BreakerObserver that keeps every change."""

    def __init__(self) -> None:
        self.changes: list[tuple[int, bool]] = []

    def circuit_changed(self, provider: str, state: int, opened: bool) -> None:
        self.changes.append((state, opened))


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def _raise(error: Exception) -> None:
    raise error


async def _ok() -> str:
    return "ok"


def _run(breaker: CircuitBreaker, outcome: Exception | None) -> str:
    """One call through the breaker: 'ok', the error's class name, or 'open' when short-circuited."""
    async def call() -> str:
        try:
            return await breaker.call(_ok() if outcome is None else _raise(outcome))
        except CircuitOpen:
            return "open"
        except Exception as error:
            return type(error).__name__
    return asyncio.run(call())


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_opens_after_n_failures_in_a_row_then_one_probe_closes_it(clock: Clock) -> None:
    recorder = Recorder()
    breaker = CircuitBreaker("s3", failures=3, cooldown=10.0, observer=recorder, clock=clock)

    assert [_run(breaker, ProviderFailure()) for _ in range(2)] == ["ProviderFailure"] * 2
    assert _run(breaker, None) == "ok"  # a success resets the count
    assert [_run(breaker, ProviderTimeout()) for _ in range(3)] == ["ProviderTimeout"] * 3
    assert breaker.state is CircuitState.OPEN
    assert _run(breaker, None) == "open"  # not even a healthy provider is asked during the cool-down
    clock.now += 9.9
    assert _run(breaker, None) == "open"
    clock.now += 0.1
    assert _run(breaker, None) == "ok"  # the probe
    assert breaker.state is CircuitState.CLOSED
    assert recorder.changes == [(0, False), (1, True), (2, False), (0, False)]


def test_a_failed_probe_opens_it_for_another_cool_down(clock: Clock) -> None:
    breaker = CircuitBreaker("s3", failures=1, cooldown=5.0, observer=Recorder(), clock=clock)
    assert _run(breaker, ProviderFailure()) == "ProviderFailure"
    clock.now += 5.0
    assert _run(breaker, ProviderFailure()) == "ProviderFailure"
    assert breaker.state is CircuitState.OPEN
    clock.now += 4.9
    assert _run(breaker, None) == "open"
    clock.now += 0.1
    assert _run(breaker, None) == "ok"


def test_only_one_probe_at_a_time(clock: Clock) -> None:
    breaker = CircuitBreaker("s3", failures=1, cooldown=1.0, observer=Recorder(), clock=clock)
    assert _run(breaker, ProviderFailure()) == "ProviderFailure"
    clock.now += 1.0

    async def scenario() -> list[str]:
        admitted, release = asyncio.Event(), asyncio.Event()

        async def slow_probe() -> str:
            admitted.set()
            await release.wait()
            return "probe ok"

        probe = asyncio.ensure_future(breaker.call(slow_probe()))
        await admitted.wait()
        others = []
        for _ in range(3):
            try:
                await breaker.call(_ok())
                others.append("ok")
            except CircuitOpen:
                others.append("open")
        release.set()
        return [*others, await probe]

    assert asyncio.run(scenario()) == ["open", "open", "open", "probe ok"]
    assert breaker.state is CircuitState.CLOSED


@pytest.mark.parametrize("answer", [ObjectNotFound(), ProviderAccessDenied()])
def test_answers_are_not_failures(clock: Clock, answer: Exception) -> None:
    breaker = CircuitBreaker("s3", failures=2, cooldown=1.0, observer=Recorder(), clock=clock)
    for _ in range(5):
        assert _run(breaker, answer) == type(answer).__name__
    assert breaker.state is CircuitState.CLOSED


def test_zero_failures_switches_it_off(clock: Clock) -> None:
    breaker = CircuitBreaker("s3", failures=0, cooldown=1.0, observer=Recorder(), clock=clock)
    assert [_run(breaker, ProviderFailure()) for _ in range(10)] == ["ProviderFailure"] * 10
    assert _run(breaker, None) == "ok"
