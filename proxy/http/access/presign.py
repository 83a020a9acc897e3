"""Presigned URLs: `?expires=<unix seconds>&signature=<base64url HMAC-SHA256>` over the method, path and expiry.

The string signed is `<METHOD>\\n<path>\\n<expires>`: the method in capitals, the path exactly as it is
sent (percent-encoded, without the query) and the expiry in decimal. The signature is the HMAC-SHA256
of it under one of SIGNING_KEYS, in unpadded base64url. docs/uploads.md shows how an application
computes it. A PUT's URL writes (routes/uploads.py); a GET's reads a private bucket
(http/access/private_buckets.py), and is taken for a HEAD of the same path too.
"""

import base64
import hashlib
import hmac
import time
from urllib.parse import parse_qs, quote, unquote_plus

from proxy.errors import Forbidden

EXPIRES = "expires"
SIGNATURE = "signature"


def string_to_sign(method: str, path: str, expires: int) -> bytes:
    """What the signature covers: the method, the raw path and the expiry, one a line."""
    return f"{method.upper()}\n{path}\n{expires}".encode()


def presign_signature(key: bytes, method: str, path: str, expires: int) -> str:
    """The unpadded base64url HMAC-SHA256 of `string_to_sign` under `key`."""
    digest = hmac.new(key, string_to_sign(method, path, expires), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def object_url_path(bucket: str, key: str) -> str:
    """`/<bucket>/<key>` percent-encoded as a client sends it (each segment quoted, `/` kept)."""
    return "/" + quote(bucket, safe="") + "/" + quote(key, safe="/")


def presigned_query(key: bytes, method: str, path: str, expires: int) -> str:
    """The query string that makes `method path` allowed until `expires` (unix seconds)."""
    return f"{EXPIRES}={expires}&{SIGNATURE}={presign_signature(key, method, path, expires)}"


def is_presigned(query: str) -> bool:
    """Whether a raw query string carries a signature at all."""
    return SIGNATURE in parse_qs(query)


def without_presign(query: str) -> str:
    """A raw query string without its `expires` and `signature` fields, the others kept as sent (a
    conversion's `page=`, which the signature does not cover)."""
    if SIGNATURE not in query and EXPIRES not in query:
        return query
    kept = [part for part in query.split("&") if unquote_plus(part.partition("=")[0]) not in (EXPIRES, SIGNATURE)]
    return "&".join(kept)


def verify_presigned(keys: tuple[bytes, ...], method: str, path: str, query: str, now: float | None = None) -> None:
    """Raise Forbidden unless `query` signs `method path` under one of `keys` and has not expired.

    Every key is tried, each compared in constant time, so the time taken tells nothing about the
    right signature; an expired URL is refused whatever its signature.
    """
    fields = parse_qs(query, keep_blank_values=True)
    expires_text = (fields.get(EXPIRES) or [""])[0]
    given = (fields.get(SIGNATURE) or [""])[0]
    if not expires_text.isascii() or not expires_text.isdigit() or not given:
        raise Forbidden("a presigned URL needs expires=<unix seconds> and signature=")
    expires = int(expires_text)
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(given.encode(), presign_signature(key, method, path, expires).encode())
    if not matched:
        raise Forbidden("invalid signature")
    if (time.time() if now is None else now) > expires:
        raise Forbidden("the presigned URL has expired")
