"""A preview's response headers, built in one place for every way its answer goes out.

The handler sends them through `respond` (200, 206, 304, by bytes or by sendfile); the hot-previews map
keeps the same value with the bytes and serialises its 200 once, for the handler's short way and the
hot lane alike (hot/previews.py). Nothing else adds a header to a preview, so the ways cannot drift,
but for CORS: its headers depend on each request's Origin, so http/cors.py adds them as every answer
goes out, and the hot lane appends the same lines.
"""

import os
from dataclasses import dataclass
from urllib.parse import quote

from aiohttp import hdrs
from multidict import CIMultiDict

from previews.grammar.options import ProcessingOptions
from previews.imaging.formats import FORMATS
from proxy.http.cache_status import CacheAnswer
from proxy.http.respond import body_headers
from proxy.storage.provider import ObjectInfo

_EXTENSION_BY_MEDIA_TYPE = {f.media_type: f.name.replace("jpeg", "jpg") for f in FORMATS.values()}


@dataclass(frozen=True, slots=True)
class PreviewHeaders:
    """One preview's representation (size, ETag, Last-Modified, type) and the headers the route adds to
    it; `respond` puts the validators first and Content-Type and Content-Length last."""

    info: ObjectInfo
    route: dict[str, str]  # Cache-Control, Content-Disposition, X-Cache, Cache-Status and, when negotiated, Vary

    def whole(self) -> CIMultiDict[str]:
        """Every header of a 200 with the whole body but Date and Server, in the order they go out."""
        return body_headers(self.info, self.route, self.info.size)


def preview_headers(info: ObjectInfo, cache_control: str, options: ProcessingOptions, key: str,
                    cache: CacheAnswer, negotiated: bool) -> PreviewHeaders:
    """The headers of the preview `info` describes, rendered with `options` from the source named `key`;
    `cache` gives its X-Cache and Cache-Status, and `negotiated` says the format was picked from Accept.
    Age changes with every answer: `respond` and the hot previews add it as each goes out."""
    route = {
        hdrs.CACHE_CONTROL: cache_control,
        hdrs.CONTENT_DISPOSITION: _disposition(options, key, info.content_type),
        **cache.headers(),
    }
    if negotiated:
        route[hdrs.VARY] = "Accept"
    return PreviewHeaders(info, route)


def _disposition(options: ProcessingOptions, key: str, media_type: str) -> str:
    kind = "attachment" if options.return_attachment else "inline"
    name = options.filename or os.path.splitext(os.path.basename(key))[0] or "image"
    extension = _EXTENSION_BY_MEDIA_TYPE.get(media_type, "bin")
    if not name.lower().endswith(f".{extension}"):
        name = f"{name}.{extension}"
    # RFC 6266: a quoted ASCII fallback plus the UTF-8 name.
    ascii_name = name.encode("ascii", "replace").decode().replace("?", "_").replace('"', "_")
    return f"{kind}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name)}"
