"""What the tiers of one process need of purging: the purge generation, and commits checked against purges.

- `generation()` reads the shared counter (cache.purge.generation: a memory load). When it has moved
  since this process last looked, a purge happened in some process: every in-memory cache registered
  with `on_purge` is dropped first (hot previews, preview bodies, trusted source versions, known
  pass-throughs). Dropping them all is coarse, but purges are rare admin actions and these caches
  refill from disk in a moment; a per-source stamp would cost a lookup on every hit instead.
- A fill or a render reads `generation()` when it starts and commits through `commit`/`store_bytes`
  with it, so the purge index refuses it if a purge since then covers it (no resurrection).
- Jobs (cache.singleflight, the key locks) are keyed by the generation too (`job_key`): a request made
  after a purge never joins a fill or render started before it, which may hold the old version.

Without an index (tests that build tiers alone), commits go straight to the tier and the generation stays 0.
"""

from collections.abc import Callable
from pathlib import Path

from cache.disk_tier import DiskTier
from cache.entry import EntryMeta
from cache.purge.index import PurgeIndex


class PurgeGuard:
    """One per process, shared by its tiers' services. `generation` runs on the event loop; the commits block."""

    def __init__(self, index: PurgeIndex | None = None) -> None:
        self.index = index
        self._seen = index.generation.read() if index is not None else 0
        self._drops: list[Callable[[], None]] = []

    def on_purge(self, drop: Callable[[], None]) -> None:
        """Call `drop` (clear an in-memory cache) whenever a purge has happened since the last look."""
        self._drops.append(drop)

    def generation(self) -> int:
        """The purge generation now; first drops the memory caches if it moved."""
        if self.index is None:
            return 0
        now = self.index.generation.read()
        if now != self._seen:
            self._seen = now
            for drop in self._drops:
                drop()
        return now

    def job_key(self, key: str) -> str:
        """`key` under the current generation: the name of its job and of its cross-process lock."""
        generation = self.generation()
        return f"{key}\n#{generation}" if generation else key

    def commit(self, tier: DiskTier, key: str, part: Path, meta: EntryMeta, source: str, since: int) -> bool:
        """Commit a fill that started at generation `since`, indexed under the original `source`. Blocks."""
        if self.index is None:
            return tier.commit(key, part, meta)
        return self.index.commit(tier, key, part, meta, source, since)

    def store_bytes(self, tier: DiskTier, key: str, data: bytes, meta: EntryMeta, source: str, since: int) -> bool:
        """Store a body made in memory by a render that started at generation `since`. Blocks."""
        if self.index is None:
            return tier.store_bytes(key, data, meta)
        return self.index.store_bytes(tier, key, data, meta, source, since)
