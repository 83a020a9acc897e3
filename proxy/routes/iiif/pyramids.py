"""The tile pyramid of an IIIF image (previews/iiif/pyramid/) as a preview's source: a conversion in the
converter tier, made once per original version across processes."""

from aiohttp import web

from previews.conversions.request import PYRAMID
from proxy.app_keys import CONVERTER
from proxy.storage.provider import ObjectRef
from proxy.tiers.conversions import ConversionRequest
from proxy.tiers.originals import Originals
from proxy.tiers.preview_sources import ConvertedSource


def pyramid_request(ref: ObjectRef, originals: Originals) -> ConversionRequest:
    """The conversion that makes `ref`'s pyramid."""
    return ConversionRequest(PYRAMID, ref, originals, allow_webp=False)


def pyramid_source(app: web.Application, ref: ObjectRef, originals: Originals) -> ConvertedSource:
    """`ref`'s pyramid as the source IIIF images are rendered from (made now if missing)."""
    return ConvertedSource(app[CONVERTER], pyramid_request(ref, originals))


def start_pyramid(app: web.Application, ref: ObjectRef, originals: Originals) -> None:
    """Make `ref`'s pyramid in the background, unless it is made or being made: a viewer reads info.json
    first, then asks its tiles, so the making overlaps that round trip and the first tiles' own."""
    app[CONVERTER].start(pyramid_request(ref, originals))
