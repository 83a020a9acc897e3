"""A budget of bytes for the renders of the server: a render starts only when its estimated peak fits.

Worker threads alone don't bound memory: one render of a 50 MP source holds hundreds of megabytes,
and a few at once can drive the process out of memory. Each render's peak is estimated from the
header before any decode (previews.limits.render_plan); here it waits, first come first served, until
the renders running leave room for it, or, if it is small, beside the renders that run (see below).

Two bounds. Renders run together while their estimates add up to `together` (RENDER_MEMORY_CONCURRENT),
counted over every worker process of the server (proxy.render.shared_bounds): that is what the
renders hold at their peak, and where big decodes (a progressive JPEG's coefficients at full
resolution) would otherwise stack. A render that doesn't fit waits in its process's queue; renders
start in the order their jobs first asked the render pool (a render's header was read on an earlier
trip, which came first), across the processes too (each process shows since when its oldest has
waited), so a busy process can't keep another's render waiting for ever. A small render
(a quarter of `together` at most) that fits beside the renders running may start past older ones that
don't, unless the oldest has waited OVERTAKEN_SECONDS: that bounds how long the small ones can keep a
large one waiting. One over `together` starts when no render runs anywhere in the server, and runs alone. `limit`
(RENDER_MEMORY_LIMIT, per process) is the hard one: a render whose estimate alone is over it is
refused (422), and when a whole limit's worth of renders is already waiting, the next is turned away
(429). Renders of other processes end without telling this one, so while renders wait for room that
others hold, the queue looks again every RECHECK_SECONDS.

Before a big render (over half of `together`, `is_big`) starts in a process, what earlier renders
freed there goes back to the system (proxy.render.heap), so that its peak doesn't come on top of their
leftovers: on the render's own thread, just before its decode (proxy.render.file_jobs), not here on
the event loop; and not at all in a worker whose big render runs in the render host.
"""

import asyncio
import collections
import os
import time
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from proxy.errors import RenderMemoryExceeded, RenderMemoryTimeout, TooManyRequests
from proxy.render.shared_bounds import SharedBounds

MIB = 1024 * 1024
# A share of the machine's memory for each worker process's renders: the rest is the interpreter,
# the in-memory caches, the page cache that serves hits, and other processes.
MACHINE_SHARE = 4
# What the renders of the server hold together by default: a 16 MP progressive photo (about 110 MiB)
# beside the large render of another core (a 20 MP baseline JPEG at 1024 px, 30 MiB), or three
# typical photo renders (a 4 MP progressive source at 1024 px, about 45 MiB). Thumbnails reserve
# nothing (proxy.render.file_jobs), and a 2-core server runs two large renders at once anyway.
DEFAULT_TOGETHER = 160 * MIB
RECHECK_SECONDS = 0.005
# A render at most this share of `together` may start past older ones that don't fit yet (a 16 MP
# progressive photo's 110 MiB waiting for another's), as long as it fits beside what runs and the oldest
# has waited less than OVERTAKEN_SECONDS. Without it, renders that fit queued behind the one that
# doesn't, in every process, for as long as the large render before it ran.
OVERTAKER_SHARE = 4
OVERTAKEN_SECONDS = 1.0


class _Queued(Protocol):
    since: float  # when the job first asked


_QueuedT = TypeVar("_QueuedT", bound=_Queued)


def insert_in_order(queue: collections.deque[_QueuedT], item: _QueuedT) -> None:
    """Put `item` behind those that have waited since longer (at the end, unless it is a later trip)."""
    at = len(queue)
    while at and queue[at - 1].since > item.since:
        at -= 1
    queue.insert(at, item)


