"""One disk tier on diskcache: bounded by size (LRU) and by idle time, best effort, blocking.

An entry idle past the idle period is *stale*; it stays on disk for the tier's stale grace, to be
served only when the provider fails (stale-if-error), then goes. Stale entries are the least
recently touched, so the size bound evicts them first.

The bound covers the tier's whole folder: entries, and the SQLite database with its write-ahead
log and index (cache.db_files). diskcache's size limit is what the database files leave of the bound;
the tier measures them before each commit and on each sweep, and moves the limit when they grow.

Every public method blocks (SQLite, open(), rename()) and is meant to run in an executor. Each one
catches cache I/O errors and reports them to the observer, so a broken cache behaves as a miss and
never fails a request.
"""

import logging
import os
import shutil
import sqlite3
import time
import uuid
from pathlib import Path

import diskcache

from cache import db_files
from cache.config import TierConfig
from cache.entry import CachedEntry, EntryMeta
from cache.entry_disk import LEAST_RECENTLY_TOUCHED, EntryDisk, FinishedFile
from cache.observer import TierObserver

log = logging.getLogger(__name__)

CACHE_ERRORS = (OSError, sqlite3.Error, diskcache.Timeout)

# A hit rewrites an entry's expiry only when it is older than this share of the idle period (capped
# at a minute), so a hot entry costs one SQLite write a minute, not one per request. An entry may
# expire early by that much at most.
TOUCH_FRACTION = 1 / 16
TOUCH_CAP_SECONDS = 60.0


