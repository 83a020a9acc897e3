"""The C library's heap tuned for renders: freed memory kept for the next render instead of handed back.

glibc serves an allocation above its mmap threshold with a fresh mapping and unmaps it on free, and
returns the free top of the heap to the kernel past its trim threshold. Both thresholds adapt, but
only up to 32 MiB, and a render's large buffers (a progressive JPEG's coefficients, tens of MiB, a
decode, a resize's canvas) come and go with every render: each one's pages were faulted in and
zeroed anew, about a seventh of a preview's CPU. With the thresholds fixed above a render's own
buffers, the next render reuses the same pages.

The cost is memory that stays resident after a render: at most `keep` bytes of free heap per malloc
arena, pages that the process's peak (VmHWM) already counted while the render held them. So before a
big render, what earlier renders left free is handed back (malloc_trim(0), `give_back_freed_memory`):
its peak would otherwise come on top of their leftovers. Only then: the other renders reuse what is
kept (returning every buffer as it is freed cost 8% more CPU per render).

A process whose renders run on threads of their own (the render host, a thread per job) also shares one
arena among them (`share_one_arena`): a thread's own arena grows in heaps of at most 64 MiB, so a
large render there mapped its biggest buffers apart and unmapped them on free, and what one job's
thread kept was of no use to the next job's. In one arena the next large render reuses the last one's
pages: the 16 MP progressive photo took ~25,000 page faults and 50-70 ms of system time a render, none
once its pages are kept. There a trim also leaves `keep` bytes: glibc trims the heap's free top when it
passes the trim threshold, all of it by default, so two large renders that overlapped left nothing for
the next one.

Elsewhere than glibc (musl, macOS) there is no mallopt or malloc_trim, and both do nothing.
"""

import ctypes
from collections.abc import Callable

DEFAULT_HEAP_KEEP = 128 * 1024 * 1024
# mallopt(3) parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8


# The symbols the process has loaded, the C library's among them: ctypes.util.find_library would cost the
# render host (proxy.render.host) 2.4 MiB of imports for the same answer.
_LIBC = ctypes.CDLL(None)
_TRIM: Callable[[int], int] | None = getattr(_LIBC, "malloc_trim", None)
_MALLOPT = getattr(_LIBC, "mallopt", None)
if _MALLOPT is not None:
    _MALLOPT.argtypes, _MALLOPT.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int


def keep_freed_memory(keep: int) -> bool:
    """Keep up to `keep` bytes of freed heap in this process (allocations up to half of it from the heap);
    0 leaves the C library's defaults. False where mallopt is missing (not glibc) or refuses."""
    if keep <= 0:
        return False
    bounded = min(keep, 2**31 - 1)
    return _mallopt(_M_MMAP_THRESHOLD, bounded // 2) and _mallopt(_M_TRIM_THRESHOLD, bounded)


def share_one_arena(keep: int) -> bool:
    """Every thread of this process allocates from the main arena (mallopt M_ARENA_MAX 1), so what one
    thread frees is kept for the next thread's allocations, and a trim of its heap leaves `keep` bytes
    (M_TOP_PAD). False where mallopt is missing or refuses."""
    return _mallopt(_M_ARENA_MAX, 1) and _mallopt(_M_TOP_PAD, min(keep, 2**31 - 1))


def give_back_freed_memory() -> bool:
    """Hand the free pages of every malloc arena back to the system (malloc_trim(0)); False where there is
    no malloc_trim."""
    if _TRIM is None:
        return False
    _TRIM(0)
    return True


def _mallopt(parameter: int, value: int) -> bool:
    """mallopt(3): False where the C library has none (the heap keeps its defaults) or refuses the value."""
    return _MALLOPT is not None and bool(_MALLOPT(parameter, value))
