"""The image converter: the converter tier in front of a conversion, which reads the original local-first.

A conversion's key is (operation, source, source version, output choice), so a changed original is
converted again and never served old. A miss converts once per key however many requests want it,
on the render pool. Images are read like a preview's original (local disk, the storage tier, or one
fill from the provider); a video that is not cached is read by byte ranges from the provider, so a
frame near the start of a 4 GB file costs a few megabytes, wherever its `moov` box sits.

A source a browser already shows converts to nothing: it is remembered as a pass-through and the
caller serves the original itself.
"""

import asyncio
import hashlib
import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO

from cachetools import TTLCache

from cache.disk_tier import DiskTier
from cache.entry import EntryMeta
from previews.config import RenderConfig
from previews.conversions.config import ConverterConfig
from previews.conversions.request import Conversion, prepare_conversion_job
from previews.conversions.still import Converted, ConvertOptions
from previews.iiif.pyramid.open_pyramids import OpenPyramids
from previews.iiif.pyramid.reading import PyramidFile
from proxy.errors import RenderWaitTimedOut, ServiceUnavailable
from proxy.metrics.registry import Metrics
from proxy.render.file_jobs import run_file_job
from proxy.render.host_wire import PortableWork
from proxy.render.pool import RenderPool
from proxy.storage.provider import ObjectInfo, ObjectRef
from proxy.tiers.keys import conversion_identity, conversion_key
from proxy.tiers.once_per_key import Delivery, OncePerKey, Outcome
from proxy.tiers.originals import Located, Originals
from proxy.tiers.purge_guard import PurgeGuard

log = logging.getLogger(__name__)
TIER = "image-converter"
PASS_THROUGH_ENTRIES = 10_000


@dataclass(frozen=True)
class ConversionRequest:
    """A checked conversion: the operation, the source and where it is read, and the output choice."""

    conversion: Conversion
    ref: ObjectRef
    originals: Originals
    allow_webp: bool  # the client accepts WebP and the operator enabled it

    def identity(self) -> str:
        """Everything but the source's version that names the result."""
        return conversion_identity(self.conversion.key(), self.originals.cache_key(self.ref), self.allow_webp)


@dataclass
class ConversionResult:
    """A converted image (bytes in memory or an open tier file), or a pass-through (`meta` None)."""

    converted_from: str
    cache_status: str
    meta: EntryMeta | None = None
    data: bytes | None = None
    file: BinaryIO | None = None
    stored_at: float | None = None  # when the tier's entry served was written (for Age); None if none was read
    in_tier: bool = False  # made and kept, neither in memory nor open: each reader opens the tier's entry

    def close(self) -> None:
        """Release the open tier file, if any."""
        if self.file is not None:
            self.file.close()


