"""cache/disk_tier.py and cache/entry_disk.py on real temporary directories: adoption, LRU, idle expiry, faults."""

import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cache.config import TierConfig
from cache.disk_tier import DiskTier
from cache.entry import EntryMeta, ObjectInfo
from tests.support.disk_tiers import (
    ENTRY,
    OpenTier,
    RecordingObserver,
    meta_for,
    payload,
    put,
    read,
    tier_opener,
    write_part,
)


@pytest.fixture
def observer() -> RecordingObserver:
    return RecordingObserver()


@pytest.fixture
def open_tier(tmp_path: Path, observer: RecordingObserver) -> Iterator[OpenTier]:
    with tier_opener(tmp_path, observer) as open_:
        yield open_


def wait_for_clock(target: float, timeout: float = 10.0) -> None:
    """Let time.time() (diskcache's clock) pass `target`: bounded in polls and in seconds."""
    step = 0.01
    for _ in range(int(timeout / step)):
        if time.time() >= target:
            return
        time.sleep(step)
    raise AssertionError(f"time.time() did not reach {target} within {timeout}s")


def touch_interval(idle: float) -> float:
    """How stale an entry's idle clock must be before a hit refreshes it (see cache/disk_tier.py)."""
    return min(idle / 16, 60.0)


def test_commit_then_lookup(open_tier: OpenTier, observer: RecordingObserver) -> None:
    tier = open_tier()
    data = payload("a")
    put(tier, "a", data)
    entry = tier.lookup("a")
    assert entry is not None
    with entry.file:
        assert entry.file.read() == data
    assert entry.meta == meta_for(data)
    assert observer.errors == []


def test_entry_meta_row_keeps_its_flat_form() -> None:
    # Rows on disk are one flat JSON object; those written before origin_format existed still read.
    meta = EntryMeta(ObjectInfo(3, '"v1"', 1_700_000_000.5, "image/png"), origin_format="tiff")
    assert meta.to_json() == ('{"size":3,"etag":"\\"v1\\"","last_modified":1700000000.5,'
                              '"content_type":"image/png","origin_format":"tiff"}')
    assert EntryMeta.from_json(meta.to_json()) == meta
    old_row = '{"size":3,"etag":"\\"v1\\"","last_modified":1700000000.5,"content_type":"image/png"}'
    assert EntryMeta.from_json(old_row) == EntryMeta(meta.info)


def test_miss_is_none(open_tier: OpenTier) -> None:
    tier = open_tier()
    put(tier, "a", payload("a"))
    assert tier.lookup("b") is None


def test_commit_adopts_part_by_rename(open_tier: OpenTier) -> None:
    tier = open_tier()
    part = write_part(tier, payload("a"))
    inode = os.stat(part).st_ino
    assert tier.commit("a", part, meta_for(payload("a")))
    assert not part.exists()
    entry = tier.lookup("a")
    assert entry is not None
    with entry.file:
        # Same inode: the part file itself became the entry; nothing was copied.
        assert os.fstat(entry.file.fileno()).st_ino == inode


def test_entries_sit_one_folder_deep_and_older_two_level_entries_still_read(open_tier: OpenTier) -> None:
    tier = open_tier()
    for name in "abcdefgh":
        put(tier, name, payload(name))
    files = sorted(tier.config.path.rglob("*.val"))
    assert len(files) == 8
    # One level of 256 folders: after the first few hundred entries a new one makes no folder.
    assert {len(file.relative_to(tier.config.path).parts) for file in files} == {2}
    assert all(len(file.parent.name) == 2 for file in files)
    # An entry stored by the two-level layout (its row names its file) is still found.
    database = sqlite3.connect(tier.config.path / "cache.db")
    with database:
        (old_name,) = database.execute("SELECT filename FROM Cache WHERE key = 'a'").fetchone()
        two_levels = Path("ab", "cd", "0123456789abcdef0123456789ab.val")
        (tier.config.path / two_levels).parent.mkdir(parents=True)
        os.rename(tier.config.path / old_name, tier.config.path / two_levels)
        database.execute("UPDATE Cache SET filename = ? WHERE key = 'a'", (str(two_levels),))
    database.close()
    assert read(tier, "a") == payload("a")


def test_recommit_replaces_entry(open_tier: OpenTier, observer: RecordingObserver) -> None:
    tier = open_tier()
    put(tier, "a", payload("old"))
    put(tier, "a", payload("new"))
    assert read(tier, "a") == payload("new")
    assert observer.evictions == 1
    assert tier.stats()[1] == 1


