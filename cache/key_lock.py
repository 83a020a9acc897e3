"""Cross-process single-flight: one holder per key among all the processes that share a tier.

DetachedFlights merges the requests for a key within one process. This lock merges the processes.
The work that DetachedFlights started (the in-process leader) holds the key's lock for its whole
fill or render. A leader in another process finds the lock held and waits for it. Once it holds
the lock it looks the key up in the tier again. If the first process committed the entry, it
serves that entry. If not (that process failed), it does the work itself.

How it works: flock(2) on one file per key, `<tier>/locks/<sha256 of key>.lock`.
- The kernel releases a flock when its holder dies, so a crashed worker leaves no stale lock.
- The holder unlinks the file before it releases the lock, so lock files don't pile up. A
  process may then lock a file that the path no longer names (it opened the file just before the
  unlink). So after locking, it checks that the path still names the inode it locked, and tries
  again if not.
- A waiter polls with LOCK_NB, pausing a little longer each time (nginx's proxy_cache_lock polls
  too). Each try is one short call in the executor. A blocking flock in a thread would pin one
  executor thread per waiter. That is the same small pool a leader's fill needs to write its part
  file. Also, a blocked thread can't give up at a timeout: it would get the lock later, for a
  caller that is gone.
- There is one file per key, not a fixed set of striped files. With stripes, two unrelated cold
  keys that hash to the same stripe would wait for each other, and a 4 GB fill could hold up a
  thumbnail.

Usage (the same for every tier: originals, previews, conversions; proxy.tiers.once_per_key does it for them):

    async with tier_lock(tier, key, max_wait) as waited:
        found = lookup(key)      # always look again under the lock: another process may have
        if found:                # committed between our miss and our lock
            serve(found)
        else:
            do_the_work_and_commit()   # commit before leaving the block, so waiters find it

`waited` says whether another holder was seen first (for metrics). LockTimeout (a TimeoutError)
means the key stayed locked for `max_wait` seconds. Locking is best effort, like the rest of the
tier: if lock files can't be made (the disk is full or read-only), the block runs unlocked and the
error is reported.
"""

import asyncio
import contextlib
import fcntl
import hashlib
import os
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
# How many times one try starts over when it locked a file that had just been unlinked.
STALE_INODE_RETRIES = 8


class KeyLocks:
    """Cross-process locks by key: one lock file per key held, under `folder`."""

    def __init__(self, folder: Path, on_error: Callable[[str, OSError], None]) -> None:
        self._folder = folder
        self._on_error = on_error

    def path_of(self, key: str) -> Path:
        """The lock file of `key` (it exists only while someone holds or tries to take it)."""
        return self._folder / f"{hashlib.sha256(key.encode()).hexdigest()}.lock"

    @contextlib.asynccontextmanager
    async def hold(self, key: str, max_wait: float) -> AsyncIterator[bool]:
        """Hold `key`'s lock for the block; yield whether another holder was waited for first."""
        path = self.path_of(key)
        deadline = time.monotonic() + max_wait
        pause = FIRST_PAUSE
        waited = False
        while True:
            try:
                fd = await _shielded_try(path)
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
                # Shielded: if this task is cancelled, the release must still happen.
                await asyncio.shield(asyncio.to_thread(_release, path, fd))


def tier_lock(tier: DiskTier, key: str, max_wait: float) -> AbstractAsyncContextManager[bool]:
    """`tier`'s lock for `key` (see the module docstring); errors are reported as the tier's."""
    return KeyLocks(tier.config.path / LOCKS_FOLDER, tier.report_error).hold(key, max_wait)


async def _shielded_try(path: Path) -> int | None:
    """One try in the executor. If the caller is cancelled meanwhile, a lock the thread got is let go."""
    attempt = asyncio.ensure_future(asyncio.to_thread(_try_lock, path))
    try:
        return await asyncio.shield(attempt)
    except asyncio.CancelledError:
        attempt.add_done_callback(lambda done: _release_abandoned(path, done))
        raise


def _release_abandoned(path: Path, attempt: "asyncio.Future[int | None]") -> None:
    if attempt.cancelled() or attempt.exception() is not None:
        return
    fd = attempt.result()
    if fd is not None:
        _release(path, fd)


def _try_lock(path: Path) -> int | None:
    """The descriptor holding `path`'s lock, or None if someone else holds it. Blocks briefly."""
    for _ in range(STALE_INODE_RETRIES):
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except FileNotFoundError:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        except BaseException:
            os.close(fd)
            raise
        if _names_inode(path, fd):
            return fd
        # We locked a file that its last holder had already unlinked: that holder is done.
        os.close(fd)
    return None  # lost every race in a row: count it as held, and wait


def _names_inode(path: Path, fd: int) -> bool:
    try:
        named = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino)


def _release(path: Path, fd: int) -> None:
    """Unlink while still holding the lock (see the module docstring), then let it go."""
    try:
        # A file that can't be unlinked stays, unlocked; the next holder of the key reuses it.
        with contextlib.suppress(OSError):
            os.unlink(path)
    finally:
        os.close(fd)
