"""AWS Signature Version 4 for the few S3 calls obstore does not make (listing and aborting multipart uploads).

The header form of https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html: a
canonical request (method, path, sorted query, sorted lower-case headers, payload hash), hashed into
a string to sign, signed with a key derived from the secret, date, region and service. S3 encodes
the path once (other services twice); this signer is for S3, and the published test suite's
single-encoded cases.
"""

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import quote, unquote, urlsplit

ALGORITHM = "AWS4-HMAC-SHA256"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
# RFC 3986's unreserved characters are never encoded; everything else is, as %XX in upper case.
UNRESERVED = "-_.~"


@dataclass(frozen=True)
class SigningKeys:
    """Who signs, and for which region and service (`s3` for the storage; the test suite says `service`);
    `session_token` for temporary keys (an IAM role's), sent and signed as X-Amz-Security-Token."""

    access_key: str
    secret_key: str = field(repr=False)
    region: str
    service: str = "s3"
    session_token: str | None = field(default=None, repr=False)


def sign(method: str, url: str, keys: SigningKeys, when: datetime, headers: Mapping[str, str] | None = None,
         payload_sha256: str = EMPTY_SHA256) -> dict[str, str]:
    """The request's headers with Host, X-Amz-Date, X-Amz-Content-Sha256 (for S3) and Authorization added.

    `url` is sent as it is: build it with `canonical_path` and `canonical_query` so that what is
    signed is what goes on the wire.
    """
    parts = urlsplit(url)
    stamp = when.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    signed: dict[str, str] = {"Host": parts.netloc, **(headers or {}), "X-Amz-Date": stamp}
    if keys.service == "s3":
        signed["X-Amz-Content-Sha256"] = payload_sha256
    if keys.session_token:
        signed["X-Amz-Security-Token"] = keys.session_token
    canonical_headers = {name.lower(): " ".join(value.split()) for name, value in signed.items()}
    names = sorted(canonical_headers)
    request = "\n".join([
        method.upper(),
        canonical_path(unquote(parts.path) or "/"),
        canonical_query(_query_pairs(parts.query)),
        "".join(f"{name}:{canonical_headers[name]}\n" for name in names),
        ";".join(names),
        payload_sha256,
    ])
    scope = f"{stamp[:8]}/{keys.region}/{keys.service}/aws4_request"
    to_sign = "\n".join([ALGORITHM, stamp, scope, hashlib.sha256(request.encode()).hexdigest()])
    signature = hmac.new(_signing_key(keys, stamp[:8]), to_sign.encode(), hashlib.sha256).hexdigest()
    signed["Authorization"] = (f"{ALGORITHM} Credential={keys.access_key}/{scope}, "
                               f"SignedHeaders={';'.join(names)}, Signature={signature}")
    return signed


def canonical_path(path: str) -> str:
    """`path` (not encoded) as S3 signs and receives it: every byte but unreserved ones and `/` as %XX."""
    return quote(path, safe="/" + UNRESERVED)


def canonical_query(pairs: list[tuple[str, str]]) -> str:
    """Name=value pairs, each side encoded, sorted by name then value; a name alone signs as `name=`."""
    encoded = sorted((quote(name, safe=UNRESERVED), quote(value, safe=UNRESERVED)) for name, value in pairs)
    return "&".join(f"{name}={value}" for name, value in encoded)


def _query_pairs(query: str) -> list[tuple[str, str]]:
    """Decoded pairs of a query string; `+` stays a plus (parse_qsl would read a space, and S3 does not)."""
    pairs = []
    for item in filter(None, query.split("&")):
        name, _, value = item.partition("=")
        pairs.append((unquote(name), unquote(value)))
    return pairs


def _signing_key(keys: SigningKeys, day: str) -> bytes:
    key = ("AWS4" + keys.secret_key).encode()
    for part in (day, keys.region, keys.service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key
