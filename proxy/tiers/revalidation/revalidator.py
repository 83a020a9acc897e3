"""The background check of a cached original against its provider, as nginx's proxy_cache_revalidate
with stale-while-revalidate.

An entry's age is the modification time of its file in the tier: set when the fill wrote it, moved to
now when a check finds it unchanged (utime), so every process sharing the tier sees the same age
without another table. A hit on an entry older than the period serves the entry and starts a check:

- one per key at a time among all processes: a non-blocking try of the key's revalidation lock
  (cache.key_lock); a process that loses serves its copy and does nothing more, and the winner looks
  at the entry's age again under the lock (another process may have just checked it);
- a conditional GET with the stored ETag (If-None-Match): "not modified" moves the age to now;
  a new version is written to a part file and committed in place of the old one through the same
  purge-checked commit as a fill (a purge meanwhile refuses it); an object gone from the provider
  drops the entry;
- a failure keeps the copy, logs one line, and this process leaves the key alone for one period
  (so a provider that is down is not asked on every hit).

Outcomes are counted in preview_proxy_revalidations_total{tier,provider,outcome}.
"""

import asyncio
import contextlib
import logging
import os
import time

from cache.disk_tier import DiskTier
from cache.entry import CachedEntry, EntryMeta
from cache.errors import LockTimeout
from cache.fill import Fill
from cache.key_lock import tier_lock
from proxy.metrics.registry import Metrics
from proxy.storage.errors import ObjectNotFound
from proxy.storage.provider import NotModified, ObjectRef, StorageProvider
from proxy.tiers.purge_guard import PurgeGuard

log = logging.getLogger(__name__)

# The revalidation lock's name beside the key's fill lock: a check never holds up a fill (a miss in
# another process), and two checks of the same key exclude each other.
LOCK_SUFFIX = "\n#revalidate"
NOT_MODIFIED, CHANGED, FAILED = "not_modified", "changed", "failed"
# Keys remembered as failed lately, at most: past it the memory is dropped whole (a provider down for
# long, with many keys asked), which costs one more attempt per key, not unbounded memory.
QUIET_KEYS_MAX = 10_000


def entry_age(entry: CachedEntry) -> float:
    """Seconds since the entry was stored or last found unchanged. Blocks briefly (fstat of an open file)."""
    return time.time() - os.fstat(entry.file.fileno()).st_mtime


class Revalidator:
    """Background checks of one provider's originals in one tier, every `period` seconds at most (0: never)."""

    def __init__(self, provider: StorageProvider, tier: DiskTier, metrics: Metrics, guard: PurgeGuard,
                 period: float) -> None:
        self.period = period
        self._provider = provider
        self._tier = tier
        self._metrics = metrics
        self._guard = guard
        # The `provider` label: a links entry's own (link:<name>) when the provider carries one.
        self._label = str(getattr(provider, "label", provider.provider_id))
        self._running: dict[str, asyncio.Task[None]] = {}
        self._quiet_until: dict[str, float] = {}  # key -> monotonic time: failed lately, leave it alone

    def due(self, age: float) -> bool:
        """True if an entry of this `age` is to be checked."""
        return self.period > 0 and age >= self.period

    def start(self, ref: ObjectRef, key: str) -> None:
        """Check `key` in the background, unless this process already does or it failed lately."""
        if key in self._running or self._quiet_until.get(key, 0.0) > time.monotonic():
            return
        self._quiet_until.pop(key, None)
        task = asyncio.get_running_loop().create_task(self._check(ref, key))
        self._running[key] = task
        task.add_done_callback(lambda _: self._running.pop(key, None))

    async def _check(self, ref: ObjectRef, key: str) -> None:
        try:
            async with tier_lock(self._tier, key + LOCK_SUFFIX, 0.0):
                await self._check_locked(ref, key)
        except LockTimeout:
            pass  # another process checks it now: the copy is served meanwhile
        except asyncio.CancelledError:
            raise
        except Exception as error:
            self._metrics.revalidated(self._tier.name, self._label, FAILED)
            if len(self._quiet_until) >= QUIET_KEYS_MAX:
                self._quiet_until.clear()
            self._quiet_until[key] = time.monotonic() + self.period
            # A provider error's reason is one line and names no secret; obstore's own text was logged by it.
            reason = getattr(error, "reason", "") or str(error) or type(error).__name__
            log.warning("revalidation of %s/%s failed, serving the cached copy for another %gs: %s",
                        ref.bucket, ref.key, self.period, reason)

    async def _check_locked(self, ref: ObjectRef, key: str) -> None:
        entry = await asyncio.to_thread(self._tier.lookup, key)
        if entry is None:
            return  # evicted or purged meanwhile: the next request fills it afresh
        try:
            if entry.stale or not self.due(await asyncio.to_thread(entry_age, entry)):
                return  # checked by another process a moment ago (or the next request refills it)
            etag, path = entry.meta.info.etag, entry.path
        finally:
            entry.file.close()
        since = self._guard.generation()  # before the request: a purge after it refuses the commit
        try:
            result = await self._provider.get(ref, if_none_match=etag)
        except ObjectNotFound:
            # Deleted at the source: a copy served on would never go away.
            await asyncio.to_thread(self._tier.remove, key)
            self._metrics.revalidated(self._tier.name, self._label, CHANGED)
            log.info("revalidation: %s/%s is gone from the provider; its cached copy is dropped", ref.bucket, ref.key)
            return
        if isinstance(result, NotModified):
            with contextlib.suppress(FileNotFoundError):  # replaced or evicted meanwhile: nothing to refresh
                await asyncio.to_thread(os.utime, path)
            self._metrics.revalidated(self._tier.name, self._label, NOT_MODIFIED)
            return
        meta = EntryMeta(result.info)
        part = await asyncio.to_thread(self._tier.new_part_path)
        fill = await Fill.open(part, meta)
        committed = await fill.run(result.chunks, lambda: asyncio.to_thread(
            self._guard.commit, self._tier, key, part, meta, key, since))
        self._metrics.revalidated(self._tier.name, self._label, CHANGED)
        log.info("revalidation: %s/%s changed (%s -> %s)%s", ref.bucket, ref.key, etag, meta.info.etag,
                 "" if committed else "; not kept (purged meanwhile, or the tier refused it)")

    @property
    def busy(self) -> bool:
        """True while a check runs."""
        return bool(self._running)

    async def close(self) -> None:
        """Cancel the checks still running (at shutdown)."""
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
