"""GET and HEAD `/iiif/{2,3}/{identifier}/{region}/{size}/{rotation}/{quality}.{format}`.

An image is a preview in another grammar: the previews tier keeps it under its bounds, keyed by the
pixels it asks for (one entry for every syntax of the same tile) and the original's version, made once
per key across processes on the render pool, within the render limits and timeout, and removed with its
original by a purge. The answer says how the tier answered (X-Cache, Cache-Status) and links the
compliance profile and the request's canonical form.

An original of MIN_PIXELS or more is read through its tile pyramid (previews/iiif/pyramid/),
a conversion in the converter tier made from one decode, once per version across processes: the first
request that needs it makes it, and every later one reads only the blocks it covers. A JPEG asked at a
quarter of its scale or less is decoded shrunk instead, unless it is one of info.json's tiles
(`worth_a_pyramid`); info.json starts the making (proxy/routes/iiif/info.py). A viewer's tile in JPEG
(`reads_a_ready_tile`) is the pyramid's ready tile, read in place and not kept in the previews tier:
its answer says how the converter tier answered. Once a process has read one, it holds the pyramid
open for a few seconds (previews.iiif.pyramid.open_pyramids) and reads the next ones in place.
"""

from aiohttp import hdrs, web

from previews.iiif.canonical import canonical_request, pixels_key, resolved
from previews.iiif.info import PROFILES
from previews.iiif.pyramid.policy import reads_a_ready_tile, worth_a_pyramid
from previews.iiif.render import IiifRecipe
from previews.iiif.request import IiifPath
from previews.iiif.size import size_limits
from proxy.app_keys import CONFIG, METRICS, PREVIEWS, SOURCE_HEADERS
from proxy.errors import RenderMemoryExceeded
from proxy.http.cache_status import CacheAnswer
from proxy.http.respond import respond
from proxy.routes.iiif.identifiers import resolve_identifier
from proxy.routes.iiif.info import service_id
from proxy.routes.iiif.pyramids import keep_pyramid_open, pyramid_source, ready_tile_in_place
from proxy.routes.links import changing_source_cache_control
from proxy.tiers.conversions import TIER as CONVERTER_TIER
from proxy.tiers.keys import preview_source_id
from proxy.tiers.previews import FoundPreview, PreviewRequest, PreviewSource


async def answer_image(request: web.Request, path: IiifPath) -> web.StreamResponse:
    """The image `path` asks for, from the previews tier or rendered on a miss."""
    assert path.image is not None
    config = request.app[CONFIG]
    originals, ref = resolve_identifier(request.app, path.identifier)
    _, header = await request.app[SOURCE_HEADERS].read(originals, ref)  # kept in memory per version
    # From the header: a region or size the image can't give is a 400 before any cache is asked.
    limits = size_limits(config.previews.render)
    canonical = canonical_request(path.image, header.width, header.height, limits)
    recipe = IiifRecipe(path.image, pixels_key(path.image, header.width, header.height, limits))
    previews = request.app[PREVIEWS]

    def asked_of(source: PreviewSource) -> PreviewRequest:
        return PreviewRequest(ref, preview_source_id(source.cache_key(ref), ""), recipe, recipe.format, source)

    box, size = resolved(path.image, header.width, header.height, limits)
    found: FoundPreview | None = None
    cache: CacheAnswer | None = None
    if worth_a_pyramid(header.format, header.width, header.height, box, size):
        pyramid = pyramid_source(request.app, ref, originals)
        try:
            if reads_a_ready_tile(path.image, header.width, header.height, box, size):
                in_place = ready_tile_in_place(request.app, config.previews.render, box, size)
                found, source = await previews.make_unkept(asked_of(pyramid), in_place)
                keep_pyramid_open(request.app, ref, originals, source.info.etag)
                # The converter tier answered (the pyramid found or made); the tile is not kept.
                cache = CacheAnswer(CONVERTER_TIER, source.cache_status, source.stored_at, stored=False)
            else:
                found = await previews.get(asked_of(pyramid))
        except RenderMemoryExceeded:
            # Making the pyramid needs more than RENDER_MEMORY_LIMIT: a region decoded from the source
            # itself needs less (the decode, without the levels and the file).
            found = None
    if found is None:
        found = await previews.get(asked_of(originals))
    preview = found.preview
    if cache is None:
        cache = CacheAnswer(previews.tier_name, found.cache_status, preview.stored_at, stored=True)
    cache_control = changing_source_cache_control(config, path.identifier) or config.previews.cache_control
    links = f'<{PROFILES[path.version]}>;rel="profile", <{service_id(request, path)}/{canonical}>;rel="canonical"'
    headers = {hdrs.CACHE_CONTROL: cache_control, hdrs.LINK: links, **cache.headers()}
    try:
        return await respond(request, preview.meta.info, headers, data=preview.data, file=preview.file,
                             use_sendfile=config.server.sendfile, cache=cache, metrics=request.app[METRICS])
    finally:
        if preview.file is not None:
            preview.file.close()
