"""A tier's SQLite files (database, write-ahead log, shared memory) count against its size bound."""

import os
import sqlite3
from pathlib import Path

from cache.disk_tier import DiskTier
from tests.support.disk_tiers import RecordingObserver, payload, put, read, tier_opener

SMALL_TIER = 2 * 1024 * 1024


DB_FILES = ("cache.db", "cache.db-wal", "cache.db-shm")


def files_on_disk(folder: Path) -> dict[str, int]:
    """Bytes of every file under a tier's folder: the entries together, and each SQLite file."""
    sizes = {name: 0 for name in (*DB_FILES, "entries")}
    for root, _, names in os.walk(folder):
        for name in names:
            sizes[name if name in DB_FILES else "entries"] += os.stat(os.path.join(root, name)).st_size
    return sizes


def preview_sized(index: int) -> bytes:
    """3 to 40 KB, as previews are: many small commits, so many SQLite writes per byte stored."""
    return payload(f"preview-{index}", 3_000 + (index * 7_919) % 37_000)


def test_the_database_files_count_against_the_bound(tmp_path: Path) -> None:
    observer = RecordingObserver()
    with tier_opener(tmp_path, observer) as open_tier:
        _fill_and_check_every_commit(open_tier("previews", size_limit=SMALL_TIER), observer)


def _fill_and_check_every_commit(tier: DiskTier, observer: RecordingObserver) -> None:
    largest: dict[str, int] = dict.fromkeys(DB_FILES, 0)
    written = 0
    for index in range(450):
        data = preview_sized(index)
        put(tier, f"p{index}", data)
        written += len(data)
        if index % 3 == 0:
            assert read(tier, f"p{index // 2}") in (None, preview_sized(index // 2))

        on_disk = files_on_disk(tier.config.path)
        # Nothing is tolerated: entries, database, log and index together stay within the bound,
        # and the size the tier reports (the cache_size_bytes gauge) is all of them.
        assert sum(on_disk.values()) <= SMALL_TIER, (index, on_disk)
        assert tier.stats()[0] == sum(on_disk.values()), (index, on_disk)
        largest = {name: max(largest[name], on_disk[name]) for name in DB_FILES}

    assert written > 4 * SMALL_TIER, "the test must write well past the bound"
    assert observer.evictions > 0 and observer.errors == []
    # The log grew (several commits' pages between checkpoints) and stayed a small share of the bound
    # (SQLite alone lets it reach about 4 MiB, twice this whole tier).
    assert 5 * 4096 < largest["cache.db-wal"] <= SMALL_TIER // 8, largest
    assert largest["cache.db-shm"] > 0


def test_a_log_kept_from_starting_over_is_reserved_then_truncated(tmp_path: Path) -> None:
    observer = RecordingObserver()
    with tier_opener(tmp_path, observer) as open_tier:
        _pin_the_log_then_release_it(open_tier("previews", size_limit=SMALL_TIER), observer)


def _pin_the_log_then_release_it(tier: DiskTier, observer: RecordingObserver) -> None:
    for index in range(40):
        put(tier, f"before-{index}", preview_sized(index))
    limit_before = tier.entries_limit
    # Another process's reader that stays in one read transaction: no checkpoint can get past its
    # snapshot, so the log grows with every commit and nobody can truncate it.
    reader = sqlite3.connect(tier.config.path / "cache.db", isolation_level=None)
    try:
        reader.execute("BEGIN")
        reader.execute("SELECT COUNT(*) FROM Cache").fetchall()
        for index in range(40):
            put(tier, f"during-{index}", preview_sized(index))
            on_disk = files_on_disk(tier.config.path)
            assert sum(on_disk.values()) <= SMALL_TIER, (index, on_disk)
        pinned = files_on_disk(tier.config.path)["cache.db-wal"]
        assert pinned > SMALL_TIER // 8, "the log must have outgrown its cap while the reader held it"
        assert tier.entries_limit < limit_before - pinned // 2, "an overgrown log takes room from the entries"
    finally:
        reader.close()

    put(tier, "after", preview_sized(0))

    on_disk = files_on_disk(tier.config.path)
    assert on_disk["cache.db-wal"] < pinned // 4, "the first commit after the reader left truncates the log"
    assert tier.entries_limit == limit_before
    assert sum(on_disk.values()) <= SMALL_TIER
    assert observer.errors == []
