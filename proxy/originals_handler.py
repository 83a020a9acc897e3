"""GET and HEAD `/<bucket>/<key>`: Supervisely's fullStorageUrl, with browser caching semantics."""

from email.utils import formatdate

from aiohttp import hdrs, web

from proxy.app_keys import CONFIG, ORIGINALS
from proxy.body import abort, send_chunks, send_file
from proxy.conditional import Decision, Outcome, evaluate
from proxy.object_path import parse_object_path
from proxy.storage.provider import ObjectInfo


async def get_original(request: web.Request) -> web.StreamResponse:
    """Serve an original (or a range of it) from local disk, the storage cache or the provider."""
    ref = parse_object_path(request.raw_path)
    originals = request.app[ORIGINALS]
    server = request.app[CONFIG].server
    want_body = request.method == hdrs.METH_GET
    located = await originals.locate(ref, want_body)
    try:
        decision = evaluate(request.headers, located.info)
        response = web.StreamResponse(status=decision.outcome.value,
                                      headers=representation_headers(located.info, server.originals_cache_control))
        response.headers["X-Cache"] = located.cache_status
        if decision.outcome is Outcome.NOT_MODIFIED:
            return response
        _set_body_headers(response, decision, located.info)
        await response.prepare(request)
        if not want_body:
            return response
        try:
            if located.file is not None:
                await send_file(request, response, located.file, decision.start, decision.end,
                                server.sendfile)
            else:
                chunks = originals.body(ref, located, decision.start, decision.end)
                await send_chunks(response, chunks, decision.end - decision.start)
        except Exception as error:
            # The headers are gone, so no error response is possible any more (the origin broke
            # off, the client left, or the fill failed): cut the connection instead.
            abort(request, error)
            return response
        await response.write_eof()
        return response
    finally:
        located.close()


def representation_headers(info: ObjectInfo, cache_control: str) -> dict[str, str]:
    """Validators and caching headers, sent with 200, 206 and 304 alike (RFC 9110 section 15.4.5)."""
    return {
        hdrs.ETAG: info.etag,
        hdrs.LAST_MODIFIED: formatdate(info.last_modified, usegmt=True),
        hdrs.CACHE_CONTROL: cache_control,
        hdrs.ACCEPT_RANGES: "bytes",
    }


def _set_body_headers(response: web.StreamResponse, decision: Decision, info: ObjectInfo) -> None:
    response.headers[hdrs.CONTENT_TYPE] = info.content_type
    response.content_length = decision.end - decision.start
    if decision.outcome is Outcome.PARTIAL:
        response.headers[hdrs.CONTENT_RANGE] = f"bytes {decision.start}-{decision.end - 1}/{info.size}"
