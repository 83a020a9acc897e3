"""The purge index: which entries of which tier were made from which original, and the purges so far.

One SQLite database beside the tiers (`purge-index.db` under the cache root), shared by every process
and kept across restarts, in WAL mode with a busy timeout. Two tables:

- `derived(tier, entry_key, source)`: a row for every entry the tiers commit, originals included
  (their source is themselves), written in the same step as the commit. A purge finds what to remove
  here, by source or by a source prefix (an index range, never a scan of the tiers). A replaced
  original keeps its source key, so the previews of every version it had stay findable.
- `purges(generation, kind, target)`: every purge, numbered by the purge generation
  (cache.purge.generation). A fill or render reads the generation when it starts; its commit, under
  the index's write lock, is refused if a purge since then covers its source or its entry, so nothing
  fetched or rendered before a purge becomes visible after it (no resurrection). Purges take the same
  write lock, so a commit is either wholly before a purge (and removed by it) or checked against it.

Bounds: rows of entries the tiers evicted are pruned lazily (`prune`, a batch at a time on the tiers'
sweep, each row checked against its tier); purge records older than a day are dropped, and a fill
that started before the oldest record kept is refused, as if a purge had covered it.

Every method blocks (SQLite, file renames): run it in an executor. Index errors are cache errors: the
commit they hit is dropped (the request is still served), reported to the tier.
"""

import fcntl
import logging
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from cache.disk_tier import DiskTier
from cache.entry import EntryMeta
from cache.purge.generation import FILE_NAME as GENERATION_FILE_NAME
from cache.purge.generation import PurgeGeneration

log = logging.getLogger(__name__)
FILE_NAME = "purge-index.db"
BUSY_TIMEOUT = 30.0  # seconds a writer waits for another: a purge of a large prefix holds the lock a while
PURGE_RECORDS_KEPT = 24 * 3600.0  # seconds a purge record is kept for the fills that started before it
# After the last character of any text, in SQLite's byte order: `source < prefix + END` bounds a prefix.
END = "\U0010ffff"

# How a purge names what it removes, and how a commit is checked against it.
SOURCE = "source"  # every entry of one original (its storage-tier key)
PREFIX = "prefix"  # every entry of the originals whose key starts with the target
ENTRY = "entry"  # the entries of one tier whose keys start with the target (one preview URL's)

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS derived (id INTEGER PRIMARY KEY, tier TEXT NOT NULL, entry_key TEXT NOT NULL,"
    " source TEXT NOT NULL, UNIQUE (tier, entry_key))",
    "CREATE INDEX IF NOT EXISTS derived_source ON derived (source)",
    "CREATE TABLE IF NOT EXISTS purges (generation INTEGER PRIMARY KEY, kind TEXT NOT NULL,"
    " tier TEXT NOT NULL, target TEXT NOT NULL, at REAL NOT NULL)",
    "CREATE TABLE IF NOT EXISTS pruned (id INTEGER PRIMARY KEY CHECK (id = 1), generation INTEGER NOT NULL)",
)
# Does a purge after generation ? cover this commit (source ?, tier ?, entry key ?)?
_COVERED = (
    "SELECT 1 FROM purges WHERE generation > :since AND ("
    " (kind = 'source' AND target = :source)"
    " OR (kind = 'prefix' AND substr(:source, 1, length(target)) = target)"
    " OR (kind = 'entry' AND tier = :tier AND substr(:entry, 1, length(target)) = target)) LIMIT 1"
)
_SELECT = {
    SOURCE: "SELECT id, tier, entry_key FROM derived WHERE source = :target",
    PREFIX: "SELECT id, tier, entry_key FROM derived WHERE source >= :target AND source < :target || :end",
    ENTRY: "SELECT id, tier, entry_key FROM derived WHERE tier = :tier AND entry_key >= :target"
           " AND entry_key < :target || :end",
}


