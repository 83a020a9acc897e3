"""Purges: an original with every preview and conversion made from it, a prefix of originals, or one preview.

The work is the purge index's (cache.purge.index): find the entries by source, remove them from the
shared disk tiers, record the purge and advance the generation that every process watches, all under
the index's write lock, off the event loop. What stays here: naming the target, counting the entries
removed per tier, and dropping this process's memory at once (other processes drop theirs at their
next lookup, proxy.tiers.purge_guard).
"""

import asyncio
import logging
import sqlite3
import time
from collections.abc import Mapping

from cache.disk_tier import DiskTier
from cache.purge.index import ENTRY, PREFIX, SOURCE, PurgeIndex
from proxy.metrics.registry import Metrics
from proxy.storage.provider import ObjectRef
from proxy.tiers.previews import PreviewSource
from proxy.tiers.purge_guard import PurgeGuard

log = logging.getLogger(__name__)
PREVIEWS_TIER = "previews"
# Each sweep prunes the index's rows of evicted entries a batch at a time, for up to this long: one pass
# over the whole table costs a lookup per row, so it is spread over sweeps rather than taken at once.
PRUNE_BATCH = 2000
PRUNE_SECONDS = 0.5


class Purger:
    """Runs purges against the tiers of this server; one per app."""

    def __init__(self, index: PurgeIndex, guard: PurgeGuard, tiers: tuple[DiskTier, ...], metrics: Metrics) -> None:
        self._index = index
        self._guard = guard
        self._tiers: Mapping[str, DiskTier] = {tier.name: tier for tier in tiers}
        self._metrics = metrics

    async def original(self, source: PreviewSource, ref: ObjectRef) -> dict[str, int]:
        """Remove the original `ref` of `source` and everything made from it; entries removed per tier."""
        return await self._run(SOURCE, source.original_key(ref))

    async def prefix(self, source: PreviewSource, bucket: str, prefix: str) -> dict[str, int]:
        """Remove every original of `source`'s `bucket` whose key starts with `prefix`, and what was made from them."""
        return await self._run(PREFIX, source.original_key(ObjectRef(bucket, prefix)))

    async def previews(self, key_prefixes: tuple[str, ...]) -> dict[str, int]:
        """Remove the previews whose keys start with one of `key_prefixes` (every version of one URL's preview)."""
        removed = dict.fromkeys(self._tiers, 0)
        for key_prefix in key_prefixes:
            for tier, count in (await self._run(ENTRY, key_prefix, PREVIEWS_TIER)).items():
                removed[tier] += count
        return removed

    def prune_index(self) -> None:
        """Drop index rows of entries the tiers evicted, and old purge records, for up to PRUNE_SECONDS. Blocks."""
        deadline = time.monotonic() + PRUNE_SECONDS
        try:
            while not self._index.prune(self._tiers, PRUNE_BATCH) and time.monotonic() < deadline:
                pass
        except sqlite3.Error as error:
            log.warning("purge index: pruning failed, tried again at the next sweep: %s", error)

    def close(self) -> None:
        """Close the index. Blocks."""
        self._index.close()

    async def _run(self, kind: str, target: str, tier: str = "") -> dict[str, int]:
        removed = await asyncio.to_thread(self._index.purge, self._tiers, kind, target, tier)
        self._guard.generation()  # this process drops its memory now, before the answer goes out
        for name, count in removed.items():
            self._metrics.purged(name, count)
        return removed
