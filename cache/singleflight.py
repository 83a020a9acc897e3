"""At most one fill per key: the first caller starts it, the rest join it until it is done."""

from collections.abc import Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class SingleFlight(Generic[K, V]):
    """A table of in-flight work by key. Not thread-safe: use it from the event loop only."""

    def __init__(self, on_join: Callable[[], None] = lambda: None) -> None:
        self._inflight: dict[K, V] = {}
        self._on_join = on_join

    def get(self, key: K) -> V | None:
        """The work in flight for `key`, if any; joining it is reported to `on_join`."""
        found = self._inflight.get(key)
        if found is not None:
            self._on_join()
        return found

    def claim(self, key: K, work: V) -> None:
        """Register `work` as the one fill for `key`. The owner must `release` it when done."""
        if key in self._inflight:
            raise RuntimeError(f"{key!r} already has a fill in flight")
        self._inflight[key] = work

    def release(self, key: K) -> None:
        """Forget the fill for `key`; the next caller starts a new one."""
        self._inflight.pop(key, None)
