"""One source warmed: its original into the storage tier, then each preview into the previews tier.

Through the server's own components (built by proxy.app.build_app from the same config), so a
fill or a render here is the one a request would start: the same keys, the same single job per key
across processes (a server on the same DATA_PATH waits for it, or this waits for the server's), the
same atomic commits. Nothing is asked over HTTP.
"""

import asyncio
import enum
import time
from dataclasses import dataclass, field

from aiohttp import web

from proxy.app_keys import PREVIEWS, TIERS
from proxy.commands.warm_list import WarmSource
from proxy.commands.warm_previews import PreviewSpec, preview_request
from proxy.routes.links import source_originals
from proxy.tiers.keys import preview_key
from proxy.tiers.previews import PreviewRequest

# A render hands its result over before its disk write ends; the entry is looked for this often.
STORED_POLL = 0.02


class Status(enum.Enum):
    """What a source's warming came to."""

    WARMED = "warmed"  # something was fetched or rendered and kept
    CACHED = "already cached"  # everything was in the tiers already (or on local disk, in place)
    FAILED = "failed"


@dataclass
class SourceResult:
    """A source's outcome, the bytes fetched and rendered for it, and why it failed (one line per part)."""

    item: WarmSource
    status: Status = Status.CACHED
    bytes: int = 0
    reasons: list[str] = field(default_factory=list)


class Warmer:
    """Warms sources through the app's originals, links and previews."""

    def __init__(self, app: web.Application, specs: list[PreviewSpec], render_timeout: float) -> None:
        self._app = app
        self._specs = specs
        self._render_timeout = render_timeout
        tiers = {tier.name: tier for tier in app[TIERS]}
        self._storage_tier, self._previews_tier = tiers["storage"], tiers["previews"]

    async def warm(self, item: WarmSource) -> SourceResult:
        """The original first (a render then reads it from the tier), then each preview."""
        result = SourceResult(item)
        try:
            await self._original(item, result)
        except Exception as error:
            return _failed(result, "original", error)  # no preview can be made without it
        for spec in self._specs:
            try:
                await self._preview(item, spec, result)
            except Exception as error:
                _failed(result, f"preview {spec.text}", error)
        return result

    async def _original(self, item: WarmSource, result: SourceResult) -> None:
        originals, ref = source_originals(self._app, item.source)  # an unlisted link bucket: not found
        located = await originals.open_for_render(ref)  # a miss fills the tier and returns once committed
        try:
            if located.cache_status == "MISS":
                if located.fill is None:  # read past the tier (its log line says why): nothing kept
                    raise RuntimeError("the storage tier could not take it")
                if not await asyncio.to_thread(self._storage_tier.holds, originals.cache_key(ref)):
                    # The commit refused it: over one entry's share of the tier, or purged meanwhile.
                    raise RuntimeError("fetched but not kept (too large for the storage tier, or purged meanwhile)")
                result.status, result.bytes = Status.WARMED, located.info.size
        finally:
            await asyncio.to_thread(located.close)

    async def _preview(self, item: WarmSource, spec: PreviewSpec, result: SourceResult) -> None:
        request = preview_request(self._app, item.source, spec)
        found = await self._app[PREVIEWS].get(request)
        if found.preview.file is not None:
            await asyncio.to_thread(found.preview.file.close)
        if found.cache_status == "HIT":
            return
        await self._stored(request)
        result.status = Status.WARMED
        result.bytes += found.preview.meta.info.size

    async def _stored(self, request: PreviewRequest) -> None:
        """Until the render's entry is on disk: it is written after the render hands over its bytes."""
        source = request.originals
        assert source is not None  # preview_request always names it
        info = await source.describe(request.ref)  # the version the render keyed it under
        key = preview_key(request.options.canonical(), request.source_id, info.etag, request.format_key)
        deadline = time.monotonic() + self._render_timeout
        while not await asyncio.to_thread(self._previews_tier.holds, key):
            if time.monotonic() > deadline:
                raise RuntimeError("rendered but not kept (the original changed or was purged meanwhile)")
            await asyncio.sleep(STORED_POLL)


def _failed(result: SourceResult, part: str, error: Exception) -> SourceResult:
    result.status = Status.FAILED
    reason = getattr(error, "reason", None) or str(error) or type(error).__name__
    result.reasons.append(f"{part}: {reason}")
    return result
