"""What the renders of every worker process share: the server's cores, and the memory they hold.

Each worker process has render threads of its own (proxy.render.pool), and the kernel gives each
connection to one worker for as long as it stays open, so the work is rarely shared out evenly: one
worker may hold a queue of renders while another has none. With one render thread per core in every
worker, the busy one can use the idle one's core; what keeps the workers together from running more
renders than there are cores (each then slower, a large one most of all, and each holding its images
longer) is this count, which every worker shares. A render takes a core before it starts and gives it
back when it is done. A small render may go past the count when every core is held by a large one
(the pool's small lane), so a thumbnail doesn't wait for a 50 MP render in another process.

The memory is shared the same way (proxy.render.memory): a render waits until its estimated peak fits
in what the renders of the whole server hold together (RENDER_MEMORY_CONCURRENT), wherever they run.
A budget per process would keep a 16 MP progressive photo from running beside any other large render
in its own process while the other process sat idle, however much room the server had.

Why a pipe holding one byte per free core rather than a named semaphore: it has no name, so nothing
is left in /dev/shm when the server is killed, and a worker inherits it with its other descriptors.

Each worker process counts in shared memory the cores it holds and the bytes its renders reserved. A
worker that dies holding some (a crash, the kernel's OOM killer) can't give them back, so the
supervisor does, from those counts (`give_back_for`). A process killed between taking a core and
counting it (a few instructions) would leave one fewer core until the server restarts; one killed
between giving a core back and uncounting it lets one render more run; both are far rarer than the
deaths themselves.
"""

import contextlib
import ctypes
import errno
import os
import select
import threading
import time
from collections.abc import Iterator
from multiprocessing.context import BaseContext

from proxy.errors import RenderWaitTimedOut

TOKEN = b"c"


class SharedBounds:
    """`cores` renders at once across the processes of one server, and the bytes each
    process's renders hold (made by the supervisor, pickled into each worker at spawn, then `attach`ed to
    the worker's slot)."""

    def __init__(self, cores: int, slots: int, context: BaseContext) -> None:
        self.cores = cores
        self._reader, self._writer = context.Pipe(duplex=False)
        os.set_blocking(self._reader.fileno(), False)  # waiters poll, then race for a byte
        os.write(self._writer.fileno(), TOKEN * cores)
        # Per slot, written by that slot's process only: the cores it holds, and those held by large renders.
        self._held = context.RawArray(ctypes.c_int, slots)
        self._held_large = context.RawArray(ctypes.c_int, slots)
        self._memory = context.RawArray(ctypes.c_longlong, slots)  # bytes reserved by the slot's renders
        # When the slot's oldest render waiting for memory began to wait (time.monotonic(), the same clock
        # in every process); 0: none waits.
        self._oldest_wait = context.RawArray(ctypes.c_double, slots)
        self._slot = -1
        self._counts = threading.Lock()

    def __getstate__(self) -> dict[str, object]:
        state = self.__dict__.copy()
        del state["_counts"]  # a lock of this process's threads
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        self._counts = threading.Lock()

    def attach(self, slot: int) -> None:
        """In a worker: the slot whose counts this process writes."""
        self._slot = slot

    @contextlib.contextmanager
    def core(self, deadline: float, large: bool) -> Iterator[None]:
        """Hold one of the cores while the block runs (on a render thread: the wait blocks).
        RenderWaitTimedOut if none is free by `deadline` (time.monotonic())."""
        self._take(deadline)
        with self._counts:
            self._held[self._slot] += 1
            self._held_large[self._slot] += large
        try:
            yield
        finally:
            os.write(self._writer.fileno(), TOKEN)
            with self._counts:
                self._held[self._slot] -= 1
                self._held_large[self._slot] -= large

    def all_held_by_large(self) -> bool:
        """Every core is held by a large render (a small one may then pass, in the pool's small lane)."""
        return sum(self._held_large) >= self.cores

    def set_memory_in_use(self, reserved: int) -> None:
        """In a worker (its event loop): the bytes this process's renders hold now, by their estimates."""
        self._memory[self._slot] = reserved

    def memory_in_use_elsewhere(self) -> int:
        """Bytes the renders of the other worker processes hold now, by their estimates."""
        return sum(self._memory) - self._memory[self._slot]

    def set_oldest_wait(self, since: float) -> None:
        """In a worker (its event loop): since when its oldest render waiting for memory waits (0: none)."""
        self._oldest_wait[self._slot] = since

    def waited_longer_elsewhere(self, since: float) -> bool:
        """A render of another process has waited for memory since before `since`: it goes first."""
        return 0.0 < self.oldest_wait_elsewhere() < since

    def oldest_wait_elsewhere(self) -> float:
        """Since when the oldest render of another process waits for memory (0: none waits)."""
        waits = [waiting for slot, waiting in enumerate(self._oldest_wait) if slot != self._slot and waiting > 0.0]
        return min(waits, default=0.0)

    def give_back_for(self, slot: int) -> None:
        """In the supervisor, once the process of `slot` has exited: the cores and memory it held are free again."""
        held = max(0, self._held[slot])
        self._held[slot] = 0
        self._held_large[slot] = 0
        self._memory[slot] = 0
        self._oldest_wait[slot] = 0.0
        if held:
            os.write(self._writer.fileno(), TOKEN * held)

    def _take(self, deadline: float) -> None:
        reader = self._reader.fileno()
        while True:
            try:
                if os.read(reader, 1):
                    return
            except BlockingIOError:
                pass
            except OSError as error:  # pragma: no cover - EINTR is retried by Python itself
                if error.errno != errno.EINTR:
                    raise
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RenderWaitTimedOut("render timed out waiting for a core")
            # Woken when a byte is written; another waiter may take it first, then this one waits again.
            # poll, not select: a busy worker's descriptors go past select's 1,024.
            waiter = select.poll()
            waiter.register(reader, select.POLLIN)
            waiter.poll(max(1, int(remaining * 1000)))
