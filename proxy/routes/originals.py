"""GET and HEAD `/<bucket>/<key>`: Supervisely's fullStorageUrl, with browser caching semantics."""

from collections.abc import Mapping

from aiohttp import hdrs, web

from proxy.app_keys import CONFIG, METRICS, ORIGINALS
from proxy.http.access.private_buckets import private_read_headers
from proxy.http.cache_status import CacheAnswer
from proxy.http.object_path import parse_object_path
from proxy.http.request_target import path_and_query
from proxy.http.respond import respond
from proxy.storage.provider import ObjectRef
from proxy.tiers.originals import Originals


async def get_original(request: web.Request) -> web.StreamResponse:
    """Serve an original (or a range of it) from local disk, the storage cache or the provider."""
    ref = parse_object_path(path_and_query(request))
    private = private_read_headers(request, ref.bucket)  # before any I/O: a refusal fetches nothing
    return await serve_original(request, request.app[ORIGINALS], ref, private or None)


async def serve_original(request: web.Request, originals: Originals, ref: ObjectRef,
                         extra_headers: Mapping[str, str] | None = None) -> web.StreamResponse:
    """Answer with the original `ref` of `originals` (the main storage's, or a link's)."""
    server = request.app[CONFIG].server
    located = await originals.locate(ref, want_body=request.method == hdrs.METH_GET)
    try:
        cache = CacheAnswer(originals.tier_name, located.cache_status, located.stored_at,
                            stored=located.fill is not None)
        headers = {hdrs.CACHE_CONTROL: server.originals_cache_control, **(extra_headers or {}), **cache.headers()}
        return await respond(request, located.info, headers, file=located.file,
                             chunks=lambda start, end: originals.body(ref, located, start, end),
                             use_sendfile=server.sendfile, cache=cache, metrics=request.app[METRICS])
    finally:
        located.close()
