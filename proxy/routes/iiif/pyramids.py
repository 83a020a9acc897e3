"""The tile pyramid of an IIIF image (previews/iiif/pyramid/) as a preview's source: a conversion in the
converter tier, made once per original version across processes."""

from aiohttp import web

from previews.config import RenderConfig
from previews.conversions.request import PYRAMID
from previews.iiif.pyramid.layout import READY_FORMAT
from previews.iiif.region import Box
from previews.imaging.formats import FORMATS
from previews.render import Rendered
from proxy.app_keys import CONVERTER
from proxy.storage.provider import ObjectRef
from proxy.tiers.conversions import ConversionRequest
from proxy.tiers.originals import Originals
from proxy.tiers.preview_sources import ConvertedSource
from proxy.tiers.previews import InPlace


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


def ready_tile_in_place(app: web.Application, render: RenderConfig, box: Box, size: tuple[int, int]) -> InPlace:
    """A viewer's ready tile read from its pyramid held open in this process (a read at an offset on the
    event loop, no trip to a thread), when it is held."""
    pyramids = app[CONVERTER].open_pyramids
    output = FORMATS[READY_FORMAT]
    quality = render.quality_for(output.name, 0)  # as previews.iiif.render.output_job encodes it

    def read(version: str) -> tuple[Rendered, float | None] | None:
        found = pyramids.ready_tile(version, box, size, quality)
        if found is None:
            return None
        return Rendered(found[0], output.media_type, output.name, *size), found[1]

    return read


def keep_pyramid_open(app: web.Application, ref: ObjectRef, originals: Originals, version: str) -> None:
    """Hold `ref`'s pyramid of `version` open in this process for `ready_tile_in_place`, unless held."""
    app[CONVERTER].keep_pyramid_open(pyramid_request(ref, originals), version)
