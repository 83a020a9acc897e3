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

Elsewhere than glibc (musl, macOS) there is no mallopt or malloc_trim, and both do nothing.
"""

import ctypes
from collections.abc import Callable

DEFAULT_HEAP_KEEP = 128 * 1024 * 1024
# mallopt(3) parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


# The symbols the process has loaded, the C library's among them: ctypes.util.find_library would cost the
# render host (proxy.render.host) 2.4 MiB of imports for the same answer.
_LIBC = ctypes.CDLL(None)
_TRIM: Callable[[int], int] | None = getattr(_LIBC, "malloc_trim", None)


def keep_freed_memory(keep: int) -> bool:
    """Keep up to `keep` bytes of freed heap in this process (allocations up to half of it from the heap);
    0 leaves the C library's defaults. False where mallopt is missing (not glibc) or refuses."""
    if keep <= 0:
        return False
    mallopt = getattr(_LIBC, "mallopt", None)
    if mallopt is None:  # the heap keeps its default thresholds
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    bounded = min(keep, 2**31 - 1)
    return bool(mallopt(_M_MMAP_THRESHOLD, bounded // 2)) and bool(mallopt(_M_TRIM_THRESHOLD, bounded))


def give_back_freed_memory() -> bool:
    """Hand the free pages of every malloc arena back to the system (malloc_trim(0)); False where there is
    no malloc_trim."""
    if _TRIM is None:
        return False
    _TRIM(0)
    return True
