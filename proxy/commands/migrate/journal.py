"""The migration's journal: one SQLite row per object copied or found equal, in DATA_PATH/migrate/<entry>.db.

A row says: this source version (size, mtime, ETag) has this sha256, and the destination held exactly
those bytes, under this ETag, at `verified_at`. Rows are committed one by one (WAL), after the write
they describe: a run killed at any point leaves rows only for objects that are whole at the
destination. All access goes through one thread, so the connection is never shared between two.
"""

import asyncio
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from proxy.commands.migrate.errors import JournalUnavailable
from proxy.commands.migrate.listing import SourceObject

T = TypeVar("T")
SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    source_bucket TEXT NOT NULL,
    key TEXT NOT NULL,
    dest_bucket TEXT NOT NULL,
    source_size INTEGER NOT NULL,
    source_mtime REAL NOT NULL,
    source_etag TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    dest_etag TEXT NOT NULL,
    verified_at REAL NOT NULL,
    PRIMARY KEY (source_bucket, key, dest_bucket)
)
"""


@dataclass(frozen=True)
class JournalRow:
    """What the journal knows of one object: the source version it hashed, and the destination's ETag."""

    source_size: int
    source_mtime: float
    source_etag: str
    sha256: str  # hex
    dest_etag: str
    verified_at: float

    def describes(self, item: SourceObject) -> bool:
        """Whether the source is still the version this row was written for (same size, mtime and ETag)."""
        return (self.source_size, self.source_mtime, self.source_etag) == (item.size, item.mtime, item.etag)


class Journal:
    """Rows keyed by (source bucket, key, destination bucket); every call runs on the journal's own thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="migrate-journal")
        self._connection: sqlite3.Connection | None = None

    async def open(self, read_only: bool = False) -> None:
        """Create the folder and the table if needed; `read_only` (a dry run) creates nothing, and finds no
        row if there is no journal yet."""
        try:
            await self._run(self._open_read_only if read_only else self._open)
        except (OSError, sqlite3.Error) as error:
            raise JournalUnavailable(f"can't open the journal {self.path}: {error}") from None

    async def find(self, item: SourceObject, dest_bucket: str) -> JournalRow | None:
        """The row of this object, if any."""
        return await self._run(self._find, item, dest_bucket)

    async def record(self, item: SourceObject, dest_bucket: str, sha256: str, dest_etag: str) -> None:
        """The destination holds `item`'s bytes (hashed to `sha256`) under `dest_etag`, as of now."""
        await self._run(self._record, item, dest_bucket, sha256, dest_etag, time.time())

    async def close(self) -> None:
        """Close the connection and the thread."""
        if self._connection is not None:
            await self._run(self._connection.close)
        self._thread.shutdown(wait=True)

    async def _run(self, function: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, function, *args)

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        connection.execute("PRAGMA journal_mode=WAL")
        # NORMAL: a commit survives the process being killed (SIGKILL), which is the case that matters here.
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.execute(SCHEMA)
        self._connection = connection

    def _open_read_only(self) -> None:
        if self.path.exists():
            self._connection = sqlite3.connect(f"{self.path.as_uri()}?mode=ro", uri=True, check_same_thread=False)

    def _find(self, item: SourceObject, dest_bucket: str) -> JournalRow | None:
        if self._connection is None:
            return None
        row = self._connection.execute(
            "SELECT source_size, source_mtime, source_etag, sha256, dest_etag, verified_at FROM objects "
            "WHERE source_bucket = ? AND key = ? AND dest_bucket = ?", (item.bucket, item.key, dest_bucket)).fetchone()
        return JournalRow(*row) if row else None

    def _record(self, item: SourceObject, dest_bucket: str, sha256: str, dest_etag: str, now: float) -> None:
        assert self._connection is not None
        self._connection.execute(
            "INSERT OR REPLACE INTO objects VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (item.bucket, item.key, dest_bucket, item.size, item.mtime, item.etag, sha256, dest_etag, now))


def journal_path(data_path: Path, entry_name: str) -> Path:
    """DATA_PATH/migrate/<entry>.db: one journal per destination (an entry's name is a safe file name)."""
    return data_path / "migrate" / f"{entry_name}.db"
