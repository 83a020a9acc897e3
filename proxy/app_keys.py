"""Typed keys under which the composition root keeps the app's components."""

from aiohttp import web

from cache.disk_tier import DiskTier
from proxy.config import Config
from proxy.hot.previews import HotPreviews
from proxy.metrics.registry import Metrics
from proxy.render.pool import RenderPool
from proxy.storage.provider import StorageProvider
from proxy.tiers.conversions import Converter
from proxy.tiers.linked_originals import LinkedOriginals
from proxy.tiers.originals import Originals
from proxy.tiers.previews import Previews
from proxy.tiers.purges import Purger
from proxy.tiers.source_headers import SourceHeaders

CONFIG = web.AppKey("config", Config)
METRICS = web.AppKey("metrics", Metrics)
PROVIDER = web.AppKey("provider", StorageProvider)
TIERS = web.AppKey("tiers", tuple[DiskTier, ...])
ORIGINALS = web.AppKey("originals", Originals)
# Files under IMGPROXY_LOCAL_FILESYSTEM_ROOT (`local:///<path>` sources); absent when it is not set.
LOCAL_FILES = web.AppKey("local_files", Originals)
PREVIEWS = web.AppKey("previews", Previews)
HOT_PREVIEWS = web.AppKey("hot_previews", HotPreviews)
RENDER_POOL = web.AppKey("render_pool", RenderPool)
LINKS = web.AppKey("links", LinkedOriginals)
CONVERTER = web.AppKey("converter", Converter)
PURGER = web.AppKey("purger", Purger)
SOURCE_HEADERS = web.AppKey("source_headers", SourceHeaders)
