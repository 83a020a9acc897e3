"""Private buckets (PRIVATE_BUCKETS): who may read them, decided before any I/O, and what their answers say.

Each route that reads a bucket calls one of these as soon as it knows the bucket's name (parsed from
the path, a link resolved in the links table in memory), before any cache or provider is asked, so
a refused request costs no provider request and tells nothing of what the bucket holds:

- originals, links and conversions: `private_read_headers`. A bearer token (READ_TOKENS, UPLOAD_TOKENS
  or ADMIN_TOKENS) or a presigned GET of the path (http/access/presign.py; HEAD takes the GET's URL);
  otherwise 403, or 401 with `WWW-Authenticate: Bearer` for a token that is none of them.
- previews: `private_preview_cache_control`. Only a signed URL, so only while IMGPROXY_KEY is set
  (the route has checked the signature already). Not a token: the hot-previews map (hot/previews.py)
  answers a URL it has seen without reading any header, so only what the URL itself carries may open
  a preview; a kept answer is found only by its signed URL, never by an unsigned one.

Their answers carry PRIVATE_CACHE_CONTROL (private, never public or immutable) so no shared cache
keeps them, and, where a token may have opened them, `Vary: Authorization`.
"""

from collections.abc import Mapping

from aiohttp import hdrs, web

from proxy.app_keys import CONFIG
from proxy.config import Config
from proxy.errors import PrivateBucketForbidden, PrivateBucketUnauthorized, PrivatePreviewUnsigned
from proxy.http.access.presign import is_presigned, verify_presigned
from proxy.http.request_target import path_and_query

# The method a presigned read URL is signed for; a HEAD asks less of the same object.
READ_METHOD = hdrs.METH_GET


def private_read_headers(request: web.Request, bucket: str) -> dict[str, str]:
    """{} when `bucket` is not private. When it is: the headers its answer carries in place of the
    route's, if `request` may read it; else PrivateBucketForbidden or PrivateBucketUnauthorized."""
    config = request.app[CONFIG]
    settings = config.private_buckets
    if not settings.is_private(bucket):
        return {}
    _authorize(config, request)
    return {hdrs.CACHE_CONTROL: settings.cache_control, hdrs.VARY: hdrs.AUTHORIZATION}


def private_preview_cache_control(config: Config, bucket: str) -> str | None:
    """None when `bucket` is not private; PRIVATE_CACHE_CONTROL when it is and preview URLs are signed
    (the route has verified this one's signature); PrivatePreviewUnsigned when they are not."""
    settings = config.private_buckets
    if not settings.is_private(bucket):
        return None
    if not config.previews.signature.pairs:
        raise PrivatePreviewUnsigned()
    return settings.cache_control


def with_private_headers(headers: Mapping[str, str], private: Mapping[str, str]) -> dict[str, str]:
    """The route's `headers` with `private`'s in their place, one Vary naming both's fields."""
    merged = {**headers, **private}
    vary = [value for value in (headers.get(hdrs.VARY), private.get(hdrs.VARY)) if value]
    if vary:
        merged[hdrs.VARY] = ", ".join(vary)
    return merged


def _authorize(config: Config, request: web.Request) -> None:
    """Return if the request carries a known bearer token or a valid presigned GET of its path; raise else."""
    authorization = request.headers.get(hdrs.AUTHORIZATION)
    if authorization is not None:
        token_sets = (config.private_buckets.read_tokens, config.uploads.tokens, config.admin)
        # Every set is asked, each in constant time, so the time taken doesn't say which one matched.
        found = [tokens.token_number(authorization) for tokens in token_sets]
        if not any(found):
            raise PrivateBucketUnauthorized()
        return
    path, _, query = path_and_query(request).partition("?")
    keys = config.uploads.signing_keys
    if keys and is_presigned(query):
        verify_presigned(keys, READ_METHOD, path, query)
        return
    raise PrivateBucketForbidden()
