"""GET and HEAD `/info/<signature>/<options...>/<source>`: imgproxy's image info, as JSON.

The path is the previews route's (a plain or base64url source, the query belonging to the source), and
so are the checks, before any I/O: grammar, signature (IMGPROXY_KEY/SALT), options, source. The answer
is `{"width", "height", "format", "size"}` (imgproxy's field names) for an original, read from its
header (proxy/tiers/source_headers.py): nothing is decoded. Conversions (`image-converter/...`) are
refused: what they make is known only once made.

The answer carries a validator of its own (from the source's version and the fields asked) and the
previews' Cache-Control, so browsers and CDNs keep it as long as a preview of the same source. A private
bucket's answers, like its previews, are for signed URLs only and carry PRIVATE_CACHE_CONTROL.
"""

import hashlib
import json

from aiohttp import web

from previews.conversions.request import SOURCE_PREFIX
from previews.errors import InvalidSource
from previews.grammar.info_options import InfoFields, parse_info_options
from previews.grammar.url import parse_preview_url
from previews.imaging.header_info import HeaderInfo
from proxy.app_keys import CONFIG, SOURCE_HEADERS
from proxy.http.access.private_buckets import private_preview_cache_control
from proxy.http.access.signature import verify
from proxy.http.request_target import path_and_query
from proxy.http.respond import respond
from proxy.routes.links import changing_source_cache_control, source_originals
from proxy.storage.provider import ObjectInfo

PREFIX = "/info"
INFO_ROUTE = "info"  # the `route` label of this route's request metrics
MEDIA_TYPE = "application/json"


async def get_info(request: web.Request) -> web.StreamResponse:
    """Answer the source's width, height, format and size, from its header."""
    config = request.app[CONFIG]
    settings = config.previews
    raw_path, _, query = path_and_query(request).partition("?")
    url = parse_preview_url(raw_path[len(PREFIX):], query)
    verify(settings.signature, url.signature, url.signed_path + (f"?{query}" if query else ""))
    fields = parse_info_options(url.options)
    if url.extension:
        raise InvalidSource("an info URL takes no output format")
    if url.source.startswith(SOURCE_PREFIX):
        raise InvalidSource("info reads originals; a conversion's size is known only once it is made")
    originals, ref = source_originals(request.app, url.source)
    # What a private bucket's object measures is told, like its previews, to signed URLs only.
    private_cache_control = private_preview_cache_control(config, ref.bucket)
    source, header = await request.app[SOURCE_HEADERS].read(originals, ref)
    body = info_body(fields, source, header)
    answer = ObjectInfo(len(body), _etag(originals.cache_key(ref), source.etag, fields), source.last_modified,
                        MEDIA_TYPE)
    cache_control = (private_cache_control or changing_source_cache_control(config, url.source)
                     or settings.cache_control)
    return await respond(request, answer, {"Cache-Control": cache_control}, data=body)


def info_body(fields: InfoFields, source: ObjectInfo, header: HeaderInfo) -> bytes:
    """The JSON answer: the facts asked for, under imgproxy's names."""
    facts: dict[str, int | str] = {}
    if fields.dimensions:
        facts.update(width=header.width, height=header.height)
    if fields.format:
        facts["format"] = header.format
    if fields.size:
        facts["size"] = source.size
    return json.dumps(facts, separators=(",", ":")).encode()


def _etag(source_key: str, source_etag: str, fields: InfoFields) -> str:
    """A strong validator: the same source version and fields give the same body."""
    identity = f"info\n{source_key}\n{source_etag}\n{fields}"
    return '"' + hashlib.sha256(identity.encode()).hexdigest()[:32] + '"'
