"""GET and HEAD `/iiif/{2,3}/{identifier}/info.json`, and the base URI's 303 to it.

The document is made from the original's header (proxy/tiers/source_headers.py, as `/info` reads it):
nothing is decoded. Its `id` is the image's base URI on this server, from the request's scheme and Host
header (and IMGPROXY_PATH_PREFIX), as viewers build every tile URL from it. JSON-LD is sent to a client
that asks for it in Accept (the `jsonldMediaType` feature), plain JSON to every other, so the answer
varies by Accept.

For an image whose deep zoom reads a tile pyramid, a GET of info.json also starts making the pyramid in
the background (once per version across processes, as the first tile would): viewers read info.json
first, so the tiles they ask next find it made or being made.
"""

import hashlib
import json
from urllib.parse import quote

from aiohttp import hdrs, web

from previews.errors import TooManyPixels
from previews.iiif.info import CONTEXTS, info_document
from previews.iiif.pyramid.policy import wants_a_pyramid
from previews.iiif.request import IiifPath
from previews.iiif.size import size_limits
from proxy.app_keys import CONFIG, SOURCE_HEADERS
from proxy.http.path_prefix import PATH_PREFIX
from proxy.http.respond import respond
from proxy.routes.iiif.identifiers import resolve_identifier
from proxy.routes.iiif.pyramids import start_pyramid
from proxy.routes.links import changing_source_cache_control
from proxy.storage.provider import ObjectInfo

JSON = "application/json"
JSON_LD = "application/ld+json"


async def answer_info(request: web.Request, path: IiifPath) -> web.StreamResponse:
    """The image information document of the image `path` names."""
    config = request.app[CONFIG]
    originals, ref = resolve_identifier(request.app, path.identifier)
    source, header = await request.app[SOURCE_HEADERS].read(originals, ref)
    max_pixels = config.previews.render.max_src_resolution
    if header.width * header.height > max_pixels:
        raise TooManyPixels(f"source is {header.width}x{header.height}, over IMGPROXY_MAX_SRC_RESOLUTION")
    if wants_a_pyramid(header.width, header.height) and request.method == hdrs.METH_GET:
        start_pyramid(request.app, ref, originals)  # a viewer's tiles come next
    document = info_document(path.version, service_id(request, path), header.width, header.height,
                             size_limits(config.previews.render), cors=config.cors is not None)
    body = json.dumps(document, separators=(",", ":")).encode()
    wants_ld = JSON_LD in request.headers.get(hdrs.ACCEPT, "")
    media_type = f'{JSON_LD};profile="{CONTEXTS[path.version]}"' if wants_ld else JSON
    etag = '"' + hashlib.sha256(body + media_type.encode()).hexdigest()[:32] + '"'
    cache_control = changing_source_cache_control(config, path.identifier) or config.previews.cache_control
    headers: dict[str, str] = {hdrs.CACHE_CONTROL: cache_control, hdrs.VARY: "Accept"}
    return await respond(request, ObjectInfo(len(body), etag, source.last_modified, media_type), headers, data=body)


def redirect_to_info(request: web.Request, path: IiifPath) -> web.StreamResponse:
    """The base URI's answer: 303 See Other to its info.json (the `baseUriRedirect` feature)."""
    return web.Response(status=303, headers={hdrs.LOCATION: f"{service_id(request, path)}/info.json"})


def service_id(request: web.Request, path: IiifPath) -> str:
    """The image's base URI here: scheme, Host, path prefix, `/iiif/<version>/`, the identifier encoded."""
    prefix = request.app.get(PATH_PREFIX, "")
    return f"{request.scheme}://{request.host}{prefix}/iiif/{path.version}/{quote(path.identifier, safe='')}"
