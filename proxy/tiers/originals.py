"""Where an original's bytes come from: local disk in place, the storage tier, or the provider.

`locate` finds the representation (its metadata and a body source) and `body` streams any byte
range of it. On a miss exactly one fill per key runs, detached from the request that started it;
every other request for the key in this process tails the same part file. Across worker processes,
the fill holds the key's tier lock (cache.key_lock): another process waits for it, then serves the
committed entry. A stale copy in the tier is served (X-Cache: STALE) only when the provider fails.
An entry older than the revalidation period (`revalidate`, 0: never) is served and checked against
the provider in the background (proxy.tiers.revalidation).
"""

import asyncio
import enum
import logging
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import BinaryIO, cast

from cache.disk_tier import DiskTier
from cache.entry import CachedEntry, EntryMeta
from cache.errors import FillFailed
from cache.fill import Fill
from proxy.errors import ProxyError, UpstreamFailed, UpstreamTimeout
from proxy.http.body import FileSpans
from proxy.metrics.registry import Metrics
from proxy.storage.errors import ProviderFailure
from proxy.storage.local import LocalProvider
from proxy.storage.provider import ByteSpan, ObjectInfo, ObjectRef, ObjectStream, StorageProvider
from proxy.tiers.keys import original_key
from proxy.tiers.once_per_key import Delivery, OncePerKey, Outcome
from proxy.tiers.purge_guard import PurgeGuard
from proxy.tiers.range_file import ProviderRangeFile
from proxy.tiers.revalidation.revalidator import Revalidator, entry_age

log = logging.getLogger(__name__)

# A range that starts within this distance of what a fill has written waits for the fill; one
# further ahead is fetched from the provider on its own, so a seek to the end of a 4 GB video does
# not wait for 4 GB.
TAIL_WINDOW = 4 * 1024 * 1024
# How long a process waits for another process's fill of the same original. After that it streams
# the original from the provider itself, without filling (nginx's proxy_cache_lock_timeout, and its
# default). A waiting client gets no bytes until the fill is done, because the fill is in another process.
FILL_LOCK_WAIT = 5.0
# An original rendered without the tier (it can't take a fill) is held in memory up to this size.
SPOOL_IN_MEMORY = 16 * 1024 * 1024


class FilledElsewhere(enum.Enum):
    """A fill's outcome when another process committed the entry first: look it up in the tier."""

    COMMITTED = "committed"


# A Fill to tail, FilledElsewhere.COMMITTED, or None when the tier can't take a fill right now.
FillOutcome = Fill | FilledElsewhere | None


@dataclass
class Located:
    """An original found: its metadata, X-Cache status, and exactly one body source (or none for HEAD)."""

    info: ObjectInfo
    cache_status: str
    file: BinaryIO | None = None
    fill: Fill | None = None
    stored_at: float | None = None  # when the tier's entry served was written (for Age); None if none was read

    def close(self) -> None:
        """Release the open file, if any."""
        if self.file is not None:
            self.file.close()


