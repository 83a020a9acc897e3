"""Sending one representation with full HTTP caching semantics: 200, 206, 304, 412 and 416.

Both routes end here: originals (a file, or chunks from a fill or the provider) and previews (bytes in
memory, or a file from the disk tier).
"""

from collections.abc import AsyncIterator, Callable, Mapping
from email.utils import formatdate
from typing import BinaryIO

from aiohttp import hdrs, web
from multidict import CIMultiDict

from proxy.http.body import FileSpans, abort, send_chunks, send_file, send_spans
from proxy.http.cache_status import CacheAnswer
from proxy.http.conditional import Outcome, evaluate
from proxy.metrics.registry import Metrics
from proxy.storage.provider import ObjectInfo

# Bytes [start, end) of a body that isn't one open file: chunks, or spans of a file still being written.
ChunkSource = Callable[[int, int], AsyncIterator[bytes] | FileSpans]


async def respond(request: web.Request, info: ObjectInfo, headers: Mapping[str, str], *,
                  data: bytes | None = None, file: BinaryIO | None = None, chunks: ChunkSource | None = None,
                  use_sendfile: bool = True, cache: CacheAnswer | None = None,
                  metrics: Metrics | None = None) -> web.StreamResponse:
    """Answer with `info`'s representation; the body comes from exactly one of data, file or chunks.

    `cache` says how a tier answered: an answer read from an entry gets its Age (last, as the hot
    previews send it), and `metrics` counts the body's bytes by its tier and result."""
    decision = evaluate(request.headers, info)
    age = cache.age() if cache is not None else None
    if decision.outcome is Outcome.NOT_MODIFIED:
        not_modified = CIMultiDict(validators(info))
        not_modified.update(headers)
        if age is not None:
            not_modified[hdrs.AGE] = age
        return web.StreamResponse(status=decision.outcome.value, headers=not_modified)
    start, end = decision.start, decision.end
    response = web.StreamResponse(status=decision.outcome.value, headers=body_headers(info, headers, end - start))
    if decision.outcome is Outcome.PARTIAL:
        response.headers[hdrs.CONTENT_RANGE] = f"bytes {start}-{end - 1}/{info.size}"
    if age is not None:
        response.headers[hdrs.AGE] = age
    if cache is not None and metrics is not None and request.method == hdrs.METH_GET:
        metrics.bytes_served(cache.tier, cache.result, end - start)
    if data is not None and request.method == hdrs.METH_GET:
        await response.prepare(request)
        await response.write(data[start:end])
        await response.write_eof()
        return response
    await response.prepare(request)
    if request.method != hdrs.METH_GET:
        return response
    try:
        if file is not None:
            await send_file(request, response, file, start, end, use_sendfile)
        elif chunks is not None:
            body = chunks(start, end)
            if isinstance(body, FileSpans):
                await send_spans(request, response, body, end - start, use_sendfile)
            else:
                await send_chunks(response, body, end - start)
    except Exception as error:
        # The headers are gone, so no error response is possible any more (the origin broke off,
        # the client left, or the fill failed): cut the connection instead.
        abort(request, error)
        return response
    await response.write_eof()
    return response


def body_headers(info: ObjectInfo, headers: Mapping[str, str], length: int) -> CIMultiDict[str]:
    """The headers of an answer with a body of `length` bytes (a 200, or a 206 before its Content-Range),
    in the order they go out: the validators, the route's `headers`, Content-Type and Content-Length.
    aiohttp adds Date and Server after them; the hot previews' wire heads are these very headers."""
    result = CIMultiDict(validators(info))
    result.update(headers)
    result[hdrs.CONTENT_TYPE] = info.content_type
    result[hdrs.CONTENT_LENGTH] = str(length)
    return result


def validators(info: ObjectInfo) -> dict[str, str]:
    """Validators, sent with 200, 206 and 304 alike (RFC 9110 section 15.4.5)."""
    return {
        hdrs.ETAG: info.etag,
        hdrs.LAST_MODIFIED: formatdate(info.last_modified, usegmt=True),
        hdrs.ACCEPT_RANGES: "bytes",
    }