def test_entry_larger_than_tier_not_stored(open_tier: OpenTier) -> None:
    tier = open_tier(size_limit=ENTRY)
    put(tier, "small", payload("small", ENTRY // 4))
    big = payload("big", ENTRY + 1)
    part = write_part(tier, big)
    assert tier.commit("big", part, meta_for(big)) is False
    assert not part.exists()
    assert tier.lookup("big") is None
    assert read(tier, "small") == payload("small", ENTRY // 4)


def room_for(open_tier: OpenTier, entries_bytes: int) -> int:
    """A bound that leaves `entries_bytes` for entries, after what an empty tier keeps for its database files.

    Measured on an empty probe tier of that bound: every tier of a few MiB reserves the same (the log's
    cap is at its minimum there).
    """
    probe = open_tier("probe", size_limit=entries_bytes)
    return probe.config.size_limit - probe.entries_limit + entries_bytes


def test_over_limit_evicts_and_stays_bounded(open_tier: OpenTier, observer: RecordingObserver) -> None:
    limit = room_for(open_tier, ENTRY * 7 // 2)
    tier = open_tier(size_limit=limit)
    for key in "abcd":
        put(tier, key, payload(key))
    volume, entries = tier.stats()
    assert volume <= limit
    assert entries < 4
    assert observer.evictions >= 1


def test_lru_evicts_least_recently_read(open_tier: OpenTier, observer: RecordingObserver) -> None:
    idle = 4.8  # a hit refreshes the idle clock once it is 0.3 s old; nothing expires within the test
    tier = open_tier(size_limit=room_for(open_tier, ENTRY * 7 // 2), idle=idle)
    put(tier, "a", payload("a"))
    committed_a = time.time()
    put(tier, "b", payload("b"))
    put(tier, "c", payload("c"))
    wait_for_clock(committed_a + touch_interval(idle) + 0.05)
    assert read(tier, "a") == payload("a")  # a is now more recently touched than b and c
    put(tier, "d", payload("d"))
    present = {key: read(tier, key) == payload(key) for key in "abcd"}
    assert present == {"a": True, "b": False, "c": True, "d": True}
    assert observer.evictions == 1


def test_idle_entry_expires(open_tier: OpenTier) -> None:
    idle = 1.0
    tier = open_tier(idle=idle)
    put(tier, "a", payload("a"))
    assert read(tier, "a") == payload("a")
    last_read = time.time()
    wait_for_clock(last_read + idle + 0.1)
    assert tier.lookup("a") is None


def test_reads_keep_entry_alive(open_tier: OpenTier) -> None:
    idle = 1.0
    tier = open_tier(idle=idle)
    put(tier, "a", payload("a"))
    started = time.time()
    for _ in range(8):  # 8 reads 0.25 s apart span twice the idle period
        wait_for_clock(time.time() + idle / 4)
        assert read(tier, "a") == payload("a")
    assert time.time() - started > idle


def count_touches(tier: DiskTier, monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record the SQLite writes a hit makes (the only monkeypatch in this module: it counts calls)."""
    touches: list[float] = []
    real_touch = tier._cache.touch

    def counting_touch(key: str, expire: float | None = None) -> bool:
        touches.append(time.time())
        return bool(real_touch(key, expire=expire))

    monkeypatch.setattr(tier._cache, "touch", counting_touch)
    return touches


def test_hot_entry_not_written_per_hit(open_tier: OpenTier, monkeypatch: pytest.MonkeyPatch) -> None:
    tier = open_tier(idle=3600.0)  # touch interval 60 s: far longer than 100 lookups take
    put(tier, "a", payload("a"))
    touches = count_touches(tier, monkeypatch)
    for _ in range(100):
        assert read(tier, "a") is not None
    assert len(touches) <= 1


def test_stale_hit_refreshes_once(open_tier: OpenTier, monkeypatch: pytest.MonkeyPatch) -> None:
    idle = 1.6
    tier = open_tier(idle=idle)
    put(tier, "a", payload("a"))
    committed = time.time()
    touches = count_touches(tier, monkeypatch)
    wait_for_clock(committed + touch_interval(idle) + 0.02)
    assert read(tier, "a") is not None
    assert len(touches) == 1
    for _ in range(20):
        assert read(tier, "a") is not None
    # Further hits within the next interval leave the fresh idle clock alone.
    assert len(touches) <= 2


def test_remove_leftovers(open_tier: OpenTier) -> None:
    tier = open_tier()
    put(tier, "kept", payload("kept"))
    parts = [write_part(tier, payload(str(i), 100)) for i in range(3)]
    assert tier.remove_leftovers() == len(parts)
    assert not any(part.exists() for part in parts)
    assert tier.remove_leftovers() == 0
    assert read(tier, "kept") == payload("kept")


def corrupt(tier: DiskTier) -> None:
    """Close the tier and overwrite its database with garbage (diskcache reconnects on next use)."""
    tier.close()
    (tier.config.path / "cache.db").write_bytes(b"not a database " * 4096)


def test_corrupt_db_lookup_is_miss(open_tier: OpenTier, observer: RecordingObserver) -> None:
    tier = open_tier()
    put(tier, "a", payload("a"))
    corrupt(tier)
    assert tier.lookup("a") is None
    assert [(name, op) for name, op, _ in observer.errors] == [("storage", "lookup")]
    assert isinstance(observer.errors[0][2], sqlite3.DatabaseError)
    assert tier.stats() == (0, 0)
    assert tier.is_open() is False


def test_corrupt_db_commit_reports_error(open_tier: OpenTier, observer: RecordingObserver) -> None:
    tier = open_tier()
    corrupt(tier)
    data = payload("a")
    part = write_part(tier, data)
    assert tier.commit("a", part, meta_for(data)) is False
    assert [op for _, op, _ in observer.errors] == ["commit"]
    assert not part.exists()


def test_failed_commit_leaves_no_file(open_tier: OpenTier) -> None:
    tier = open_tier()
    corrupt(tier)
    data = payload("a")
    assert tier.commit("a", write_part(tier, data), meta_for(data)) is False
    leaked = [p for p in tier.config.path.rglob("*") if p.is_file() and p.read_bytes() == data]
    assert leaked == []


def test_unreadable_database_at_start_up_opens_an_empty_tier(
        open_tier: OpenTier, observer: RecordingObserver) -> None:
    first = open_tier()
    put(first, "kept", payload("kept"))
    first.close()
    database = first.config.path / "cache.db"
    database.write_bytes(os.urandom(8192))

    reopened = open_tier()

    assert [operation for _, operation, _ in observer.errors] == ["open"]
    assert reopened.is_open()
    assert read(reopened, "kept") is None
    put(reopened, "new", payload("new"))
    assert read(reopened, "new") == payload("new")


def test_an_entry_idle_past_expiry_is_stale_until_its_grace_ends(tmp_path: Path, observer: RecordingObserver) -> None:
    tier = DiskTier(TierConfig("storage", tmp_path / "storage", 1 << 30, 1.0, stale_seconds=1.0), observer)
    try:
        put(tier, "a", payload("a"))
        committed = time.time()
        fresh = tier.lookup("a")
        assert fresh is not None and not fresh.stale
        fresh.file.close()

        wait_for_clock(committed + 1.05)
        for _ in range(3):  # a stale hit does not refresh the idle clock
            stale = tier.lookup("a")
            assert stale is not None and stale.stale
            with stale.file:
                assert stale.file.read() == payload("a")
        tier.cull_expired()
        assert tier.lookup("a") is not None, "the sweeper keeps a stale entry through its grace"

        wait_for_clock(committed + 2.05)
        tier.cull_expired()
        assert tier.lookup("a") is None
        assert observer.evictions == 1 and tier.stats()[1] == 0
    finally:
        tier.close()


def test_stale_entries_still_count_against_the_size_bound_and_go_first(
        tmp_path: Path, observer: RecordingObserver, open_tier: OpenTier) -> None:
    limit = room_for(open_tier, ENTRY * 7 // 2)
    tier = DiskTier(TierConfig("storage", tmp_path / "bounded", limit, 1.0, stale_seconds=3600.0), observer)
    try:
        put(tier, "old", payload("old"))
        wait_for_clock(time.time() + 1.05)
        old = tier.lookup("old")
        assert old is not None and old.stale
        old.file.close()
        for key in ("b", "c", "d"):
            put(tier, key, payload(key))
        assert tier.lookup("old") is None, "the least recently touched entry, the stale one, goes first"
        assert [read(tier, key) for key in ("b", "c", "d")] == [payload(key) for key in ("b", "c", "d")]
    finally:
        tier.close()
