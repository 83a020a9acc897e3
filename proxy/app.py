"""The composition root: builds every component from one Config and wires them into the app."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

from aiohttp import web

from cache.disk_tier import DiskTier
from cache.purge.index import PurgeIndex
from previews.imaging.decoded import SHARED_DECODE_PIXELS, keep_decoded_images
from proxy.app_keys import (
    CONFIG,
    CONVERTER,
    HOT_PREVIEWS,
    LINKS,
    LOCAL_FILES,
    METRICS,
    ORIGINALS,
    PREVIEWS,
    PROVIDER,
    PURGER,
    RENDER_POOL,
    SOURCE_HEADERS,
    TIERS,
)
from proxy.config import Config
from proxy.hot.previews import HotPreviews
from proxy.http.cors import CorsWrites, cors_policy, install_cors
from proxy.http.middleware import errors_and_metrics
from proxy.http.path_prefix import apply_path_prefix
from proxy.logs.request_ids import install_request_ids, request_ids
from proxy.metrics.process_figures import keep_fresh
from proxy.metrics.registry import Metrics
from proxy.render.heap import keep_freed_memory
from proxy.render.interpreter_lock import hand_over_sooner
from proxy.render.memory import RenderMemory
from proxy.render.pool import RenderPool
from proxy.render.shared_bounds import SharedBounds
from proxy.routes import health
from proxy.routes.conversions import get_conversion
from proxy.routes.iiif.dispatch import IIIF_ROUTE, get_iiif
from proxy.routes.info import INFO_ROUTE, get_info
from proxy.routes.links import get_link
from proxy.routes.originals import get_original
from proxy.routes.previews import PREVIEW_ROUTE, get_preview
from proxy.routes.purge import PURGE, PURGE_ROUTE, purge
from proxy.routes.uploads import UPLOAD_ROUTE, put_object
from proxy.storage.breaker import BreakerProvider, CircuitBreaker
from proxy.storage.config import StorageConfig
from proxy.storage.instrumented import InstrumentedProvider
from proxy.storage.links.config import LinksConfig
from proxy.storage.links.entry import LinkEntry
from proxy.storage.links.local_files import LOCAL_BUCKET
from proxy.storage.local import FolderProvider, LocalProvider
from proxy.storage.provider import StorageProvider
from proxy.storage.registry import build_provider
from proxy.tiers.conversions import Converter
from proxy.tiers.keys import link_namespace, local_files_namespace, main_storage_namespace
from proxy.tiers.linked_originals import Link, LinkedOriginals
from proxy.tiers.originals import Originals
from proxy.tiers.preview_store import PreviewStore
from proxy.tiers.previews import Previews
from proxy.tiers.purge_guard import PurgeGuard
from proxy.tiers.purges import Purger
from proxy.tiers.source_headers import SourceHeaders

log = logging.getLogger(__name__)

# diskcache removes idle entries only when it writes; a read-mostly tier is swept on this beat.
SWEEP_INTERVAL_CAP = 60.0
# Pixels of the decodes a serving process keeps for the next size of the same original (a srcset's 50 px
# and 300 px previews share a 1/8 decode; previews.imaging.decoded). A worker's own renders are the small
# ones (the render host takes the large): 2 MiB at most each, which holds a 20 MP photo at 1/8.
DECODES_KEPT = 8 * 1024 * 1024


def build_app(config: Config, metrics_dir: Path | None = None, shared: SharedBounds | None = None,
              render_host: str | None = None) -> web.Application:
    """Every component, built once. Blocking set-up (opening caches) happens here, before serving.

    Part files left by dead fills are not removed here: a worker process can't tell them from the
    fills other workers are writing. cache.startup.prepare_tiers does it once, before serving.
    `metrics_dir`: the multi-worker metrics folder (see proxy.metrics.registry), or None for one process;
    `shared`: the cores and memory the renders of the server's worker processes share (proxy.render.shared_bounds);
    `render_host`: the socket of the process that runs their large renders (proxy.render.host), or None.
    """
    metrics = Metrics(metrics_dir)
    tiers = tuple(DiskTier(tier_config, metrics) for tier_config in config.cache.tiers())
    storage_tier = next(tier for tier in tiers if tier.name == "storage")
    previews_tier = next(tier for tier in tiers if tier.name == "previews")
    converter_tier = next(tier for tier in tiers if tier.name == "image-converter")
    raw_provider = build_provider(config.storage)
    provider = _guarded(raw_provider, config.storage, metrics, raw_provider.provider_id)
    local = raw_provider if isinstance(raw_provider, LocalProvider) else None
    namespace = main_storage_namespace(config.storage)
    stale_if_error = config.cache.stale_if_error
    # Beside the tiers and shared by every worker: what was made from each original, and the purges.
    purge_index = PurgeIndex(config.cache.previews.path.parent)
    guard = PurgeGuard(purge_index)

    def build_link(entry: LinkEntry) -> Link:
        raw = (FolderProvider(entry.storage.root, entry.name) if entry.provider == "fs"
               else build_provider(entry.storage))
        guarded = _guarded(raw, entry.storage, metrics, f"link:{entry.name}")
        in_place = raw if isinstance(raw, LocalProvider) else None
        return Originals(guarded, in_place, storage_tier, metrics, link_namespace(entry), stale_if_error,
                         guard, revalidate=entry.revalidate), guarded

    # Outermost: the request's id is set before anything may log about it.
    app = web.Application(middlewares=[request_ids, errors_and_metrics])
    app[CONFIG] = config
    app[METRICS] = metrics
    app[PROVIDER] = provider
    app[TIERS] = tiers
    app[ORIGINALS] = originals = Originals(provider, local, storage_tier, metrics, namespace, stale_if_error, guard,
                                           revalidate=config.revalidation.main_revalidate)
    if (local_root := config.url_forms.local_root) is not None:
        # imgproxy's `local:///<path>` sources: the folder read in place, like an `fs` link.
        folder = FolderProvider(local_root, LOCAL_BUCKET)
        app[LOCAL_FILES] = Originals(_guarded(folder, config.storage, metrics, "local"), folder, storage_tier, metrics,
                                     local_files_namespace(local_root), stale_if_error, guard)
    links_config = config.links or LinksConfig(config.data_path / "remote_links.yml", required=False)
    app[LINKS] = LinkedOriginals(links_config, config.storage, build_link, metrics.links_read)
    settings = config.previews
    keep_freed_memory(settings.heap_keep)  # each process's renders reuse their pages (proxy.render.heap)
    keep_decoded_images(DECODES_KEPT)
    hand_over_sooner()  # render threads get the interpreter back from the event loop sooner
    memory = RenderMemory(settings.memory_limit, settings.memory_concurrent or None, shared)
    app[RENDER_POOL] = pool = RenderPool(settings.workers, settings.queue_size, metrics, memory, shared, render_host)
    # With a render host, which keeps decodes, the sizes of a progressive JPEG share one decode.
    render = settings.render if render_host is None else replace(settings.render,
                                                                  shared_decode_pixels=SHARED_DECODE_PIXELS)
    store = PreviewStore(previews_tier, metrics, settings.memory_bytes, settings.memory_entry_max, guard)
    app[CONVERTER] = Converter(converter_tier, pool, config.converter, render, metrics, settings.timeout,
                               guard)
    app[PREVIEWS] = Previews(originals, store, pool, render, metrics, settings.timeout,
                             settings.source_info_ttl)
    app[SOURCE_HEADERS] = SourceHeaders(settings.render.max_src_resolution, settings.timeout)  # /info
    cors = cors_policy(config.cors)  # None when CORS_ALLOW_ORIGINS is unset
    # The hot map shares the memory budget of the store it reuses bodies from (0 turns both off).
    app[HOT_PREVIEWS] = HotPreviews(settings.memory_bytes, settings.memory_entry_max, metrics, previews_tier.name,
                                    cors)

    # A purge in any worker drops this worker's hot map before its next lookup (hot lane included).
    guard.on_purge(app[HOT_PREVIEWS].clear)
    app[HOT_PREVIEWS].watch_purges(guard.generation)
    app[PURGER] = Purger(purge_index, guard, tiers, metrics)

    app.router.add_get("/healthz", health.healthz, name="healthz")
    app.router.add_get("/health", health.healthz, name="health")  # imgproxy's name for it
    app.router.add_get("/readyz", health.readyz, name="readyz")
    if config.server.metrics_bind is None:  # else on its own address only (proxy.metrics.listener)
        app.router.add_get("/metrics", health.metrics, name="metrics")
    app.router.add_get("/previews/{tail:.+}", get_preview, name=PREVIEW_ROUTE)
    app.router.add_get("/info/{tail:.+}", get_info, name=INFO_ROUTE)
    app.router.add_get("/links/{tail:.+}", get_link, name="link")
    app.router.add_get("/image-converter/{tail:.+}", get_conversion, name="image-converter")
    # The IIIF Image API (2.1 and 3.0) on the previews tier, for the buckets IIIF_BUCKETS lists.
    app.router.add_get("/iiif/{tail:.+}", get_iiif, name=IIIF_ROUTE)
    # Last: everything else is /<bucket>/<key>.
    app.router.add_get("/{bucket}/{key:.+}", get_original, name="original")
    # Admins remove originals with what was made from them, or one preview (proxy/routes/purge.py). Two
    # segments at least, like every purgeable path: a catch-all would turn other methods' 404s into 405s.
    app.router.add_route(PURGE, "/{bucket}/{key:.+}", purge, name=PURGE_ROUTE)
    # Writes, by bearer token or presigned URL (proxy/routes/uploads.py); /links/<scheme>/... writes to a link.
    app.router.add_put("/{bucket}/{key:.+}", put_object, name=UPLOAD_ROUTE)
    # Pages on other origins may read originals, previews and conversions (CORS_ALLOW_ORIGINS).
    install_request_ids(app)  # before CORS: the hot lane writes the request id's line first too
    # With uploads on, they may PUT to object paths too (by bearer token or presigned URL).
    writes = CorsWrites(UPLOAD_ROUTE, frozenset({"original", "link"})) if config.uploads.enabled else None
    install_cors(app, cors, ("original", "link", PREVIEW_ROUTE, "image-converter", INFO_ROUTE, IIIF_ROUTE), writes)
    # IMGPROXY_PATH_PREFIX: every route above but the operational ones moves under it.
    apply_path_prefix(app, config.url_forms.path_prefix)
    app.cleanup_ctx.append(_lifecycle)
    return app


def _guarded(raw: StorageProvider, storage: StorageConfig, metrics: Metrics, label: str) -> InstrumentedProvider:
    """A provider behind its own circuit breaker, with upstream metrics under `label`."""
    breaker = CircuitBreaker(label, storage.breaker_failures, storage.breaker_cooldown, metrics)
    return InstrumentedProvider(BreakerProvider(raw, breaker), metrics, label)


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    sweeper = asyncio.create_task(_sweep_idle_entries(app[TIERS], app[PURGER]))
    figures = asyncio.create_task(keep_fresh(app[METRICS].process))
    yield
    for task in (sweeper, figures):
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await app[HOT_PREVIEWS].close()  # its refreshes first: they use the previews service
    await app[PREVIEWS].close()
    await app[CONVERTER].close()
    app[RENDER_POOL].close()
    await app[ORIGINALS].close()
    if LOCAL_FILES in app:
        await app[LOCAL_FILES].close()
    await app[LINKS].close()
    await app[PROVIDER].close()
    for tier in app[TIERS]:
        await asyncio.to_thread(tier.close)
    await asyncio.to_thread(app[PURGER].close)


async def _sweep_idle_entries(tiers: tuple[DiskTier, ...], purger: Purger) -> None:
    interval = min(SWEEP_INTERVAL_CAP, *(tier.config.idle_seconds / 4 for tier in tiers))
    while True:
        await asyncio.sleep(interval)
        for tier in tiers:
            await asyncio.to_thread(tier.cull_expired)
        # After the cull: the index's rows of what it evicted go too.
        await asyncio.to_thread(purger.prune_index)
