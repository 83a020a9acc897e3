"""The purge generation: one counter, shared by every process on a cache root, read without a system call.

Every purge advances it. A process reads it to learn, cheaply, that a purge happened somewhere: it then
drops what it holds in memory (hot previews, preview bodies, trusted source versions), and a fill or a
render remembers the value it started under so its commit can be checked against the purges since
(cache.purge.index). The counter is 8 bytes in a small file mapped into every process's memory, so a
read is a memory load (about a hundred nanoseconds), cheap enough for every hot-lane answer; a stat()
or an SQLite read per request would not be.

Only a purge writes it, inside the purge index's write transaction, so writers never race.
"""

import mmap
import os
import struct
from pathlib import Path

FILE_NAME = "purge-generation"
_FORMAT = "<Q"
_SIZE = struct.calcsize(_FORMAT)


class PurgeGeneration:
    """The counter in `folder`/purge-generation, mapped shared. Blocks while opening (creates the file)."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / FILE_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            # Growing to 8 bytes zero-fills; a file already that size (another process won the race,
            # maybe wrote a value since) is left as it is.
            if os.fstat(fd).st_size < _SIZE:
                os.ftruncate(fd, _SIZE)
            self._map = mmap.mmap(fd, _SIZE, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        finally:
            os.close(fd)  # the mapping keeps the file

    def read(self) -> int:
        """The generation now."""
        return int(struct.unpack_from(_FORMAT, self._map, 0)[0])

    def advance_past(self, floor: int) -> int:
        """Set the counter to one past both itself and `floor`; return the new value.

        Call only while holding the purge index's write lock (the one writer at a time).
        """
        value = max(self.read(), floor) + 1
        struct.pack_into(_FORMAT, self._map, 0, value)
        return value

    def close(self) -> None:
        """Unmap the counter."""
        self._map.close()
