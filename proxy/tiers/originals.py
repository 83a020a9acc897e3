"""Where an original's bytes come from: local disk in place, the storage tier, or the provider.

`locate` finds the representation (its metadata and a body source) and `body` streams any byte
range of it. On a miss exactly one fill per key runs, detached from the request that started it;
every other request for the key in this process tails the same part file. Across worker processes,
the fill holds the key's tier lock (cache.key_lock): another process waits for it, then serves the
committed entry. A stale copy in the tier is served (X-Cache: STALE) only when the provider fails.
"""

import asyncio
import enum
import logging
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import BinaryIO, cast

from cache.disk_tier import DiskTier
from cache.entry import EntryMeta
from cache.fill import Fill, FillFailed
from cache.key_lock import LockTimeout, tier_lock
from cache.singleflight import DetachedFlights
from proxy.errors import ProxyError, ShuttingDown, UpstreamFailed, UpstreamTimeout
from proxy.http.body import FileSpans
from proxy.metrics.registry import Metrics
from proxy.storage.errors import ProviderFailure
from proxy.storage.local import LocalProvider
from proxy.storage.provider import ByteSpan, ObjectInfo, ObjectRef, ObjectStream, StorageProvider
from proxy.tiers.keys import original_key
from proxy.tiers.range_file import ProviderRangeFile

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

    def close(self) -> None:
        """Release the open file, if any."""
        if self.file is not None:
            self.file.close()


class Originals:
    """Serves originals: in place for local disk, through the storage tier for remote providers."""

    def __init__(self, provider: StorageProvider, local: LocalProvider | None, tier: DiskTier,
                 metrics: Metrics, namespace: str, stale_if_error: bool = True) -> None:
        self._provider = provider
        self._stale_if_error = stale_if_error
        self._local = local
        self._tier = tier
        self._metrics = metrics
        self._namespace = namespace
        self._fills: DetachedFlights[str, FillOutcome] = DetachedFlights(
            on_join=lambda: metrics.singleflight_joined(tier.name), stopped=ShuttingDown)

    async def locate(self, ref: ObjectRef, want_body: bool) -> Located:
        """Find the original. With `want_body`, a miss starts (or joins) the fill of the storage tier.

        A stale copy (idle past the tier's idle period) is a miss, unless the provider then fails:
        with stale-if-error it is served, marked STALE.
        """
        if self._local is not None:
            file, info = await asyncio.to_thread(self._local.open_in_place, ref)
            return Located(info, "BYPASS", file=file)
        key = self.cache_key(ref)
        entry = await asyncio.to_thread(self._tier.lookup, key)
        if entry is not None and not entry.stale:
            self._metrics.cache_result(self._tier.name, "hit")
            return Located(entry.meta.info, "HIT", file=entry.file)
        try:
            located = await self._fetch(ref, key, want_body)
        except (UpstreamFailed, UpstreamTimeout) as error:
            if entry is None or not self._stale_if_error:
                raise
            self._stale_served(ref, error)
            return Located(entry.meta.info, "STALE", file=entry.file)
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
            self._metrics.cache_result(self._tier.name, "miss")
            return Located(info, "MISS")
        fill, started = await self._join_or_start_fill(ref, key)
        if fill is FilledElsewhere.COMMITTED:
            entry = await asyncio.to_thread(self._tier.lookup, key)
            if entry is not None:
                self._metrics.cache_result(self._tier.name, "hit")
                return Located(entry.meta.info, "HIT", file=entry.file)
            fill = None  # evicted at once (a tier smaller than its traffic): stream from the provider
        elif fill is not None and fill.failed:
            # Joined a fill that failed a moment ago, before its key was free again (a client retrying
            # at once after its aborted response): that one can only fail again, so go to the provider.
            fill, started = None, True
        # Like nginx with proxy_cache_lock: only the request that went to the provider is a miss;
        # those that joined its fill are served from the entry as it fills.
        status = "MISS" if started else "HIT"
        self._metrics.cache_result(self._tier.name, status.lower())
        if fill is None:  # the tier can't take a fill right now; stream from the provider instead
            return Located(await self._provider.head(ref), status)
        return Located(fill.meta.info, status, fill=fill)

    async def describe(self, ref: ObjectRef) -> ObjectInfo:
        """The original's metadata without touching its bytes: stat, the tier's row, or a provider HEAD."""
        if self._local is not None:
            return await asyncio.to_thread(self._local.stat_in_place, ref)
        entry = await asyncio.to_thread(self._tier.lookup, self.cache_key(ref))
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

    def _stale_served(self, ref: ObjectRef, error: ProxyError) -> None:
        self._metrics.cache_result(self._tier.name, "stale")
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

    async def _join_or_start_fill(self, ref: ObjectRef, key: str) -> tuple[FillOutcome, bool]:
        """The fill for `key` (None if the tier can't take one) and whether this call started it."""
        pending, started = self._fills.join_or_start(key, lambda future: self._fill(ref, key, future))
        # Shielded: a client that disconnects must not cancel the fill the others are tailing.
        return await asyncio.shield(pending), started

    async def _fill(self, ref: ObjectRef, key: str, pending: "asyncio.Future[FillOutcome]") -> None:
        """The one fill of `key` among all the processes that share the tier (see cache.key_lock)."""
        try:
            async with tier_lock(self._tier, key, FILL_LOCK_WAIT) as waited:
                if waited:
                    self._metrics.singleflight_joined(self._tier.name)
                # Look again under the lock: another process may have committed since our miss.
                if await asyncio.to_thread(_has_fresh_entry, self._tier, key):
                    pending.set_result(FilledElsewhere.COMMITTED)
                    return
                await self._fill_locked(ref, key, pending)
        except LockTimeout:
            log.info("another process is still filling %s/%s; streaming it from the provider", ref.bucket, ref.key)
            if not pending.done():
                pending.set_result(None)

    async def _fill_locked(self, ref: ObjectRef, key: str, pending: "asyncio.Future[FillOutcome]") -> None:
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
                pending.set_result(None)
                return
            pending.set_result(fill)
            await fill.run(stream.chunks, lambda: asyncio.to_thread(self._tier.commit, key, part, meta))
        except Exception as error:
            log.warning("fill of %s/%s failed: %s", ref.bucket, ref.key, error or type(error).__name__)
            if not pending.done():
                raise  # the waiters get the error

    @property
    def busy(self) -> bool:
        """True while a fill runs (a links reload keeps a retired Originals until it is idle)."""
        return self._fills.busy

    async def close(self) -> None:
        """Cancel fills still running (at shutdown)."""
        await self._fills.close()


def _has_fresh_entry(tier: DiskTier, key: str) -> bool:
    entry = tier.lookup(key)
    if entry is None:
        return False
    entry.file.close()
    return not entry.stale


async def _close_stream(stream: ObjectStream) -> None:
    close = getattr(stream.chunks, "aclose", None)
    if close is not None:
        await close()
