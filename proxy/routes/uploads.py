"""PUT `/<bucket>/<key>` and `/links/<scheme>/<bucket>/<key>`: write an object, then purge what was cached of it.

Allowed with `Authorization: Bearer <one of UPLOAD_TOKENS>` or a presigned URL (proxy.http.access.presign);
401 with `WWW-Authenticate: Bearer` otherwise, 403 while neither is configured. The body streams to
the provider (proxy.storage.writes: one request below STORAGE_MULTIPART_THRESHOLD, parts above it),
checked against Content-Length, Content-MD5 and x-amz-checksum-sha256 as it goes; a body that is cut
off or doesn't match is never stored. The answer is 201 with the new ETag and a Location, after the
key's cached original, previews and conversions were purged, so the next GET sees the new bytes.
"""

import logging
import mimetypes
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import hdrs, web

from proxy.app_keys import CONFIG, LINKS, ORIGINALS, PROVIDER, PURGER
from proxy.errors import UploadsDisabled, UploadUnauthorized
from proxy.http.access.presign import is_presigned, verify_presigned
from proxy.http.object_path import parse_object_path
from proxy.http.request_target import path_and_query
from proxy.settings.uploads import UploadConfig
from proxy.storage.checksums import ExpectedDigests, verified
from proxy.storage.errors import BodyCutOff
from proxy.storage.links.sources import SCHEMES, LinkRef
from proxy.storage.provider import ObjectRef, StorageProvider
from proxy.storage.writes import WritePlan
from proxy.tiers.previews import PreviewSource

log = logging.getLogger(__name__)
UPLOAD_ROUTE = "upload"  # the `route` label of this route's request metrics
# Reads of the request body: large enough to keep per-chunk overhead small, small beside a part.
READ_CHUNK = 1024 * 1024
CHECKSUM_SHA256 = "x-amz-checksum-sha256"


async def put_object(request: web.Request) -> web.StreamResponse:
    """Authorize, stream the body to the provider, purge the key's cached entries, answer 201."""
    settings = request.app[CONFIG].uploads
    path, _, query = path_and_query(request).partition("?")
    who = _authorized_by(settings, request, path, query)
    source, provider, ref = _destination(request.app, path)
    plan = WritePlan(request.headers.get(hdrs.CONTENT_TYPE) or _guessed_type(ref.key), request.content_length,
                     settings.multipart_threshold, settings.part_size, settings.concurrency)
    plan.check_size()
    expected = ExpectedDigests.from_headers(request.headers.get("Content-MD5"), request.headers.get(CHECKSUM_SHA256))
    body = verified(_body_chunks(request), expected, plan.size, plan.max_size)
    result = await provider.write(ref, body, plan)
    removed = await request.app[PURGER].original(source, ref)
    log.info("upload by %s: %s/%s, %d bytes, etag %s; purged %s", who, ref.bucket, ref.key, result.size,
             result.etag, " ".join(f"{tier}={n}" for tier, n in removed.items()))
    return web.Response(status=201, headers={hdrs.ETAG: result.etag, hdrs.LOCATION: path})


def _authorized_by(settings: UploadConfig, request: web.Request, path: str, query: str) -> str:
    """Who allowed this PUT (`token #2`, `presigned URL`) for the log, or the refusal."""
    if not settings.enabled:
        raise UploadsDisabled()
    authorization = request.headers.get(hdrs.AUTHORIZATION)
    if authorization is not None:
        number = settings.tokens.token_number(authorization)
        if number is None:
            raise UploadUnauthorized()
        return f"token #{number}"
    if settings.signing_keys and is_presigned(query):
        verify_presigned(settings.signing_keys, request.method, path, query)
        return "presigned URL"
    raise UploadUnauthorized()


def _destination(app: web.Application, path: str) -> tuple[PreviewSource, StorageProvider, ObjectRef]:
    """Where the path writes: the main storage, or the provider of the links-file entry that lists the bucket."""
    scheme, _, rest = path.removeprefix("/links/").partition("/")
    if path.startswith("/links/") and scheme in SCHEMES:
        ref = parse_object_path("/" + rest)
        link = LinkRef(scheme, ref)
        return app[LINKS].resolve(link), app[LINKS].provider(link), ref
    return app[ORIGINALS], app[PROVIDER], parse_object_path(path)


async def _body_chunks(request: web.Request) -> AsyncIterator[bytes]:
    """The request body; a connection that breaks off is the client's fault (BodyCutOff), not the provider's."""
    try:
        async for chunk in request.content.iter_chunked(READ_CHUNK):
            yield chunk
    except (aiohttp.ClientError, ConnectionError) as error:
        raise BodyCutOff() from error


def _guessed_type(key: str) -> str:
    return mimetypes.guess_type(key)[0] or "application/octet-stream"