@contextmanager
def _alone_among_processes(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `path` (which exists) while the block runs: the workers of a server start
    at once, and SQLite answers a process that switches a new database to WAL while another does with
    "database is locked" at once, without waiting out the busy timeout. Not the database's own file:
    closing any descriptor of it would drop the locks SQLite holds on it."""
    with open(path, "rb") as file:
        fcntl.flock(file, fcntl.LOCK_EX)  # released when the file closes, or when the process dies
        yield


class PurgeIndex:
    """The index and purge records of one cache root; one per process, safe from any thread."""

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.generation = PurgeGeneration(root)
        self.path = root / FILE_NAME
        self._db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False)
        self._lock = threading.Lock()  # one connection, used by one thread at a time
        self._prune_after = 0  # the id the next pruning batch starts after (each process walks on its own)
        with self._lock, _alone_among_processes(root / GENERATION_FILE_NAME):
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")  # WAL's safe setting: a crash loses the last commits only
            for statement in _SCHEMA:
                self._db.execute(statement)

    def commit(self, tier: DiskTier, key: str, part: Path, meta: EntryMeta, source: str, since: int) -> bool:
        """Adopt `part` as `key`'s entry and index it under `source`, unless a purge after generation
        `since` (read when the fill or render started) covers it: then the part is deleted. Returns
        whether the entry was committed."""
        try:
            with self._writing() as db:
                if self._covered(db, since, source, tier.name, key):
                    tier.discard(part)
                    log.info("tier %s: not kept, a purge came after it began: %s", tier.name, key.replace("\n", " "))
                    return False
                if not tier.commit(key, part, meta):
                    return False
                db.execute("INSERT OR REPLACE INTO derived (tier, entry_key, source) VALUES (?, ?, ?)",
                           (tier.name, key, source))
                return True
        except sqlite3.Error as error:
            # An entry the index doesn't know could never be purged: it is removed again.
            tier.report_error("index the entry", error)
            tier.remove(key)
            tier.discard(part)
            return False

    def store_bytes(self, tier: DiskTier, key: str, data: bytes, meta: EntryMeta, source: str, since: int) -> bool:
        """`commit` for a small body made in memory (a preview, a conversion)."""
        part = tier.write_part(data)
        return part is not None and self.commit(tier, key, part, meta, source, since)

    def purge(self, tiers: Mapping[str, DiskTier], kind: str, target: str, tier: str = "") -> dict[str, int]:
        """Remove every entry `kind` and `target` name (`tier` too, for ENTRY), record the purge and
        advance the generation. Returns the entries removed per tier (every tier named, 0 included)."""
        removed = dict.fromkeys(tiers, 0)
        with self._writing() as db:
            last = db.execute("SELECT COALESCE(MAX(generation), 0) FROM purges").fetchone()[0]
            generation = max(self.generation.read(), last) + 1
            db.execute("INSERT INTO purges (generation, kind, tier, target, at) VALUES (?, ?, ?, ?, ?)",
                       (generation, kind, tier, target, time.time()))
            rows = db.execute(_SELECT[kind], {"target": target, "end": END, "tier": tier}).fetchall()
            for row_id, tier_name, entry_key in rows:
                holder = tiers.get(tier_name)
                if holder is not None and holder.remove(entry_key):
                    removed[tier_name] += 1
                db.execute("DELETE FROM derived WHERE id = ?", (row_id,))
            if kind == SOURCE and "storage" in tiers and not any(r[2] == target for r in rows):
                # An original stored before the index knew it: its key is its source, so remove it by name.
                removed["storage"] += tiers["storage"].remove(target)
            # Last, once the entries are gone: a fill that reads the new value started after them.
            self.generation.advance_past(generation - 1)
        return removed

    def prune(self, tiers: Mapping[str, DiskTier], batch: int) -> bool:
        """Drop up to `batch` rows whose entry its tier no longer holds, and old purge records.
        Returns True when the walk reached the end of the table (it starts over next time)."""
        with self._lock:
            rows = self._db.execute("SELECT id, tier, entry_key FROM derived WHERE id > ? ORDER BY id LIMIT ?",
                                    (self._prune_after, batch)).fetchall()
        gone = [(row_id,) for row_id, tier_name, key in rows
                if tier_name in tiers and not tiers[tier_name].holds(key)]
        with self._writing() as db:
            # A row re-added since the check (the same key committed again) has a new id: not deleted.
            db.executemany("DELETE FROM derived WHERE id = ?", gone)
            old = db.execute("SELECT MAX(generation) FROM purges WHERE at < ?",
                             (time.time() - PURGE_RECORDS_KEPT,)).fetchone()[0]
            if old is not None:
                db.execute("DELETE FROM purges WHERE generation <= ?", (old,))
                db.execute("INSERT INTO pruned (id, generation) VALUES (1, ?)"
                           " ON CONFLICT (id) DO UPDATE SET generation = MAX(generation, excluded.generation)",
                           (old,))
        self._prune_after = rows[-1][0] if len(rows) == batch else 0
        return len(rows) < batch

    def rows(self) -> Iterator[tuple[str, str, str]]:
        """Every (tier, entry key, source) row (for `cache verify`)."""
        with self._lock:
            found = self._db.execute("SELECT tier, entry_key, source FROM derived ORDER BY id").fetchall()
        yield from found

    def forget(self, tier: str, entry_key: str) -> None:
        """Drop one row (`cache verify --fix`, for an entry its tier no longer holds)."""
        with self._writing() as db:
            db.execute("DELETE FROM derived WHERE tier = ? AND entry_key = ?", (tier, entry_key))

    def close(self) -> None:
        """Close the database and the counter's mapping."""
        with self._lock:
            self._db.close()
        self.generation.close()

    @contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        """A write transaction, taken at once (BEGIN IMMEDIATE): one writer among all the processes."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    @staticmethod
    def _covered(db: sqlite3.Connection, since: int, source: str, tier: str, key: str) -> bool:
        pruned = db.execute("SELECT generation FROM pruned WHERE id = 1").fetchone()
        if pruned is not None and since < pruned[0]:
            return True  # started before the oldest record kept: it can't be cleared, so it is refused
        found = db.execute(_COVERED, {"since": since, "source": source, "tier": tier, "entry": key}).fetchone()
        return found is not None