class Converter:
    """Finds or makes conversions. One per app, built by the composition root."""

    def __init__(self, tier: DiskTier, pool: RenderPool, config: ConverterConfig, render: RenderConfig,
                 metrics: Metrics, image_timeout: float, guard: PurgeGuard | None = None) -> None:
        self.tier = tier
        self._pool = pool
        self._config = config
        self._render = render
        self._metrics = metrics
        self._image_timeout = image_timeout
        # Keys whose source needs no conversion, so a repeat skips the pool. Keyed by source
        # version like the tier, so a replaced original is looked at again.
        self._pass_through: TTLCache[str, str] = TTLCache(PASS_THROUGH_ENTRIES, ttl=tier.config.idle_seconds)
        self._guard = guard or PurgeGuard()
        self._guard.on_purge(self._pass_through.clear)
        self._flights: OncePerKey[ConversionResult] = OncePerKey(tier, metrics, TIER, job_key=self._guard.job_key)
        self._ahead: set[asyncio.Task[None]] = set()
        # Tile pyramids held open for reading ready tiles in place; a purge may have removed any of them.
        self.open_pyramids = OpenPyramids()
        self._guard.on_purge(self.open_pyramids.clear)

    def timeout(self, conversion: Conversion) -> float:
        """How long one conversion may take: video decoding has its own limit."""
        return self._config.video_timeout if conversion.position is not None else self._image_timeout

    async def describe(self, request: ConversionRequest) -> ObjectInfo:
        """The original's metadata, with the ETag of the conversion (stable before and after it exists)."""
        info = await request.originals.describe(request.ref)
        return replace(info, etag=conversion_etag(request.identity(), info.etag))

    async def get(self, request: ConversionRequest) -> ConversionResult:
        """The conversion from the tier, or made now (once per key); X-Cache says which."""
        deadline = time.monotonic() + self.timeout(request.conversion)
        info = await request.originals.describe(request.ref)
        key = conversion_key(request.identity(), info.etag)
        passed = self._pass_through.get(key)
        if passed is not None:
            self._flights.record(Outcome.FOUND)
            return ConversionResult(passed, "HIT")
        entry = await asyncio.to_thread(self.tier.lookup, key)
        if entry is not None:
            self._flights.record(Outcome.FOUND)
            return ConversionResult(entry.meta.origin_format, "HIT", entry.meta, file=entry.file,
                                    stored_at=entry.stored_at)
        try:
            got = await self._flights.get(
                key, lambda: self._look_again(key),
                lambda deliver: self._convert_locked(request, key, info, deadline, deliver),
                _conversion_lock_timed_out, max(0.0, deadline - time.monotonic()), deadline)
        except TimeoutError:
            raise RenderWaitTimedOut("conversion timed out") from None
        if not got.made_here or got.value.in_tier:  # another process made it, or it was written to the tier
            entry = await asyncio.to_thread(self.tier.lookup, key)
            if entry is None:
                raise ServiceUnavailable("the conversion was evicted as it was made; try again")
            if got.outcome is Outcome.MADE:  # this request made it: a miss, of no age
                return ConversionResult(entry.meta.origin_format, "MISS", entry.meta, file=entry.file)
            return ConversionResult(entry.meta.origin_format, "HIT", entry.meta, file=entry.file,
                                    stored_at=entry.stored_at)
        return replace(got.value, cache_status="MISS" if got.outcome is Outcome.MADE else "HIT")

    def start(self, request: ConversionRequest) -> None:
        """Make the conversion in the background, for a client known to ask for it next (as `get`: found
        in the tier, joined if in flight, else made once per key). A failure is left to the request that
        needs it, which meets it again."""
        task = asyncio.get_running_loop().create_task(self._get_ahead(request))
        self._ahead.add(task)
        task.add_done_callback(self._ahead.discard)

    def keep_pyramid_open(self, request: ConversionRequest, version: str) -> None:
        """Open the tile pyramid of `request` (whose ETag is `version`) in the background and hold it in
        `open_pyramids`, unless it is held or being opened. A pyramid held only in memory (not kept in the
        tier) is not held."""
        if not self.open_pyramids.wanted(version):
            return
        task = asyncio.get_running_loop().create_task(self._keep_pyramid_open(request, version))
        self._ahead.add(task)
        task.add_done_callback(self._ahead.discard)

    async def _keep_pyramid_open(self, request: ConversionRequest, version: str) -> None:
        since = self._guard.generation()  # a purge after this may remove what the lookup finds
        opened: tuple[PyramidFile, float | None] | None = None
        try:
            opened = await self._open_pyramid(request, version)
        except Exception as error:  # nobody waits for it: tiles are read the long way meanwhile
            log.debug("opening the pyramid of %s/%s failed: %s", request.ref.bucket, request.ref.key, error)
        finally:  # also when cancelled (at shutdown): never left marked as being opened
            if opened is not None and self._guard.generation() == since:
                self.open_pyramids.keep(version, *opened)
            else:
                self.open_pyramids.abandon(version)
                if opened is not None:
                    opened[0].close()

    async def _open_pyramid(self, request: ConversionRequest, version: str) -> tuple[PyramidFile, float | None] | None:
        """The pyramid of `request` as the tier holds it under `version`, opened, and when it was stored."""
        result = await self.get(request)
        if result.file is None or result.meta is None or result.meta.info.etag != version:
            result.close()
            return None
        return await asyncio.to_thread(_open_pyramid, result.file), result.stored_at

    async def _get_ahead(self, request: ConversionRequest) -> None:
        try:
            result = await self.get(request)
        except Exception as error:  # nobody waits for it: the request that needs it meets it again
            log.debug("conversion ahead of %s/%s failed: %s", request.ref.bucket, request.ref.key, error)
            return
        result.close()

    async def _look_again(self, key: str) -> ConversionResult | None:
        """A conversion another process stored since our miss. Its file is closed: waiters open the
        entry each for themselves (they can't share one file)."""
        entry = await asyncio.to_thread(self.tier.lookup, key)
        if entry is None:
            return None
        entry.file.close()
        return ConversionResult(entry.meta.origin_format, "HIT", entry.meta)

    async def _convert_locked(self, request: ConversionRequest, key: str, info: ObjectInfo, deadline: float,
                              deliver: Delivery[ConversionResult]) -> None:
        since = self._guard.generation()  # before the original is read: a purge after it refuses the store
        located = await self._open_source(request, info, deadline)
        conversion, options, render = request.conversion, self._options(request), self._render
        # A result too big to hold twice (a tile pyramid) is written straight to a part file of the tier.
        try:
            part: Path | None = self.tier.new_part_path()
        except OSError as error:
            self.tier.report_error("write", error)
            part = None  # held in memory, and not kept
        try:
            converted = await run_file_job(
                self._pool, self._metrics, conversion.operation, located,
                PortableWork(prepare_conversion_job, (conversion, options, render, deadline, part)),
                deadline, "auto", _output_format)
            if converted.in_part:
                assert part is not None
                await self._keep_part(request, key, info, located, converted, part, since, deliver)
                return
        finally:
            if part is not None and part.exists():  # not adopted by the tier (failed, not kept, or not used)
                await asyncio.to_thread(self.tier.discard, part)
        if converted.data is None:
            self._pass_through[key] = converted.source_format
            deliver.set_result(ConversionResult(converted.source_format, "MISS"))
            return
        converted_info = ObjectInfo(len(converted.data), conversion_etag(request.identity(), info.etag),
                                    info.last_modified, converted.media_type)
        meta = EntryMeta(converted_info, origin_format=converted.source_format)
        deliver.set_result(ConversionResult(converted.source_format, "MISS", meta, data=converted.data))
        if located.info.etag == info.etag:  # the original changed meanwhile: serve, but don't keep
            await asyncio.to_thread(self._guard.store_bytes, self.tier, key, converted.data, meta,
                                    request.originals.original_key(request.ref), since)

    async def _keep_part(self, request: ConversionRequest, key: str, info: ObjectInfo, located: Located,
                         converted: Converted, part: Path, since: int, deliver: Delivery[ConversionResult]) -> None:
        """Adopt a result written to `part` as the tier's entry; its readers open the entry."""
        size = (await asyncio.to_thread(part.stat)).st_size
        converted_info = ObjectInfo(size, conversion_etag(request.identity(), info.etag), info.last_modified,
                                    converted.media_type)
        meta = EntryMeta(converted_info, origin_format=converted.source_format)
        # The original changed meanwhile, or the result is larger than the tier may hold: serve, but don't keep.
        if located.info.etag != info.etag or size > self.tier.entries_limit:
            data = await asyncio.to_thread(part.read_bytes)
            # Gone before anyone is answered, so no part file outlives the answer it was made for.
            await asyncio.to_thread(self.tier.discard, part)
            deliver.set_result(ConversionResult(converted.source_format, "MISS", meta, data=data))
            return
        kept = await asyncio.to_thread(self._guard.commit, self.tier, key, part, meta,
                                       request.originals.original_key(request.ref), since)
        if not kept:
            raise ServiceUnavailable("the conversion could not be kept; try again")
        deliver.set_result(ConversionResult(converted.source_format, "MISS", meta, in_tier=True))

    async def _open_source(self, request: ConversionRequest, info: ObjectInfo, deadline: float) -> Located:
        """The original as a file: in place or from the storage tier; a video not cached, by ranges."""
        originals, ref = request.originals, request.ref
        if request.conversion.position is None:
            return await originals.open_for_render(ref)
        located = await originals.locate(ref, want_body=False)
        if located.file is None:
            # A range can't outlast the conversion's own deadline.
            located.file = originals.open_ranges(ref, info, max(0.1, deadline - time.monotonic()))
        return located

    def _options(self, request: ConversionRequest) -> ConvertOptions:
        return ConvertOptions(request.conversion.index, request.allow_webp, self._config.quality)

    async def close(self) -> None:
        """Cancel conversions still waiting (at shutdown), and close the pyramids held open."""
        for task in list(self._ahead):
            task.cancel()
        await asyncio.gather(*self._ahead, return_exceptions=True)
        self.open_pyramids.clear()
        await self._flights.close()


def _open_pyramid(file: BinaryIO) -> PyramidFile:
    """`file` read as a pyramid (its index parsed), or closed if it is none."""
    try:
        return PyramidFile(file)
    except BaseException:
        file.close()
        raise


def _conversion_lock_timed_out() -> ConversionResult:
    raise RenderWaitTimedOut("conversion timed out waiting for another process's conversion")


def _output_format(converted: Converted) -> str:
    """The render metric's format label: the output's, or "none" for a pass-through."""
    return converted.media_type.rpartition("/")[2] if converted.data is not None else "none"


def conversion_etag(identity: str, source_etag: str) -> str:
    """A strong validator for a conversion: a digest of its key (what names it and the source's version)."""
    return '"' + hashlib.sha256(conversion_key(identity, source_etag).encode()).hexdigest()[:32] + '"'