class DiskTier:
    """A named disk cache: `lookup`, `new_part_path`, `commit`, and start-up cleaning of leftovers."""

    def __init__(self, config: TierConfig, observer: TierObserver) -> None:
        self.name = config.name
        self.config = config
        self._observer = observer
        self._parts = config.path / "partial"
        self._touch_after = min(config.idle_seconds * TOUCH_FRACTION, TOUCH_CAP_SECONDS)
        # How long a row lives in diskcache after its last touch: fresh, then kept stale.
        self._lifetime = config.idle_seconds + config.stale_seconds
        self._reserved = 0  # bytes of the bound kept for the database files; set by _open
        try:
            self._cache = self._open()
        except sqlite3.DatabaseError as error:
            # A cache holds nothing that can't be fetched again: start it afresh rather than refuse
            # to serve.
            self._report("open", error)
            log.error("tier %s: database at %s is unreadable (%s); starting the tier empty",
                      self.name, config.path, error)
            shutil.rmtree(config.path, ignore_errors=True)
            self._cache = self._open()
        self._cache.disk.on_remove = lambda: observer.cache_evicted(self.name)

    def _open(self) -> diskcache.Cache:
        self.config.path.mkdir(parents=True, exist_ok=True)
        bound = self.config.size_limit
        self._reserved = db_files.reserve(db_files.measure(self.config.path), bound)
        return diskcache.Cache(
            str(self.config.path),
            disk=EntryDisk,
            # For the entries only: the policy's SQL (cache.entry_disk) compares their sum with it.
            size_limit=bound - self._reserved,
            eviction_policy=LEAST_RECENTLY_TOUCHED,
            statistics=False,
            # The policy's SQL picks exactly the entries needed to get back under the bound; this
            # only caps one transaction's work (a huge commit may push out many small entries).
            cull_limit=1000,
            **db_files.sqlite_settings(bound),
        )

    @property
    def entries_limit(self) -> int:
        """Bytes of the bound left for entries: the bound less what the database files take or may take."""
        return self.config.size_limit - self._reserved

    def lookup(self, key: str) -> CachedEntry | None:
        """Return the entry for `key` as an open file, or None on a miss or a cache error.

        An entry idle past the tier's idle period but still within its stale grace comes back with
        `stale` set: the caller asks the provider first and serves it only if the provider fails.
        A stale entry's idle clock is not refreshed.
        """
        try:
            found = self._cache.get(key, read=True, expire_time=True)
        except CACHE_ERRORS as error:
            self._report("lookup", error)
            return None
        entry, expire_time = found
        if not isinstance(entry, CachedEntry):
            return None
        if expire_time is None:
            return entry
        # diskcache removes a row at expire_time = last touch + idle period + stale grace.
        idle = time.time() - (expire_time - self._lifetime)
        if idle >= self.config.idle_seconds:
            entry.stale = True
        elif idle >= self._touch_after:
            try:
                self._cache.touch(key, expire=self._lifetime)
            except CACHE_ERRORS as error:
                self._report("touch", error)
        return entry

    def new_part_path(self) -> Path:
        """A fresh path for a fill to write to. Raises OSError if the tier's directory is unusable.

        The name starts with the writer's pid, so that the part files of a worker process that died
        can be found and removed (cache.startup.remove_parts_of).
        """
        self._parts.mkdir(parents=True, exist_ok=True)
        return self._parts / f"{os.getpid()}-{uuid.uuid4().hex}.part"

    def commit(self, key: str, part: Path, meta: EntryMeta) -> bool:
        """Adopt a complete part file as the entry for `key`. On failure the part is deleted."""
        self._fit_database_files()
        if meta.info.size > self.entries_limit:
            # Larger than the entries' share of the tier: storing it would only evict everything else, then itself.
            self.discard(part)
            return False
        finished = FinishedFile(part, meta)
        try:
            self._cache.set(key, finished, expire=self._lifetime)
            return True
        except CACHE_ERRORS as error:
            self._report("commit", error)
            # The file may already sit in diskcache's tree with no row pointing at it.
            self.discard(Path(finished.adopted_as) if finished.adopted_as else part)
            return False

    def store_bytes(self, key: str, data: bytes, meta: EntryMeta) -> bool:
        """Store a small body produced in memory (a rendered preview): part file, then commit."""
        part = self.write_part(data)
        return part is not None and self.commit(key, part, meta)

    def write_part(self, data: bytes) -> Path | None:
        """A new part file holding `data`, ready to commit; None (and the error counted) if it can't be written."""
        try:
            part = self.new_part_path()
            with open(part, "xb") as file:
                file.write(data)
        except OSError as error:
            self._report("write", error)
            return None
        return part

    def remove(self, key: str) -> bool:
        """Delete the entry for `key` (a purge); True if there was one. Its file goes after the row."""
        try:
            return bool(self._cache.delete(key, retry=True))
        except CACHE_ERRORS as error:
            self._report("remove", error)
            return False

    def holds(self, key: str) -> bool:
        """True if the tier has a row for `key`, fresh or stale (the purge index's pruning asks)."""
        try:
            return key in self._cache
        except CACHE_ERRORS as error:
            self._report("contains", error)
            return True  # unsure: keep the index row

    def discard(self, part: Path) -> None:
        """Delete a part file that will never become an entry."""
        try:
            part.unlink(missing_ok=True)
        except OSError as error:
            self._report("discard", error)

    def remove_leftovers(self) -> int:
        """Delete part files left by a fill that died with its process. Call before serving."""
        try:
            count = sum(1 for _ in self._parts.iterdir())
        except FileNotFoundError:
            return 0
        except OSError as error:
            self._report("remove leftovers", error)
            return 0
        shutil.rmtree(self._parts, ignore_errors=True)
        if count:
            log.info("tier %s: removed %d unfinished part file(s) left by an earlier run", self.name, count)
        return count

    def cull_expired(self) -> None:
        """Remove entries idle past their expiry and stale grace, and any over the entries' share of the bound.

        diskcache culls only on writes otherwise. The share shrinks when the database files grow, which
        hits do too (they refresh idle clocks).
        """
        self._fit_database_files()
        try:
            self._cache.cull()
        except CACHE_ERRORS as error:
            self._report("cull", error)

    def stats(self) -> tuple[int, int]:
        """(bytes on disk, entry count), for the size and entries gauges: entries and database files."""
        try:
            # diskcache keeps the entries' running total in its Settings table; reset(name) reads it.
            entries_bytes = int(self._cache.reset("size"))
            return entries_bytes + db_files.measure(self.config.path).total, len(self._cache)
        except CACHE_ERRORS as error:
            self._report("stats", error)
            return 0, 0

    def is_open(self) -> bool:
        """True while the tier's database answers; used by /readyz."""
        try:
            self._cache.get("\0readiness-probe")
            return os.access(self.config.path, os.W_OK)
        except CACHE_ERRORS:
            return False

    def close(self) -> None:
        """Close the SQLite connections."""
        self._cache.close()

    def _fit_database_files(self) -> None:
        """Measure the database files; truncate a log past its cap; move diskcache's limit if the reserve moved.

        Several processes share the tier and its Settings table: each one measures the same files, so
        they write the same limit, and only when the reserve has moved by a whole step.
        """
        bound = self.config.size_limit
        try:
            files = db_files.measure(self.config.path)
            if db_files.wal_overgrown(files, bound):
                db_files.truncate_wal(self.config.path)
                files = db_files.measure(self.config.path)
            reserved = db_files.reserve(files, bound)
            if reserved != self._reserved:
                self._cache.reset("size_limit", bound - reserved)
                self._reserved = reserved
        except CACHE_ERRORS as error:
            self._report("measure database files", error)

    def report_error(self, operation: str, error: BaseException) -> None:
        """Count and log a cache I/O error of work done for this tier (a key's lock, for one)."""
        self._report(operation, error)

    def _report(self, operation: str, error: BaseException) -> None:
        log.warning("tier %s: %s failed, treated as a miss: %s", self.name, operation, error)
        self._observer.cache_error(self.name, operation, error)
