"""GET and HEAD `/links/<scheme>/<bucket>/<key>`, and which Originals a preview's source reads from.

`/links/s3/photos/a.jpg` is the original `s3://photos/a.jpg`, served like `/<bucket>/<key>` (storage
tier, single fill, ranges, 304) from the provider of the links-file entry that lists `photos`.
A second segment that is not a link scheme keeps the plain meaning: the bucket `links` of the main
storage, so `/links/<key>` still reaches it unless the key starts with a scheme name.

Linked buckets belong to users, who overwrite files, so a linked original is never sent `immutable`:
its Cache-Control is LINKS_CACHE_CONTROL (default `public, max-age=60`, as long as the proxy itself
serves a copy before revalidating it by default).
"""

from aiohttp import hdrs, web

from proxy.app_keys import CONFIG, LINKS, LOCAL_FILES, ORIGINALS
from proxy.config import Config
from proxy.http.access.private_buckets import private_read_headers
from proxy.http.object_path import parse_object_path, parse_source_ref
from proxy.http.request_target import path_and_query
from proxy.routes.originals import get_original, serve_original
from proxy.storage.errors import LocalFilesOff
from proxy.storage.links.local_files import is_local_source, parse_local_source
from proxy.storage.links.sources import SCHEMES, LinkRef, parse_link_source
from proxy.storage.provider import ObjectRef
from proxy.tiers.originals import Originals

PREFIX = "/links/"


async def get_link(request: web.Request) -> web.StreamResponse:
    """Serve a linked original (or a range of it), or fall through to `/links/<key>` of the main storage."""
    path = path_and_query(request).split("?", 1)[0]
    scheme, _, rest = path[len(PREFIX):].partition("/")
    if scheme not in SCHEMES:
        return await get_original(request)
    ref = parse_object_path("/" + rest)
    private = private_read_headers(request, ref.bucket)  # PRIVATE_BUCKETS match a link's bucket name too
    originals = request.app[LINKS].resolve(LinkRef(scheme, ref))
    cache_control = request.app[CONFIG].revalidation.links_cache_control
    return await serve_original(request, originals, ref, {hdrs.CACHE_CONTROL: cache_control, **private})


def changing_source_cache_control(config: Config, source: str) -> str | None:
    """The Cache-Control of what is made from `source` (a preview, a conversion) if the source can
    change, else None (the route's own, `immutable`, fits).

    A preview's URL does not carry its source's version, so a browser told `immutable` for a year
    would keep an old preview of a file overwritten since. Sources that can change: links (`s3://`,
    also inside an `image-converter/...` source), which get LINKS_CACHE_CONTROL, and the main
    storage when CACHE_REVALIDATE is set, which gets a max-age of that period.
    """
    if "://" in source:
        return config.revalidation.links_cache_control
    if config.revalidation.main_revalidate > 0:
        return f"public, max-age={int(config.revalidation.main_revalidate)}"
    return None


def source_originals(app: web.Application, source: str) -> tuple[Originals, ObjectRef]:
    """A preview source: a link (`s3://bucket/key`, ...) resolved through the links file, a file under
    IMGPROXY_LOCAL_FILESYSTEM_ROOT (`local:///<path>`), or `<bucket>/<key>`."""
    if is_local_source(source):
        local_files = app.get(LOCAL_FILES)
        if local_files is None:
            raise LocalFilesOff()
        return local_files, parse_local_source(source)
    link = parse_link_source(source)
    if link is None:
        return app[ORIGINALS], parse_source_ref(source)
    return app[LINKS].resolve(link), link.ref