class Originals:
    """Serves originals: in place for local disk, through the storage tier for remote providers."""

    def __init__(self, provider: StorageProvider, local: LocalProvider | None, tier: DiskTier,
                 metrics: Metrics, namespace: str, stale_if_error: bool = True,
                 guard: PurgeGuard | None = None, revalidate: float = 0.0) -> None:
        self._provider = provider
        self._stale_if_error = stale_if_error
        self._local = local
        self._tier = tier
        self._metrics = metrics
        self._namespace = namespace
        self._guard = guard or PurgeGuard()
        self._fills: OncePerKey[FillOutcome] = OncePerKey(tier, metrics, job_key=self._guard.job_key)
        self._revalidator = Revalidator(provider, tier, metrics, self._guard, revalidate)

    @property
    def tier_name(self) -> str:
        """The name of the tier that keeps these originals."""
        return self._tier.name

    async def locate(self, ref: ObjectRef, want_body: bool) -> Located:
        """Find the original. With `want_body`, a miss starts (or joins) the fill of the storage tier.

        A stale copy (idle past the tier's idle period) is a miss, unless the provider then fails:
        with stale-if-error it is served, marked STALE.
        """
        if self._local is not None:
            file, info = await asyncio.to_thread(self._local.open_in_place, ref)
            return Located(info, "BYPASS", file=file)
        key = self.cache_key(ref)
        entry = await self._lookup(ref, key)
        if entry is not None and not entry.stale:
            self._fills.record(Outcome.FOUND)
            return Located(entry.meta.info, "HIT", file=entry.file, stored_at=entry.stored_at)
        try:
            located = await self._fetch(ref, key, want_body)
        except (UpstreamFailed, UpstreamTimeout) as error:
            if entry is None or not self._stale_if_error:
                raise
            self._stale_served(ref, error)
            return Located(entry.meta.info, "STALE", file=entry.file, stored_at=entry.stored_at)
        except BaseException:
            if entry is not None:
                entry.file.close()
            raise
        if entry is not None:
            entry.file.close()
        return located

    async def _fetch(self, ref: ObjectRef, key: str, want_body: bool) -> Located:
        """A miss: the provider's HEAD, or the fill this request starts or joins."""
        if not want_body:
            info = await self._provider.head(ref)
            self._fills.record(Outcome.MADE)
            return Located(info, "MISS")
        got = await self._fills.fetch(
            key, lambda: _committed_elsewhere(self._tier, key), lambda deliver: self._fill_locked(ref, key, deliver),
            lambda: _fill_lock_timed_out(ref), FILL_LOCK_WAIT)
        fill, outcome = got.value, got.outcome
        if fill is FilledElsewhere.COMMITTED:
            entry = await asyncio.to_thread(self._tier.lookup, key)
            if entry is not None:
                self._fills.record(Outcome.FOUND)
                return Located(entry.meta.info, "HIT", file=entry.file, stored_at=entry.stored_at)
            # Evicted at once (a tier smaller than its traffic): stream from the provider.
            fill, outcome = None, Outcome.MADE if got.started else Outcome.JOINED
        elif fill is not None and fill.failed:
            # Joined a fill that failed a moment ago, before its key was free again (a client retrying
            # at once after its aborted response): that one can only fail again, so go to the provider.
            fill, outcome = None, Outcome.MADE
        # Like nginx with proxy_cache_lock: only the request that went to the provider is a miss;
        # those that joined its fill are served from the entry as it fills.
        self._fills.record(outcome)
        status = "MISS" if outcome is Outcome.MADE else "HIT"
        if fill is None:  # the tier can't take a fill right now; stream from the provider instead
            return Located(await self._provider.head(ref), status)
        return Located(fill.meta.info, status, fill=fill)

    async def describe(self, ref: ObjectRef) -> ObjectInfo:
        """The original's metadata without touching its bytes: stat, the tier's row, or a provider HEAD."""
        if self._local is not None:
            return await asyncio.to_thread(self._local.stat_in_place, ref)
        entry = await self._lookup(ref, self.cache_key(ref))
        if entry is not None:
            entry.file.close()
            if not entry.stale:
                return entry.meta.info
        try:
            return await self._provider.head(ref)
        except (UpstreamFailed, UpstreamTimeout) as error:
            if entry is None or not self._stale_if_error:
                raise
            self._stale_served(ref, error)
            return entry.meta.info

    async def _lookup(self, ref: ObjectRef, key: str) -> CachedEntry | None:
        """The tier's entry for `key`; a fresh one older than the revalidation period starts a check."""
        if self._revalidator.period <= 0:
            return await asyncio.to_thread(self._tier.lookup, key)
        entry, age = await asyncio.to_thread(_lookup_with_age, self._tier, key)
        if entry is not None and not entry.stale and self._revalidator.due(age):
            self._revalidator.start(ref, key)  # stale-while-revalidate: this request is served the copy
        return entry

    def _stale_served(self, ref: ObjectRef, error: ProxyError) -> None:
        self._fills.record(Outcome.STALE)
        log.warning("serving a stale copy of %s/%s: the provider failed: %s", ref.bucket, ref.key, error.reason)

    async def open_for_render(self, ref: ObjectRef) -> Located:
        """The whole original as a readable file (for a worker thread), fetched into the tier if absent.

        Local-first: the file on disk or in the storage tier is used when there is one; the provider
        is asked only on a miss, through the same single fill as any other request.
        """
        located = await self.locate(ref, want_body=True)
        if located.file is not None:
            return located
        if located.fill is not None:
            try:
                await located.fill.finished()
            except FillFailed as error:
                raise ProviderFailure(f"fetching the original failed: {error}") from None
            located.file = located.fill.open_reader()
            return located
        # The tier can't take a fill: spool the original (memory, then a temporary file).
        stream = await self._provider.get(ref)
        assert isinstance(stream, ObjectStream)
        spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115 - owned by Located
        try:
            async for chunk in stream.chunks:
                await asyncio.to_thread(spool.write, chunk)
            spool.seek(0)
        except BaseException:
            spool.close()
            raise
        located.file = cast(BinaryIO, spool)
        return located

    def body(self, ref: ObjectRef, located: Located, start: int, end: int) -> AsyncIterator[bytes] | FileSpans:
        """Bytes [start, end) of a located original that has no file to send directly.

        Spans of the fill's part file as they are written (sendfile(2) sends them without a copy), or,
        for a range far ahead of the fill, chunks from the provider.
        """
        fill = located.fill
        if fill is not None and (start <= fill.written + TAIL_WINDOW or fill.done):
            return FileSpans(fill.reader_fd, fill.spans(start, end))
        return self._provider_chunks(ref, start, end)

    async def _provider_chunks(self, ref: ObjectRef, start: int, end: int) -> AsyncIterator[bytes]:
        if end <= start:
            return  # an empty object: obstore rejects a zero-length range
        stream = await self._provider.get(ref, ByteSpan(start, end))
        assert isinstance(stream, ObjectStream)
        async for chunk in stream.chunks:
            yield chunk

    def open_ranges(self, ref: ObjectRef, info: ObjectInfo, timeout: float) -> BinaryIO:
        """Version `info.etag` of the original as a seekable file read by byte ranges from the provider.

        For a reader that seeks about a large original not worth fetching whole (FFmpeg after one
        video frame). Read it from a worker thread: each range is fetched on this event loop.
        """
        return cast(BinaryIO, ProviderRangeFile(self._provider, ref, info, asyncio.get_running_loop(), timeout=timeout))

    def cache_key(self, ref: ObjectRef) -> str:
        """Storage-tier key: (provider namespace, bucket, key)."""
        return original_key(self._namespace, ref)

    def original_key(self, ref: ObjectRef) -> str:
        """The original's key in the purge index: its storage-tier key (PreviewSource)."""
        return self.cache_key(ref)

    async def _fill_locked(self, ref: ObjectRef, key: str, deliver: Delivery[FillOutcome]) -> None:
        """The one fill of `key`, under its tier lock: it hands the fill to the waiters once it can be tailed."""
        since = self._guard.generation()  # before the fetch: a purge after it refuses the commit
        stream = await self._provider.get(ref)  # a failure here reaches every waiter
        try:
            assert isinstance(stream, ObjectStream)
            meta = EntryMeta(stream.info)
            try:
                part = await asyncio.to_thread(self._tier.new_part_path)
                fill = await Fill.open(part, meta)
            except OSError as error:
                self._metrics.cache_error(self._tier.name, "open part file", error)
                log.warning("tier %s: can't start a fill, streaming from the provider: %s", self._tier.name, error)
                await _close_stream(stream)
                deliver.set_result(None)
                return
            deliver.set_result(fill)
            # A body that moves itself into the part file (splice(2)) skips the trip through memory.
            await fill.run(stream.file_body or stream.chunks,
                           lambda: asyncio.to_thread(self._guard.commit, self._tier, key, part, meta, key, since))
        except Exception as error:
            log.warning("fill of %s/%s failed: %s", ref.bucket, ref.key, error or type(error).__name__)
            if not deliver.done():
                raise  # the waiters get the error

    @property
    def busy(self) -> bool:
        """True while a fill runs (a links reload keeps a retired Originals until it is idle)."""
        return self._fills.busy or self._revalidator.busy

    async def close(self) -> None:
        """Cancel fills and revalidations still running (at shutdown)."""
        await self._revalidator.close()
        await self._fills.close()


