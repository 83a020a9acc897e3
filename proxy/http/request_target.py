"""The path and query of a request exactly as the client wrote them, whatever the form of its target.

A server must accept a target in absolute-form (`GET http://host/photos/a.jpg HTTP/1.1`, RFC 9112
section 3.2.2), not only origin-form (`GET /photos/a.jpg`). aiohttp routes both by their path, but its
`raw_path` is the whole target: with the scheme and authority in front, every handler that reads the
raw path (it must, to split before percent-decoding and to check signatures over the bytes as sent)
would see `http://host/...`. This gives them the same string for both forms, so both are served alike,
signatures included (imgproxy signs the path, never the host).

With IMGPROXY_PATH_PREFIX (path_prefix.py) the router matched the prefix: handlers get the path without
it, so `/img/previews/...` parses as `/previews/...` and a signature covers what it covers in imgproxy.
"""

import re

from aiohttp import web

from proxy.errors import NotFound
from proxy.http.path_prefix import PATH_PREFIX

# `scheme://authority`: the authority ends at the first `/`, `?` or `#` (RFC 3986 section 3.2), as
# yarl reads it for aiohttp's router.
_SCHEME_AND_AUTHORITY = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^/?#]*")


def path_and_query(request: web.Request) -> str:
    """The request's path and query after the path prefix, if any (see target_as_sent)."""
    target = target_as_sent(request)
    prefix = request.app.get(PATH_PREFIX, "")
    if not prefix:
        return target
    if not target.startswith(prefix + "/"):
        # The router matched the prefix once decoded (`/im%67/...`): the raw path does not start with it.
        raise NotFound(f"the path is not under {prefix}/ as sent")
    return target[len(prefix):]


def target_as_sent(request: web.BaseRequest) -> str:
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
