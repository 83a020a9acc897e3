"""Previews: the previews tier in front of a render, which reads the original local-first.

A hit costs a metadata lookup (kept in memory for a few seconds) and a store lookup (memory, then
disk). A miss renders once per key however many requests want it, in however many worker processes
(the render holds the key's tier lock, cache.key_lock), on the render pool, from the original on
local disk or in the storage tier; the provider is asked only when neither has it.
"""

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO, Protocol

from cachetools import TTLCache

from cache.entry import EntryMeta
from previews.config import RenderConfig
from previews.errors import PublicError, SourceTooLarge
from previews.grammar.options import ProcessingOptions
from previews.render import Rendered, prepare_render
from proxy.errors import RenderWaitTimedOut
from proxy.metrics.registry import Metrics
from proxy.render.file_jobs import Prepared, run_file_job
from proxy.render.host_wire import PortableWork
from proxy.render.pool import RenderPool
from proxy.storage.provider import ObjectInfo, ObjectRef
from proxy.tiers.keys import preview_key
from proxy.tiers.once_per_key import Delivery, OncePerKey, Outcome
from proxy.tiers.originals import Located, Originals
from proxy.tiers.preview_store import PreviewStore, StoredPreview

log = logging.getLogger(__name__)
SOURCE_INFO_ENTRIES = 10_000


class PreviewSource(Protocol):
    """What the Previews service needs of a source (proxy.tiers.originals.Originals is one)."""

    def cache_key(self, ref: ObjectRef) -> str:
        """The source's identity in cache keys."""
        ...

    def original_key(self, ref: ObjectRef) -> str:
        """The original's key in the purge index (for a conversion, the original it converts)."""
        ...

    async def describe(self, ref: ObjectRef) -> ObjectInfo:
        """Size, version (ETag) and times, without reading the bytes."""
        ...

    async def open_for_render(self, ref: ObjectRef) -> Located:
        """The whole source as a readable file, for a worker thread."""
        ...


class Recipe(Protocol):
    """A render asked in another URL grammar than imgproxy's (IIIF: previews.iiif.render.IiifRecipe)."""

    def canonical(self) -> str:
        """Its text in the previews-tier key; never equal to an imgproxy options text."""
        ...

    def prepare(self, file: BinaryIO, config: RenderConfig, deadline: float) -> Prepared[Rendered]:
        """Read the header, check and plan; the pixel work comes with `run`."""
        ...


# A preview its source holds ready, read without a render: from the source's version (its ETag), the
# preview and when the source's entry was stored; None when it must be rendered.
InPlace = Callable[[str], tuple[Rendered, float | None] | None]


@dataclass(frozen=True)
class PreviewRequest:
    """A checked preview request: the source, its identity in cache keys, and the final options (imgproxy's,
    or another grammar's recipe: the same tier, single flight, purges and limits serve both)."""

    ref: ObjectRef
    source_id: str
    options: ProcessingOptions | Recipe
    format_key: str  # the output format, or "auto" when the source's format decides
    # Where the source is read: a link's Originals, a conversion, or (None) the main storage's Originals.
    originals: PreviewSource | None = None


@dataclass(frozen=True, slots=True)
class FoundPreview:
    """A preview, its X-Cache status (HIT or MISS), and until when (time.monotonic()) the version of
    the source it was found under is trusted without asking the source again (CACHE_SOURCE_INFO_TTL)."""

    preview: StoredPreview
    cache_status: str
    source_trusted_until: float
    from_store: bool  # False for a render's result (also the HIT of a request that joined the render)


