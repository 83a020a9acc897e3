"""Cross-process single-flight: one holder per key among all the processes that share a tier.

DetachedFlights merges the requests for a key within one process. This lock merges the processes.
The work that DetachedFlights started (the in-process leader) holds the key's lock for its whole
fill or render. A leader in another process finds the lock held and waits for it. Once it holds
the lock it looks the key up in the tier again. If the first process committed the entry, it
serves that entry. If not (that process failed), it does the work itself.

How it works: a byte-range lock (fcntl(2) F_OFD_SETLK, an open file description's lock) on one
file per tier, `<tier>/locks/keys`, one byte per key at an offset taken from the key's SHA-256.
- The kernel releases the lock when its holder's descriptor closes, or the holder dies, so a crashed
  worker leaves no stale lock.
- The file is made once and kept: a lock costs an open, a fcntl and a close, and no file is created
  or deleted per key. (A lock file per key, created and unlinked around each fill, cost an inode
  allocated and freed per miss; on ext4 without a journal each allocation scans past the inodes
  freed in the last minutes, ~0.4 ms a miss under load.)
- The offsets are 62 bits of the hash: two keys share a byte with odds of 1 in 2^62, and then only
  wait for each other. Every hold opens the file anew, so two holders in one process contend like
  two processes (an OFD lock belongs to the open file, not to the process as a POSIX lock does).
- A waiter polls with a non-blocking try, pausing a little longer each time (nginx's proxy_cache_lock
  polls too). Each try is one short call in the executor. A blocking lock in a thread would pin one
  executor thread per waiter. That is the same small pool a leader's fill needs to write its part
  file. Also, a blocked thread can't give up at a timeout: it would get the lock later, for a
  caller that is gone.

Usage (the same for every tier: originals, previews, conversions; proxy.tiers.once_per_key does it for them):

    async with tier_lock(tier, key, max_wait) as waited:
        found = lookup(key)      # always look again under the lock: another process may have
        if found:                # committed between our miss and our lock
            serve(found)
        else:
            do_the_work_and_commit()   # commit before leaving the block, so waiters find it

`waited` says whether another holder was seen first (for metrics). LockTimeout (a TimeoutError)
means the key stayed locked for `max_wait` seconds. Locking is best effort, like the rest of the
tier: if the keys file can't be made (the disk is full or read-only), the block runs unlocked and the
error is reported.
"""

import asyncio
import contextlib
import errno
import fcntl
import hashlib
import os
import struct
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

from cache.disk_tier import DiskTier
from cache.errors import LockTimeout

LOCKS_FOLDER = "locks"
# Waiting polls are this far apart at first, then twice as far each time up to the cap. The cap
# bounds how late a waiter notices a release; a render or fill takes far longer than that.
FIRST_PAUSE = 0.005
PAUSE_CAP = 0.05
KEYS_FILE = "keys"
# struct flock (fcntl.h) on 64-bit Linux: l_type, l_whence, l_start, l_len, l_pid (0 for OFD locks), padded.
_FLOCK = struct.Struct("hhqqi4x")


class KeyLocks:
    """Cross-process locks by key: a byte each in one file under `folder`."""

    def __init__(self, folder: Path, on_error: Callable[[str, OSError], None]) -> None:
        self._file = folder / KEYS_FILE
        self._on_error = on_error

    @staticmethod
    def offset_of(key: str) -> int:
        """The byte of the keys file that stands for `key`."""
        return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") >> 2

    @contextlib.asynccontextmanager
    async def hold(self, key: str, max_wait: float) -> AsyncIterator[bool]:
        """Hold `key`'s lock for the block; yield whether another holder was waited for first."""
        offset = self.offset_of(key)
        deadline = time.monotonic() + max_wait
        pause = FIRST_PAUSE
        waited = False
        while True:
            try:
                fd = await _shielded_try(self._file, offset)
            except OSError as error:
                self._on_error("lock", error)
                fd = None
                break  # best effort: go on unlocked, as one process alone would
            if fd is not None:
                break
            waited = True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LockTimeout(f"another process held the lock for over {max_wait:g} s")
            await asyncio.sleep(min(pause, remaining))
            pause = min(pause * 2, PAUSE_CAP)
        try:
            yield waited
        finally:
            if fd is not None:
                os.close(fd)  # closing the descriptor releases its lock; no thread hop needed


def tier_lock(tier: DiskTier, key: str, max_wait: float) -> AbstractAsyncContextManager[bool]:
    """`tier`'s lock for `key` (see the module docstring); errors are reported as the tier's."""
    return KeyLocks(tier.config.path / LOCKS_FOLDER, tier.report_error).hold(key, max_wait)


async def _shielded_try(file: Path, offset: int) -> int | None:
    """One try in the executor. If the caller is cancelled meanwhile, a lock the thread got is let go."""
    attempt = asyncio.ensure_future(asyncio.to_thread(_try_lock, file, offset))
    try:
        return await asyncio.shield(attempt)
    except asyncio.CancelledError:
        attempt.add_done_callback(_release_abandoned)
        raise


def _release_abandoned(attempt: "asyncio.Future[int | None]") -> None:
    if attempt.cancelled() or attempt.exception() is not None:
        return
    fd = attempt.result()
    if fd is not None:
        os.close(fd)


def _try_lock(file: Path, offset: int) -> int | None:
    """A descriptor holding the byte at `offset` of `file`, or None if another holds it. Blocks briefly."""
    try:
        fd = os.open(file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except FileNotFoundError:
        file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.fcntl(fd, fcntl.F_OFD_SETLK, _FLOCK.pack(fcntl.F_WRLCK, os.SEEK_SET, offset, 1, 0))
    except OSError as error:
        os.close(fd)
        if error.errno in (errno.EAGAIN, errno.EACCES):
            return None
        raise
    except BaseException:
        os.close(fd)
        raise
    return fd
