"""Typed keys under which the composition root keeps the app's components."""

from aiohttp import web

from cache.disk_tier import DiskTier
from proxy.config import Config
from proxy.converter import Converter
from proxy.hot_previews import HotPreviews
from proxy.linked_originals import LinkedOriginals
from proxy.metrics import Metrics
from proxy.originals import Originals
from proxy.previews import Previews
from proxy.render_pool import RenderPool
from proxy.storage.provider import StorageProvider

CONFIG = web.AppKey("config", Config)
METRICS = web.AppKey("metrics", Metrics)
PROVIDER = web.AppKey("provider", StorageProvider)
TIERS = web.AppKey("tiers", tuple[DiskTier, ...])
ORIGINALS = web.AppKey("originals", Originals)
PREVIEWS = web.AppKey("previews", Previews)
HOT_PREVIEWS = web.AppKey("hot_previews", HotPreviews)
RENDER_POOL = web.AppKey("render_pool", RenderPool)
LINKS = web.AppKey("links", LinkedOriginals)
CONVERTER = web.AppKey("converter", Converter)
