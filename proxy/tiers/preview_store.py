"""Where finished previews are kept: small ones in memory, every one in the previews disk tier.

A gallery asks for the same few thousand thumbnails again and again; serving those from memory skips
the tier's SQLite lookup and the file open. The disk tier stays the record (it survives restarts and
holds what memory can't).
"""

import asyncio
import time
from typing import BinaryIO

from cachetools import LRUCache

from cache.disk_tier import DiskTier
from cache.entry import CachedEntry, EntryMeta
from proxy.metrics.registry import Metrics
from proxy.tiers.purge_guard import PurgeGuard


class StoredPreview:
    """A preview body with its metadata: bytes in memory, or an open file from the disk tier."""

    __slots__ = ("data", "file", "meta", "stored_at")

    def __init__(self, meta: EntryMeta, data: bytes | None = None, file: BinaryIO | None = None,
                 stored_at: float | None = None) -> None:
        self.meta = meta
        self.data = data
        self.file = file
        self.stored_at = stored_at  # epoch seconds it was stored (for Age); None for a render's own result


class PreviewStore:
    """Memory (LRU by bytes) in front of the previews disk tier. Use from the event loop only."""

    def __init__(self, tier: DiskTier, metrics: Metrics, memory_bytes: int, memory_entry_max: int,
                 guard: PurgeGuard | None = None) -> None:
        self.tier = tier
        self._metrics = metrics
        self._memory_entry_max = memory_entry_max
        self.guard = guard or PurgeGuard()
        # Values are (meta, body, when it was stored).
        self._memory: LRUCache[str, tuple[EntryMeta, bytes, float]] | None = (
            LRUCache(maxsize=memory_bytes, getsizeof=lambda item: len(item[1]) + 200) if memory_bytes else None)
        if self._memory is not None:
            self.guard.on_purge(self._memory.clear)  # a purge in any process: memory may hold what it removed

    async def lookup(self, key: str) -> StoredPreview | None:
        """A stored preview, from memory if there, else from disk (small ones are then kept in memory)."""
        if self._memory is not None:
            found = self._memory.get(key)
            if found is not None:
                return StoredPreview(found[0], data=found[1], stored_at=found[2])
        read_up_to = self._memory_entry_max if self._memory is not None else -1
        entry, data, error = await asyncio.to_thread(_lookup_and_read, self.tier, key, read_up_to)
        if entry is None:
            return None
        if error is not None:
            self._metrics.cache_error(self.tier.name, "read", error)
            return None
        if data is None:
            return StoredPreview(entry.meta, file=entry.file, stored_at=entry.stored_at)
        if len(data) != entry.meta.info.size:
            return None
        self._remember(key, entry.meta, data, entry.stored_at)
        return StoredPreview(entry.meta, data=data, stored_at=entry.stored_at)

    async def store(self, key: str, meta: EntryMeta, data: bytes, source: str, since: int) -> None:
        """Keep a new preview of the original `source`, rendered from generation `since` on: in memory
        at once, on disk off the event loop (best effort; refused if a purge came since).

        Not in memory if a purge has come since: it may hold what the purge removed. A purge during the
        disk write moves the generation, which drops memory before the next lookup.
        """
        if self.guard.generation() == since:
            self._remember(key, meta, data, time.time())
        await asyncio.to_thread(self.guard.store_bytes, self.tier, key, data, meta, source, since)

    def _remember(self, key: str, meta: EntryMeta, data: bytes, stored_at: float) -> None:
        if self._memory is not None and len(data) <= self._memory_entry_max:
            self._memory[key] = (meta, data, stored_at)


def _lookup_and_read(tier: DiskTier, key: str, read_up_to: int) -> tuple[CachedEntry | None, bytes | None,
                                                                          OSError | None]:
    """The tier's entry for `key`, and its body read whole (its file then closed) if it is at most
    `read_up_to` bytes, or the error that read raised: one trip off the event loop for both (a small hit's
    two trips cost more than its lookup and its read together)."""
    entry = tier.lookup(key)
    if entry is None or entry.meta.info.size > read_up_to:
        return entry, None, None
    try:
        return entry, _read_all(entry.file), None
    except OSError as error:
        return entry, None, error


def _read_all(file: BinaryIO) -> bytes:
    with file:
        return file.read()
