"""What `preview-proxy cache stats` and `cache verify` read: a tier's rows checked against its files.

Reads go to the tier's own SQLite database (read-only, beside the running server's connections) and
its folder. Nothing here writes except `remove_orphan`; entries go through DiskTier.remove, index rows
through the purge index, so the server's locks and transactions are respected.
"""

import contextlib
import os
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cache.db_files import DATABASE

# A file in the tree with no row is an orphan only once it is this old: a commit renames a part file
# into the tree just before it inserts the row, so a fresh file may be a commit in flight.
ORPHAN_MIN_AGE = 60.0
# What lives in a tier's folder besides its entries: the database files, fills being written, key locks.
NOT_ENTRIES = ("partial", "locks")


@dataclass(frozen=True)
class EntryRow:
    """One row of a tier: its key, the file it names (absolute) and the size it records."""

    key: str
    path: Path
    size: int


def entry_rows(folder: Path) -> Iterator[EntryRow]:
    """Every row of the tier in `folder` that names a file."""
    with _read_only(folder) as db:
        rows = db.execute("SELECT key, filename, size FROM Cache WHERE filename IS NOT NULL").fetchall()
    for key, filename, size in rows:
        yield EntryRow(str(key), folder / filename, int(size))


def oldest_entry(folder: Path) -> float | None:
    """When the oldest entry still in the tier was stored (epoch seconds), or None for an empty tier."""
    with _read_only(folder) as db:
        found = db.execute("SELECT MIN(store_time) FROM Cache").fetchone()[0]
    return float(found) if found is not None else None


def bad_length(row: EntryRow) -> str | None:
    """Why the row's file doesn't check out (missing, or not the recorded size), or None if it does."""
    try:
        size = row.path.stat().st_size
    except FileNotFoundError:
        return "file missing"
    return None if size == row.size else f"{size} bytes on disk, {row.size} recorded"


def orphan_files(folder: Path, named: set[Path]) -> Iterator[Path]:
    """Files of the tier's entry tree that no row names (`named`), old enough not to be a commit in flight."""
    cutoff = time.time() - ORPHAN_MIN_AGE
    for top in folder.iterdir():
        if not top.is_dir() or top.name in NOT_ENTRIES:
            continue
        for root, _, files in os.walk(top):
            for name in files:
                path = Path(root) / name
                try:
                    old_enough = path.stat().st_mtime < cutoff
                except FileNotFoundError:
                    continue  # evicted meanwhile
                if old_enough and path not in named:
                    yield path


def remove_orphan(path: Path) -> None:
    """Delete an orphan file (and its folder, if that leaves it empty, as diskcache does)."""
    path.unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # not empty, or gone
        path.parent.rmdir()


@contextlib.contextmanager
def _read_only(folder: Path) -> Iterator[sqlite3.Connection]:
    """A read-only connection to a tier's database, closed on exit."""
    db = sqlite3.connect(f"file:{folder / DATABASE}?mode=ro", uri=True, timeout=30.0)
    try:
        yield db
    finally:
        db.close()
