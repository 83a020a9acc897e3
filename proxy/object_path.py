"""`/<bucket>/<key>` from the *raw* request path, checked before any I/O.

The raw path is split on `/` first and each segment decoded after, so `%2F` can't smuggle a
separator in and `%2e%2e` can't pass as a harmless name.
"""

import re
from urllib.parse import unquote

from proxy.storage.errors import InvalidObjectPath
from proxy.storage.provider import ObjectRef

# S3's rules are stricter; this also admits the names local folders and Azure containers use.
_BUCKET = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}")
MAX_KEY_BYTES = 1024


def parse_object_path(raw_path: str) -> ObjectRef:
    """The bucket and key of `/<bucket>/<key>`, or InvalidObjectPath (400) with the reason."""
    path = raw_path.split("?", 1)[0]
    if not path.startswith("/"):
        raise InvalidObjectPath("path must start with /")
    raw_segments = path[1:].split("/")
    if len(raw_segments) < 2 or not raw_segments[-1]:
        raise InvalidObjectPath("expected /<bucket>/<key>")
    segments = [_decode(segment) for segment in raw_segments]
    bucket, key_segments = segments[0], segments[1:]
    if not _BUCKET.fullmatch(bucket):
        raise InvalidObjectPath("bucket name may hold only letters, digits, '.', '_' and '-'")
    for segment in key_segments:
        if segment in ("", ".", ".."):
            raise InvalidObjectPath("object key may not contain empty, '.' or '..' segments")
    key = "/".join(key_segments)
    if len(key.encode()) > MAX_KEY_BYTES:
        raise InvalidObjectPath(f"object key is longer than {MAX_KEY_BYTES} bytes")
    return ObjectRef(bucket, key)


def _decode(segment: str) -> str:
    try:
        decoded = unquote(segment, errors="strict")
    except UnicodeDecodeError:
        raise InvalidObjectPath("path is not valid UTF-8 after percent-decoding") from None
    if "/" in decoded or "\\" in decoded:
        raise InvalidObjectPath("encoded '/' or '\\' is not allowed in a path segment")
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in decoded):
        raise InvalidObjectPath("control characters are not allowed in a path")
    return decoded
