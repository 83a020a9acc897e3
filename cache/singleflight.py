"""At most one fill per key: the first caller starts it, the rest join it until it is done."""

import asyncio
from collections.abc import Awaitable, Callable
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

    def peek(self, key: K) -> V | None:
        """The work in flight for `key`, if any, without joining it (nothing is reported)."""
        return self._inflight.get(key)

    def claim(self, key: K, work: V) -> None:
        """Register `work` as the one fill for `key`. The owner must `release` it when done."""
        if key in self._inflight:
            raise RuntimeError(f"{key!r} already has a fill in flight")
        self._inflight[key] = work

    def release(self, key: K) -> None:
        """Forget the fill for `key`; the next caller starts a new one."""
        self._inflight.pop(key, None)


# At shutdown, how long work that has answered its waiters may go on committing (a render's store is a
# file write and one SQLite transaction: well under a second, unless the disk is badly overloaded).
COMMIT_GRACE_SECONDS = 5.0


class DetachedFlights(Generic[K, V]):
    """One detached task per key, whose result every caller for that key awaits.

    The task is not owned by the request that started it: a client that goes away can't cancel work
    others wait for. The work resolves the future itself, as early as it can (a fill resolves when
    its first bytes can be tailed, a render when its image is ready), and may go on afterwards
    (committing to a cache); the key is free again once the work has ended.
    """

    def __init__(self, on_join: Callable[[], None] = lambda: None,
                 stopped: Callable[[], Exception] = lambda: RuntimeError("the work was stopped before it finished"),
                 ) -> None:
        self._flights: SingleFlight[K, asyncio.Future[V]] = SingleFlight(on_join)
        self._tasks: dict[asyncio.Task[None], asyncio.Future[V]] = {}
        self._stopped = stopped

    def join_or_start(self, key: K, work: Callable[["asyncio.Future[V]"], Awaitable[None]]
                      ) -> tuple["asyncio.Future[V]", bool]:
        """The future for `key` and whether this call started its work."""
        pending = self._flights.get(key)
        if pending is not None:
            return pending, False
        pending = asyncio.get_running_loop().create_future()
        # Nobody may be left awaiting it (every client gone): mark its exception as seen.
        pending.add_done_callback(lambda done: done.cancelled() or done.exception())
        self._flights.claim(key, pending)
        task = asyncio.create_task(self._run(key, work, pending))
        self._tasks[task] = pending
        task.add_done_callback(lambda done: self._tasks.pop(done, None))
        return pending, True

    async def _run(self, key: K, work: Callable[["asyncio.Future[V]"], Awaitable[None]],
                   pending: "asyncio.Future[V]") -> None:
        try:
            await work(pending)
        except Exception as error:
            if not pending.done():
                pending.set_exception(error)
        finally:
            self._flights.release(key)
            if not pending.done():  # cancelled at shutdown: waiters get an error, not a cancellation
                pending.set_exception(self._stopped())

    def undelivered(self, key: K) -> bool:
        """Whether work for `key` runs and has not yet given its result (a caller now would wait for it)."""
        pending = self._flights.peek(key)
        return pending is not None and not pending.done()

    @property
    def busy(self) -> bool:
        """True while any work runs."""
        return bool(self._tasks)

    async def close(self, grace: float = COMMIT_GRACE_SECONDS) -> None:
        """Cancel the work still running (at shutdown). Work whose waiters already have their result is
        only committing it (a render being stored): it gets `grace` seconds to finish first, since the
        client was answered as if the entry would be kept."""
        committing = [task for task, pending in self._tasks.items() if pending.done()]
        for task, pending in list(self._tasks.items()):
            if not pending.done():
                task.cancel()
        if committing:
            await asyncio.wait(committing, timeout=grace)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
