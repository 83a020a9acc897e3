"""A budget of bytes for the renders of one process: a render starts only when its estimated peak fits.

Worker threads alone don't bound memory: one render of a 50 MP source holds hundreds of megabytes,
and a few at once can drive the process out of memory. Each render's peak is estimated from the
header before any decode (previews.limits.render_plan); here it waits, first come first served, until
the renders running leave room for it.

Two bounds. Renders run together while their estimates add up to `together` (RENDER_MEMORY_CONCURRENT):
that is what the process holds at its peak, and where big decodes (a progressive JPEG's coefficients
at full resolution) would otherwise stack. A render whose estimate alone is over `together` waits
until it can run alone. `limit` (RENDER_MEMORY_LIMIT) is the hard one: a render whose estimate alone
is over it is refused (422), and when a whole limit's worth of renders is already waiting, the next is
turned away (429).

Before a big render (over half of `together`) starts, what earlier renders freed goes back to the
system (proxy.render.heap), so that its peak doesn't come on top of their leftovers.
"""

import asyncio
import collections
import os
import time
from dataclasses import dataclass, field

from proxy.errors import RenderMemoryExceeded, RenderMemoryTimeout, TooManyRequests
from proxy.render.heap import give_back_freed_memory

MIB = 1024 * 1024
# A share of the machine's memory for each worker process's renders: the rest is the interpreter,
# the in-memory caches, the page cache that serves hits, and other processes.
MACHINE_SHARE = 4
# What the renders of one process hold together by default: two typical photo renders (a 4 MP
# progressive source at 1024 px estimates about 45 MiB), or one 16 MP progressive 4:4:4 (110 MiB).
DEFAULT_TOGETHER = 128 * MIB


def default_memory_limit(processes: int) -> int:
    """Physical memory / 4, shared among the worker processes."""
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return max(64 * MIB, physical // MACHINE_SHARE // max(1, processes))


@dataclass(eq=False)
class _Waiter:
    size: int
    granted: "asyncio.Future[None]" = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class RenderMemory:
    """Reserve an estimate before the work starts; release it when the work's thread is done."""

    def __init__(self, limit: int, together: int | None = None) -> None:
        self.limit = limit
        self.together = min(limit, together) if together is not None else limit
        self.in_use = 0
        self._waiters: collections.deque[_Waiter] = collections.deque()
        self._waiting_bytes = 0

    async def reserve(self, size: int, deadline: float) -> None:
        """Wait until `size` bytes fit, in arrival order; see the module's docstring for the refusals."""
        if size > self.limit:
            raise RenderMemoryExceeded(f"the render needs an estimated {size / MIB:.0f} MiB, over "
                                       f"RENDER_MEMORY_LIMIT={self.limit / MIB:.0f} MiB")
        if not self._waiters and self._fits(size):
            self.in_use += size
            self._before_big(size)
            return
        if self._waiting_bytes + size > self.limit:
            raise TooManyRequests("too many large renders waiting for memory, try again shortly")
        waiter = _Waiter(size)
        self._waiters.append(waiter)
        self._waiting_bytes += size
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
        self._before_big(size)

    def _before_big(self, size: int) -> None:
        if size > self.together // 2:  # its decode can't reuse what smaller renders freed
            give_back_freed_memory()

    @property
    def waiting(self) -> int:
        """Bytes asked for by the renders waiting for room."""
        return self._waiting_bytes

    def release(self, size: int) -> None:
        """Give back what a finished render reserved, and start those waiting that now fit."""
        self.in_use -= size
        self._grant()

    def _fits(self, size: int) -> bool:
        # One over `together` runs alone: the process holds no more than it would need anyway.
        return self.in_use + size <= self.together or self.in_use == 0

    def _grant(self) -> None:
        # Strictly in order: a large render at the head is not overtaken for ever by small ones.
        while self._waiters and self._fits(self._waiters[0].size):
            waiter = self._waiters.popleft()
            self._waiting_bytes -= waiter.size
            self.in_use += waiter.size
            waiter.granted.set_result(None)
