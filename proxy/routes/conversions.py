"""GET and HEAD `/image-converter/<operation>/<source>`: a browser-ready image of an original.

`convert/<bucket>/<key>?page=N` converts a TIFF, JPEG 2000, 16-bit PNG, PSD, BMP or ICO;
`videoframe/<pos>/<bucket>/<key>?videoStreamIndex=N` takes one frame of a video. A source a browser
already shows (JPEG, PNG, WebP, GIF) is served untouched. `X-Converted-From` names the source's format.
"""

from urllib.parse import unquote

from aiohttp import hdrs, web

from previews.conversions.request import parse_conversion
from proxy.app_keys import CONFIG, CONVERTER, METRICS
from proxy.http.access.presign import without_presign
from proxy.http.access.private_buckets import private_read_headers, with_private_headers
from proxy.http.cache_status import CacheAnswer
from proxy.http.request_target import path_and_query
from proxy.http.respond import respond
from proxy.routes.links import changing_source_cache_control, source_originals
from proxy.routes.originals import serve_original
from proxy.tiers.conversions import ConversionRequest

PREFIX = "/image-converter/"


async def get_conversion(request: web.Request) -> web.StreamResponse:
    """Serve a conversion from the converter tier, converting on a miss; pass browser-ready sources through."""
    config = request.app[CONFIG]
    raw_path, _, query = path_and_query(request).partition("?")
    # A presigned URL's fields are the private-bucket check's, not the conversion's.
    conversion, source = parse_conversion(unquote(raw_path[len(PREFIX):]), without_presign(query))
    originals, ref = source_originals(request.app, source)
    private = private_read_headers(request, ref.bucket)
    settings = config.converter
    allow_webp = settings.auto_webp and "image/webp" in request.headers.get(hdrs.ACCEPT, "").lower()
    result = await request.app[CONVERTER].get(ConversionRequest(conversion, ref, originals, allow_webp))
    cache_control = changing_source_cache_control(config, source) or config.server.originals_cache_control
    headers = {hdrs.CACHE_CONTROL: cache_control, "X-Converted-From": result.converted_from}
    if settings.auto_webp:
        headers[hdrs.VARY] = "Accept"
    headers = with_private_headers(headers, private)
    if result.meta is None:
        return await serve_original(request, originals, ref, headers)
    converter = request.app[CONVERTER]
    cache = CacheAnswer(converter.tier.name, result.cache_status, result.stored_at, stored=True)
    headers.update(cache.headers())
    try:
        return await respond(request, result.meta.info, headers, data=result.data, file=result.file,
                             use_sendfile=config.server.sendfile, cache=cache, metrics=request.app[METRICS])
    finally:
        result.close()
