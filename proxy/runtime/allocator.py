"""glibc's malloc told to give big buffers back to the system as soon as they are freed.

A render allocates a few large buffers (the decoded image, a progressive JPEG's coefficients, the
resized copies) and frees them a moment later. glibc raises its mmap threshold to the largest block
freed so far (up to 32 MiB), after which such buffers come from the heaps of the threads' arenas and
stay there once freed: each worker then kept about 30 MiB more after a burst of renders than before
it, on top of what the next renders take. A fixed threshold keeps every buffer from MMAP_THRESHOLD up
in its own mapping, returned whole on free. Elsewhere (musl, macOS) this does nothing.
"""

import ctypes
import logging

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3  # glibc's <malloc.h>; setting it also stops the dynamic adjustment
MMAP_THRESHOLD = 1024 * 1024  # Python's small objects stay in its own arenas; a 1 MiB line buffer is rare


def return_big_buffers() -> bool:
    """Set the fixed mmap threshold, before the render threads start; False where there is no glibc."""
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    if mallopt is None:
        return False
    done = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))
    if not done:
        log.debug("malloc kept its own mmap threshold")
    return done
