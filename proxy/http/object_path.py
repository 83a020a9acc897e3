"""`/<bucket>/<key>` from the *raw* request path, checked before any I/O.

The raw path (the target's path and query as sent, request_target.path_and_query, so an absolute-form
target reads as its origin-form twin) is split on `/` first and each segment decoded after, so `%2F`
can't smuggle a separator in and `%2e%2e` can't pass as a harmless name.
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
    return _checked_ref([_decode(segment) for segment in raw_segments])


def parse_source_ref(source: str) -> ObjectRef:
    """The bucket and key of an already-decoded `<bucket>/<key>` (a preview's source), same checks."""
    segments = source.split("/")
    if len(segments) < 2 or not segments[-1]:
        raise InvalidObjectPath("expected <bucket>/<key> as the source")
    for segment in segments:
        _check_characters(segment)
    return _checked_ref(segments)


def _checked_ref(segments: list[str]) -> ObjectRef:
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
    if "/" in decoded:
        raise InvalidObjectPath("encoded '/' or '\\' is not allowed in a path segment")
    _check_characters(decoded)
    return decoded


def _check_characters(decoded: str) -> None:
    if "\\" in decoded:
        raise InvalidObjectPath("encoded '/' or '\\' is not allowed in a path segment")
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in decoded):
        raise InvalidObjectPath("control characters are not allowed in a path")