async def _committed_elsewhere(tier: DiskTier, key: str) -> FilledElsewhere | None:
    """COMMITTED if the tier holds a fresh entry for `key` (another process filled it since our miss)."""
    return FilledElsewhere.COMMITTED if await asyncio.to_thread(_has_fresh_entry, tier, key) else None


def _lookup_with_age(tier: DiskTier, key: str) -> tuple[CachedEntry | None, float]:
    """The entry for `key` and its age (see proxy.tiers.revalidation). Blocks."""
    entry = tier.lookup(key)
    if entry is None:
        return None, 0.0
    try:
        return entry, entry_age(entry)
    except OSError:
        return entry, 0.0


def _has_fresh_entry(tier: DiskTier, key: str) -> bool:
    entry = tier.lookup(key)
    if entry is None:
        return False
    entry.file.close()
    return not entry.stale


def _fill_lock_timed_out(ref: ObjectRef) -> FillOutcome:
    log.info("another process is still filling %s/%s; streaming it from the provider", ref.bucket, ref.key)
    return None


async def _close_stream(stream: ObjectStream) -> None:
    if stream.file_body is not None:
        stream.file_body.close()  # its chunks, never started, hold nothing of their own
    close = getattr(stream.chunks, "aclose", None)
    if close is not None:
        await close()