class Previews:
    """Finds or renders previews. One per app, built by the composition root."""

    def __init__(self, originals: Originals, store: PreviewStore, pool: RenderPool, config: RenderConfig,
                 metrics: Metrics, timeout: float, source_info_ttl: float) -> None:
        self._originals = originals
        self._store = store
        self._pool = pool
        self._config = config
        self._metrics = metrics
        self._timeout = timeout
        self._source_info_ttl = source_info_ttl
        # Each value carries when it goes (the TTLCache's own clock is time.monotonic too), so a hit
        # can say how long the answer it gives rests on a trusted source version.
        self._source_info: TTLCache[str, tuple[ObjectInfo, float]] | None = (
            TTLCache(SOURCE_INFO_ENTRIES, source_info_ttl) if source_info_ttl > 0 else None)
        self._guard = store.guard
        if self._source_info is not None:
            self._guard.on_purge(self._source_info.clear)  # a purged original is described afresh
        self._renders: OncePerKey[StoredPreview] = OncePerKey(store.tier, metrics, job_key=self._guard.job_key)

    @property
    def tier_name(self) -> str:
        """The name of the tier that keeps the previews."""
        return self._store.tier.name

    async def get(self, request: PreviewRequest) -> FoundPreview:
        """The preview, its X-Cache status, and how long its source version is trusted."""
        deadline = time.monotonic() + self._timeout
        generation = self._guard.generation()
        info, trusted_until = await self._describe_source(request)
        limit = self._config.max_src_file_size
        if limit and info.size > limit:
            raise SourceTooLarge(f"source is {info.size} bytes, over the limit of {limit}")
        key = preview_key(request.options.canonical(), request.source_id, info.etag, request.format_key)
        # A render of it running in this process, its result still to come: join it without a look in the
        # store first (a trip off the event loop); the render looks again under its lock. Once it has given
        # its result the preview is looked up as usual (from memory, as the store keeps it there first).
        stored = None if self._renders.undelivered(key) else await self._store.lookup(key)
        if stored is not None:
            self._renders.record(Outcome.FOUND)
            if self._guard.generation() != generation:
                trusted_until = 0.0  # found as a purge ran: serve it, but the hot map must not keep it
            return FoundPreview(stored, "HIT", trusted_until, from_store=True)
        try:
            got = await self._renders.get(
                key, lambda: self._look_again(key),
                lambda deliver: self._render_locked(request, key, info, deadline, deliver),
                _render_lock_timed_out, max(0.0, deadline - time.monotonic()), deadline)
        except TimeoutError:
            raise RenderWaitTimedOut() from None
        # As with nginx's proxy_cache_lock, joiners are served by the render in flight.
        status = "MISS" if got.outcome is Outcome.MADE else "HIT"
        return FoundPreview(got.value, status, trusted_until, from_store=False)

    async def make_unkept(self, request: PreviewRequest,
                          in_place: InPlace | None = None) -> tuple[FoundPreview, Located]:
        """The preview made now and not kept: for an image its source makes more cheaply than the tier
        would store it (a viewer's tile read from its pyramid, previews.iiif.pyramid). No tier, no single
        flight; the source's own answer (its X-Cache, when it was stored) comes back with it, closed.
        `in_place` may give the preview at once from the source's version, with no render."""
        deadline = time.monotonic() + self._timeout
        self._guard.generation()  # a purge since the last look drops what is held in memory first
        info, trusted_until = await self._describe_source(request)
        limit = self._config.max_src_file_size
        if limit and info.size > limit:
            raise SourceTooLarge(f"source is {info.size} bytes, over the limit of {limit}")
        key = preview_key(request.options.canonical(), request.source_id, info.etag, request.format_key)
        started = time.monotonic()
        read = in_place(info.etag) if in_place is not None else None
        if read is not None:
            rendered, stored_at = read
            located = Located(info, "HIT", stored_at=stored_at)
            # Counted as the render it stands for, as one read from the source on the pool is.
            operation = "preview" if isinstance(request.options, ProcessingOptions) else "iiif"
            self._metrics.render_done(operation, rendered.format, time.monotonic() - started)
        else:
            located = await (request.originals or self._originals).open_for_render(request.ref)
            rendered = await self._render(request, located, deadline)
        # The ETag a stored copy would have: the same key, the same bytes.
        meta = EntryMeta(ObjectInfo(len(rendered.data), _etag(key), info.last_modified, rendered.media_type))
        return FoundPreview(StoredPreview(meta, data=rendered.data), located.cache_status, trusted_until,
                            from_store=False), located

    async def _render(self, request: PreviewRequest, located: Located, deadline: float) -> Rendered:
        """The render of `request` from its source's open file, on the pool."""
        options, config = request.options, self._config
        # Portable, not a closure: the render host (proxy.render.host) may run a large one.
        from_kept = None
        if isinstance(options, ProcessingOptions):
            operation, work = "preview", PortableWork(prepare_render, (options, config, deadline))
            from_kept = PortableWork(prepare_render, (options, config, deadline, True))
        else:
            operation, work = "iiif", PortableWork(options.prepare, (config, deadline))
        return await run_file_job(self._pool, self._metrics, operation, located, work, deadline,
                                  request.format_key, lambda rendered: rendered.format, from_kept)

    async def recheck(self, request: PreviewRequest) -> FoundPreview | None:
        """The stored preview of `request`, its source described afresh (not from the source-info cache),
        or None if the store holds no such preview small enough for memory: what a hit would find once
        the source's trust runs out, found just before (the hot map's refresh). Never renders, and counts
        no lookup: no client asked."""
        generation = self._guard.generation()
        info, trusted_until = await self._describe_source(request, fresh=True)
        limit = self._config.max_src_file_size
        if limit and info.size > limit:
            return None
        stored = await self._store.lookup(
            preview_key(request.options.canonical(), request.source_id, info.etag, request.format_key))
        if stored is None or stored.data is None:
            if stored is not None and stored.file is not None:
                stored.file.close()
            return None
        if self._guard.generation() != generation:
            trusted_until = 0.0
        return FoundPreview(stored, "HIT", trusted_until, from_store=True)

    async def _describe_source(self, request: PreviewRequest, fresh: bool = False) -> tuple[ObjectInfo, float]:
        """The source's info, and until when it is trusted (now, when the TTL is 0). `fresh`: asked of
        the source even while the source-info cache holds it (the answer replaces the cached one)."""
        originals = request.originals or self._originals
        # Keyed by the storage-tier key: a link's bucket may share its name with a bucket of the main storage.
        source = originals.cache_key(request.ref)
        if self._source_info is not None and not fresh:
            found = self._source_info.get(source)
            if found is not None:
                return found
        described_at, generation = time.monotonic(), self._guard.generation()
        info = await originals.describe(request.ref)
        trusted_until = described_at + self._source_info_ttl
        if self._source_info is not None and self._guard.generation() == generation:
            # Not when a purge ran meanwhile: the version described may be the one it removed.
            self._source_info[source] = (info, trusted_until)
        return info, trusted_until

    async def _look_again(self, key: str) -> StoredPreview | None:
        """A preview another process stored since our miss, read for every joiner to send."""
        return await _in_memory(await self._store.lookup(key))

    async def _render_locked(self, request: PreviewRequest, key: str, info: ObjectInfo, deadline: float,
                             deliver: Delivery[StoredPreview]) -> None:
        since = self._guard.generation()  # before the original is read: a purge after it refuses the store
        try:
            located = await (request.originals or self._originals).open_for_render(request.ref)
            rendered = await self._render(request, located, deadline)
            meta = EntryMeta(ObjectInfo(len(rendered.data), _etag(key), info.last_modified, rendered.media_type))
            preview = StoredPreview(meta, data=rendered.data)
            deliver.set_result(preview)
            if located.info.etag == info.etag:  # the original changed meanwhile: serve, but don't keep
                source = (request.originals or self._originals).original_key(request.ref)
                await self._store.store(key, meta, rendered.data, source, since)
        except Exception as error:
            # A refusal (4xx) is the client's answer and a wait that passed the deadline is load, not a
            # fault; anything else (a 5xx, or an error of no type we know) is worth a log line.
            refused = isinstance(error, PublicError) and error.status < 500
            if not refused and not isinstance(error, RenderWaitTimedOut):
                log.warning("render of %s/%s failed: %s", request.ref.bucket, request.ref.key, error)
            raise

    async def close(self) -> None:
        """Cancel renders still waiting (at shutdown)."""
        await self._renders.close()


def _render_lock_timed_out() -> StoredPreview:
    raise RenderWaitTimedOut("render timed out waiting for another process's render")


async def _in_memory(stored: StoredPreview | None) -> StoredPreview | None:
    """A stored preview that every joiner can send (they can't share one open file), or None if unreadable."""
    if stored is None or stored.file is None:
        return stored
    try:
        data = await asyncio.to_thread(_read_and_close, stored.file)
    except OSError:
        return None  # an unreadable copy: render again rather than fail the request
    return StoredPreview(stored.meta, data=data) if len(data) == stored.meta.info.size else None


def _read_and_close(file: BinaryIO) -> bytes:
    with file:
        return file.read()


def _etag(key: str) -> str:
    # The key names every input of the bytes (options, source, its version, format): its digest is
    # a strong validator that a re-render of the same key keeps.
    return '"' + hashlib.sha256(key.encode()).hexdigest()[:32] + '"'
