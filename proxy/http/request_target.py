"""The path and query of a request exactly as the client wrote them, whatever the form of its target.

A server must accept a target in absolute-form (`GET http://host/photos/a.jpg HTTP/1.1`, RFC 9112
section 3.2.2), not only origin-form (`GET /photos/a.jpg`). aiohttp routes both by their path, but its
`raw_path` is the whole target: with the scheme and authority in front, every handler that reads the
raw path (it must, to split before percent-decoding and to check signatures over the bytes as sent)
would see `http://host/...`. This gives them the same string for both forms, so both are served alike,
signatures included (imgproxy signs the path, never the host).
"""

import re

from aiohttp import web

# `scheme://authority`: the authority ends at the first `/`, `?` or `#` (RFC 3986 section 3.2), as
# yarl reads it for aiohttp's router.
_SCHEME_AND_AUTHORITY = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^/?#]*")


def path_and_query(request: web.BaseRequest) -> str:
    """The request's path and query, still percent-encoded: the target itself in origin-form, and
    what follows the authority in absolute-form (`/` when that is empty or only a query)."""
    target = request.raw_path
    if target.startswith("/"):
        return target
    found = _SCHEME_AND_AUTHORITY.match(target)
    if found is None:
        return target  # not a form aiohttp routes to these handlers; they refuse it as before
    rest = target[found.end():]
    return rest if rest.startswith("/") else "/" + rest
