"""Disk tiers for tests: an observer that records, tiers opened under a folder and closed after, entries."""

import hashlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from cache.config import TierConfig
from cache.disk_tier import DiskTier
from cache.entry import EntryMeta, ObjectInfo

ENTRY = 256 * 1024


class RecordingObserver:
    """Keeps every event a tier reports."""

    def __init__(self) -> None:
        self.errors: list[tuple[str, str, BaseException]] = []
        self.evictions = 0

    def cache_error(self, tier: str, operation: str, error: BaseException) -> None:
        """Keep the error."""
        self.errors.append((tier, operation, error))

    def cache_evicted(self, tier: str) -> None:
        """Count the eviction."""
        self.evictions += 1


OpenTier = Callable[..., DiskTier]


@contextmanager
def tier_opener(folder: Path, observer: RecordingObserver) -> Iterator[OpenTier]:
    """Open tiers under `folder` (size in bytes, idle in seconds); all are closed on leaving."""
    opened: list[DiskTier] = []

    def open_(name: str = "storage", size_limit: int = 1 << 30, idle: float = 3600.0) -> DiskTier:
        tier = DiskTier(TierConfig(name, folder / name, size_limit, idle), observer)
        opened.append(tier)
        return tier

    try:
        yield open_
    finally:
        for tier in opened:
            tier.close()


def payload(label: str, size: int = ENTRY) -> bytes:
    """`size` bytes that depend on `label` alone."""
    seed = hashlib.sha256(label.encode()).digest()
    return (seed * (size // len(seed) + 1))[:size]


def meta_for(data: bytes) -> EntryMeta:
    """An entry's metadata for `data`, its ETag a digest of it."""
    return EntryMeta(ObjectInfo(len(data), f'"{hashlib.md5(data).hexdigest()}"', 1_700_000_000.0, "image/png"))


def write_part(tier: DiskTier, data: bytes) -> Path:
    """A part file of `tier` holding `data`, ready to commit."""
    part = tier.new_part_path()
    part.write_bytes(data)
    return part


def put(tier: DiskTier, key: str, data: bytes) -> None:
    """Commit `data` under `key`; the commit must succeed."""
    assert tier.commit(key, write_part(tier, data), meta_for(data))


def read(tier: DiskTier, key: str) -> bytes | None:
    """The entry's bytes, or None on a miss (the entry's file is closed either way)."""
    entry = tier.lookup(key)
    if entry is None:
        return None
    with entry.file:
        return entry.file.read()
