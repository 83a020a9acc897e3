"""Where a preview's source is read: an original (main storage or a link), or a conversion of one.

`plain/image-converter/videoframe/33p/<bucket>/<key>?videoStreamIndex=0` previews a video frame:
the preview reads the converter's result, which reads the original, so a miss goes previews tier ->
converter tier -> storage tier -> provider, and each tier is filled once.
"""

import io
from dataclasses import replace

from aiohttp import web

from previews.conversions.request import SOURCE_PREFIX, parse_conversion
from proxy.app_keys import CONVERTER
from proxy.routes.links import source_originals
from proxy.storage.provider import ObjectInfo, ObjectRef
from proxy.tiers.conversions import ConversionRequest, Converter, conversion_etag
from proxy.tiers.keys import converted_source_key
from proxy.tiers.originals import Located
from proxy.tiers.previews import PreviewSource


def preview_source(app: web.Application, source: str, query: str) -> tuple[PreviewSource, ObjectRef]:
    """The reader and object of a preview's decoded source; the query belongs to a conversion."""
    if not source.startswith(SOURCE_PREFIX):
        return source_originals(app, source)
    conversion, inner = parse_conversion(source[len(SOURCE_PREFIX):], query)
    originals, ref = source_originals(app, inner)
    # A lossless intermediate keeps the preview's quality; WebP would only add a lossy step.
    return ConvertedSource(app[CONVERTER], ConversionRequest(conversion, ref, originals, allow_webp=False)), ref


class ConvertedSource:
    """A conversion seen as a preview's original: its version is the conversion's ETag."""

    def __init__(self, converter: Converter, request: ConversionRequest) -> None:
        self._converter = converter
        self._request = request

    def cache_key(self, ref: ObjectRef) -> str:
        """The conversion's identity (operation, original, output choice)."""
        return converted_source_key(self._request.identity())

    def original_key(self, ref: ObjectRef) -> str:
        """The converted original's key in the purge index: a purge of it removes this preview too."""
        return self._request.originals.original_key(ref)

    async def describe(self, ref: ObjectRef) -> ObjectInfo:
        """The original's size and times with the conversion's ETag, known before the conversion exists."""
        return await self._converter.describe(self._request)

    async def open_for_render(self, ref: ObjectRef) -> Located:
        """The converted image (made now if missing), or the original itself when it needs none."""
        result = await self._converter.get(self._request)
        if result.meta is None:
            located = await self._request.originals.open_for_render(ref)
            located.info = replace(located.info, etag=conversion_etag(self._request.identity(), located.info.etag))
            return located
        info = result.meta.info
        if result.data is not None:
            return Located(info, result.cache_status, file=io.BytesIO(result.data))
        return Located(info, result.cache_status, file=result.file, stored_at=result.stored_at)
