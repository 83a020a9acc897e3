"""How a tier lays entries out on disk, as a diskcache `Disk` and one extra eviction policy.

A finished fill is *renamed* into diskcache's tree rather than copied, so a 4 GB original is written
once. Its metadata rides in the row's `value` column, so a hit is one SELECT and one open().
"""

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import diskcache
import diskcache.core

from cache.entry import CachedEntry, EntryMeta

LEAST_RECENTLY_TOUCHED = "least-recently-touched"

# The oldest entries (by expire_time, i.e. by last touch) whose removal brings the entries back under
# the size limit, and no more: diskcache's own policies delete `cull_limit` rows at once whatever
# their size, which with large entries empties the tier (grantjenks/python-diskcache#284).
# An entry is a victim while the bytes freed by the entries older than it are short of the excess.
# The size limit is the entries' share of the bound: the tier has already taken out what the database,
# its log and its index take (cache.db_files), measured on disk, which the page count alone is not.
_LRU_VICTIMS = (
    "SELECT {fields} FROM Cache WHERE rowid IN ("
    " SELECT rowid FROM ("
    "  SELECT rowid, SUM(size) OVER (ORDER BY expire_time, rowid) - size AS freed_before FROM Cache)"
    " WHERE freed_before < (SELECT SUM(size) FROM Cache)"
    "  - (SELECT value FROM Settings WHERE key = 'size_limit'))"
    " ORDER BY expire_time LIMIT ?"
)

# diskcache keeps its eviction strategies in this table (diskcache/core.py, EVICTION_POLICY) and
# looks the policy up by name on every cull. Each tier stores every entry with the same idle period
# and refreshes `expire_time` when a hit finds it stale, so ordering by `expire_time` is ordering by
# last access: LRU, without the UPDATE per hit that the built-in "least-recently-used" policy writes.
# "get": None keeps diskcache's no-transaction fast path for reads. The index already exists
# (diskcache creates Cache_expire_time for every cache).
diskcache.core.EVICTION_POLICY.setdefault(
    LEAST_RECENTLY_TOUCHED, {"init": None, "get": None, "cull": _LRU_VICTIMS},
)


@dataclass
class FinishedFile:
    """A complete, length-checked part file, ready to become an entry.

    `adopted_as` is where `store` moved it, so a commit whose SQLite insert then fails can delete it.
    """

    path: Path
    meta: EntryMeta
    adopted_as: str | None = None


# Another process that evicts the last entry of a subfolder removes the folder (diskcache's
# Disk.remove), possibly between our makedirs() and rename(). diskcache's own writes retry 10 times.
RENAME_ATTEMPTS = 10


def _rename_into(source: Path, target: str) -> None:
    """Move `source` to `target`, creating target's folder when it is missing (the first entry in it, or a
    concurrent eviction removed it)."""
    for attempt in range(1, RENAME_ATTEMPTS + 1):
        try:
            os.rename(source, target)
            return
        except FileNotFoundError:
            if attempt == RENAME_ATTEMPTS or not source.exists():
                raise
        os.makedirs(os.path.dirname(target), exist_ok=True)


class EntryDisk(diskcache.Disk):
    """A diskcache Disk that adopts finished part files and returns hits as open files."""

    # Set by the owning tier after diskcache builds this object (diskcache constructs it from settings
    # stored in SQLite, so a callback can't be passed through the constructor).
    on_remove: Callable[[], None] = staticmethod(lambda: None)

    def filename(self, key: Any = diskcache.core.UNKNOWN, value: Any = diskcache.core.UNKNOWN) -> tuple[str, str]:
        """A new entry's file: a random name in one of 256 folders (diskcache's own names go two levels
        deep, 65,536 folders, so nearly every entry of a tier under a few hundred thousand made a folder
        of its own: an inode more to allocate per entry). Rows keep the name they were stored with, so
        entries from the two-level layout are still found."""
        name = os.urandom(16).hex()
        filename = os.path.join(name[:2], name[2:] + ".val")
        return filename, os.path.join(self._directory, filename)

    def store(self, value: Any, read: bool, key: Any = diskcache.core.UNKNOWN) -> tuple[int, int, Any, Any]:
        """Rename a FinishedFile into the tree; defer everything else to diskcache."""
        if not isinstance(value, FinishedFile):
            return super().store(value, read, key=key)
        filename, full_path = self.filename(key, value)
        _rename_into(value.path, full_path)
        value.adopted_as = full_path
        return value.meta.info.size, diskcache.core.MODE_BINARY, filename, value.meta.to_json()

    def fetch(self, mode: int, filename: Any, value: Any, read: bool) -> Any:
        """Open an adopted entry; an IOError here is diskcache's signal for "deleted meanwhile"."""
        if mode == diskcache.core.MODE_BINARY and isinstance(value, str):
            full_path = os.path.join(self._directory, filename)
            file = open(full_path, "rb")  # noqa: SIM115 - the caller owns the open file (CachedEntry.file)
            # The file's last write came just before its commit, and nothing writes it after: its
            # mtime is when the entry was stored (one fstat on a file already open).
            stored_at = os.fstat(file.fileno()).st_mtime
            return CachedEntry(meta=EntryMeta.from_json(value), file=file, path=full_path, stored_at=stored_at)
        return super().fetch(mode, filename, value, read)

    def remove(self, file_path: Any) -> None:
        """Delete an entry's file (eviction, expiry or replacement) and count it."""
        super().remove(file_path)
        self.on_remove()