def default_memory_limit(processes: int) -> int:
    """Physical memory / 4, shared among the worker processes."""
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return max(64 * MIB, physical // MACHINE_SHARE // max(1, processes))


@dataclass(eq=False)
class _Waiter:
    size: int
    since: float = field(default_factory=time.monotonic)
    granted: "asyncio.Future[None]" = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class RenderMemory:
    """Reserve an estimate before the work starts; release it when the work's thread is done."""

    def __init__(self, limit: int, together: int | None = None, shared: SharedBounds | None = None) -> None:
        self.limit = limit
        self.together = together if together is not None else limit
        self.in_use = 0  # by this process's renders
        self._shared = shared  # None: this process's renders are the server's
        self._waiters: collections.deque[_Waiter] = collections.deque()
        self._waiting_bytes = 0
        self._recheck: asyncio.TimerHandle | None = None

    async def reserve(self, size: int, deadline: float, since: float | None = None) -> None:
        """Wait until `size` bytes fit, in order of `since` (when the render first asked; default: now);
        see the module's docstring for the refusals."""
        since = since if since is not None else time.monotonic()
        if size > self.limit:
            raise RenderMemoryExceeded(f"the render needs an estimated {size / MIB:.0f} MiB, over "
                                       f"RENDER_MEMORY_LIMIT={self.limit / MIB:.0f} MiB")
        overtakes = not self._waiters or self._waiters[0].since > since or self._may_overtake(
            size, self._waiters[0].since)
        if overtakes and self._fits(size, since):
            self._add(size)
            return
        if self._waiting_bytes + size > self.limit:
            raise TooManyRequests("too many large renders waiting for memory, try again shortly")
        waiter = _Waiter(size, since)
        insert_in_order(self._waiters, waiter)
        self._show_oldest_wait()
        self._waiting_bytes += size
        self._recheck_later()
        try:
            await asyncio.wait_for(asyncio.shield(waiter.granted), max(0.0, deadline - time.monotonic()))
        except BaseException as error:
            if waiter.granted.done():
                self.release(size)  # granted as the wait ended: give it back
            else:
                self._waiters.remove(waiter)
                self._waiting_bytes -= size
                self._grant()  # those behind it may fit now
            if isinstance(error, TimeoutError):
                raise RenderMemoryTimeout() from None
            raise

    def is_big(self, size: int) -> bool:
        """A render this big can't reuse what smaller ones freed: that goes back to the system before it."""
        return size > self.together // 2

    @property
    def waiting(self) -> int:
        """Bytes asked for by the renders waiting for room."""
        return self._waiting_bytes

    def release(self, size: int) -> None:
        """Give back what a finished render reserved, and start those waiting that now fit."""
        self._add(-size)
        self._grant()

    def _add(self, size: int) -> None:
        self.in_use += size
        if self._shared is not None:
            self._shared.set_memory_in_use(self.in_use)

    def _fits(self, size: int, since: float) -> bool:
        """A render waiting since `since` may start: no other process's render has waited longer, and it
        fits beside what runs, or nothing runs anywhere (one over `together` then runs alone)."""
        if self._shared is None:
            return self.in_use + size <= self.together or self.in_use == 0
        oldest_elsewhere = self._shared.oldest_wait_elsewhere()
        if 0.0 < oldest_elsewhere < since and not self._may_overtake(size, oldest_elsewhere):
            return False
        in_use = self.in_use + self._shared.memory_in_use_elsewhere()
        return in_use + size <= self.together or in_use == 0

    def _grant(self) -> None:
        # In order, but past the oldest that doesn't fit yet a smaller one may start (`_may_overtake`).
        blocked_since: float | None = None  # when the oldest waiter that can't start yet began to wait
        for waiter in list(self._waiters):
            if blocked_since is not None and not self._may_overtake(waiter.size, blocked_since):
                continue
            if self._fits(waiter.size, waiter.since):
                self._waiters.remove(waiter)
                self._waiting_bytes -= waiter.size
                self._add(waiter.size)
                waiter.granted.set_result(None)
            elif blocked_since is None:
                blocked_since = waiter.since
        self._show_oldest_wait()
        self._recheck_later()

    def _may_overtake(self, size: int, oldest_since: float) -> bool:
        """A render of `size` may start before one waiting since `oldest_since`: it is small, and that one
        has not yet waited long. The time bounds the wait of the one overtaken: past it, strict order
        again, and it starts once what runs has ended."""
        return size <= self.together // OVERTAKER_SHARE and time.monotonic() - oldest_since < OVERTAKEN_SECONDS

    def _show_oldest_wait(self) -> None:
        if self._shared is not None:
            self._shared.set_oldest_wait(self._waiters[0].since if self._waiters else 0.0)

    def _recheck_later(self) -> None:
        # The room a render waits for may be freed by another process, which can't say so. One timer at a
        # time: a release here grants at once and leaves the timer that is already set as it is.
        if self._waiters and self._shared is not None and self._recheck is None:
            self._recheck = asyncio.get_running_loop().call_later(RECHECK_SECONDS, self._recheck_now)

    def _recheck_now(self) -> None:
        self._recheck = None
        self._grant()
