"""A tier's SQLite files (cache.db, cache.db-wal, cache.db-shm): kept small, measured, and reserved in its bound.

diskcache counts its database's pages against the size limit, but not the write-ahead log nor its
index (-shm), and SQLite lets the log grow to about 4 MiB (1,000 pages) before a checkpoint, then
keeps the file at that size. In a small tier that is a large share of the bound, uncounted. So:

- the log gets a cap, a share of the tier's bound (`wal_cap`): SQLite checkpoints at half the cap and
  shrinks the file back to half after each checkpoint (`sqlite_settings`), so that one process's
  commits (5 to 10 pages each) keep it under the cap;
- the tier reserves its database files' bytes out of the bound (`reserve`): the database as it is on
  disk, the log at its cap (or more, if it has outgrown it), and the index. What is left is diskcache's
  size limit for the entries;
- a log that outgrew its cap anyway is checkpointed and truncated (`truncate_wal`). That happens
  with several processes: the log can start over only when no other connection is reading it.
  Until it is truncated, it is reserved at its size plus half the cap.

Measuring is three stat() calls, so the tier does it before every commit.
"""

import math
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

DATABASE = "cache.db"  # diskcache.core.DBNAME
WAL_SUFFIX = "-wal"
SHM_SUFFIX = "-shm"

# The log's cap: this share of the bound, within these limits. At the top, SQLite checkpoints at
# half of 8 MiB, its own default of about 1,000 pages. At the bottom, half the cap is about 15 pages.
WAL_SHARE = 1 / 32
WAL_CAP_MIN = 128 * 1024
WAL_CAP_MAX = 8 * 1024 * 1024
# SQLite checkpoints once the log holds this share of the cap; the rest is for the transaction that
# crosses the line. An overgrown log is reserved with this share of the cap to grow on, too.
CHECKPOINT_SHARE = 1 / 2
# The -shm index grows by 32 KiB per 4,096 log frames (16 MiB of log at 4 KiB pages): one block under the cap.
SHM_BLOCK = 32 * 1024
# A log frame is a page and a 24-byte header (https://www.sqlite.org/fileformat2.html#walformat).
WAL_FRAME_HEADER = 24
PAGE_SIZE = 4096  # diskcache keeps SQLite's default page size
# The reserve is rounded up to steps of this share of the cap (at least 16 KiB), so that it changes, and
# diskcache's size limit is rewritten, only when the database has grown by a step, not with every page.
RESERVE_STEP_SHARE = 1 / 8
RESERVE_STEP_MIN = 16 * 1024
CHECKPOINT_TIMEOUT = 0.05  # seconds a truncating checkpoint may wait for readers and writers


@dataclass(frozen=True)
class DbFiles:
    """Bytes on disk of a tier's three SQLite files (0 for a file that doesn't exist)."""

    database: int
    wal: int
    shm: int

    @property
    def total(self) -> int:
        """All three together."""
        return self.database + self.wal + self.shm


def wal_cap(bound: int) -> int:
    """The most the log of a tier bounded by `bound` bytes should hold."""
    return int(min(WAL_CAP_MAX, max(WAL_CAP_MIN, bound * WAL_SHARE)))


def sqlite_settings(bound: int) -> dict[str, int]:
    """diskcache settings (pragmas it applies to every connection) that keep the log within its cap.

    `wal_autocheckpoint` (in frames): checkpoint once the log holds CHECKPOINT_SHARE of the cap.
    `journal_size_limit` (bytes): when the log starts over after a checkpoint, SQLite truncates the
    file to that share rather than keep it at its largest.
    """
    share = int(wal_cap(bound) * CHECKPOINT_SHARE)
    return {
        "sqlite_wal_autocheckpoint": max(1, share // (PAGE_SIZE + WAL_FRAME_HEADER)),
        "sqlite_journal_size_limit": share,
    }


def measure(folder: Path) -> DbFiles:
    """The three files' sizes, by stat(). Raises OSError only for errors other than a missing file."""
    database = folder / DATABASE
    return DbFiles(_size(database), _size(database.with_name(DATABASE + WAL_SUFFIX)),
                   _size(database.with_name(DATABASE + SHM_SUFFIX)))


def reserve(files: DbFiles, bound: int) -> int:
    """Bytes of the bound to keep for the database files: what they take, with room for the log to grow.

    The log's room is its cap. A log that has outgrown its cap (see `truncate_wal`) gets what it
    holds plus half the cap.
    """
    cap = wal_cap(bound)
    wal_room = cap if files.wal <= cap else files.wal + int(cap * CHECKPOINT_SHARE)
    needed = files.database + wal_room + max(files.shm, SHM_BLOCK)
    step = max(RESERVE_STEP_MIN, int(cap * RESERVE_STEP_SHARE))
    return math.ceil(needed / step) * step


def wal_overgrown(files: DbFiles, bound: int) -> bool:
    """True when the log holds more than its cap."""
    return files.wal > wal_cap(bound)


def truncate_wal(folder: Path) -> None:
    """Checkpoint the whole log into the database and truncate it to 0 bytes, if readers let it soon.

    On its own short-lived connection, so that waiting is bounded by CHECKPOINT_TIMEOUT rather than by
    diskcache's 60 s; if others keep the log busy, it stays as it is (and stays reserved) until the
    next try. Raises sqlite3.Error.
    """
    connection = sqlite3.connect(folder / DATABASE, timeout=CHECKPOINT_TIMEOUT, isolation_level=None)
    try:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    finally:
        connection.close()


def _size(path: Path) -> int:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0
