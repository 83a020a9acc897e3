"""CORS (the Fetch standard's CORS protocol): which answers a page on another origin may read, and preflights.

Every answer of the image routes, errors included (a page must be able to read a 4xx's reason), gets
its CORS headers when it is prepared, after Date and Server: they depend on the request's Origin, so
they are computed per request, never stored with a cached answer. The hot lane appends the very same
bytes after its Date and Server lines (hot/lane.py), from `CorsPolicy.wire_lines`.

With a list of origins the answer depends on Origin even where it carries no CORS header (another
origin, or none), so every answer says `Vary: Origin` and a shared cache keeps them apart. With `*`
every answer is the same, and no Vary is needed.

No `Access-Control-Allow-Credentials`: the image routes read no cookie and no HTTP authentication
(signed URLs carry their own authorisation), so a page never needs to send credentials; without it a
browser does not hand a page the answer to a request made with them, so no cookie of this host can
ever be what lets a page read something. An upload's bearer token is no credential in that sense: the
page sets the Authorization header itself, which a preflight for PUT allows (when uploads are on).
"""

from collections.abc import Iterable
from dataclasses import dataclass

from aiohttp import hdrs, web
from multidict import CIMultiDict

from proxy.settings.cors import CorsConfig

# The answers' headers a script may read beyond the CORS-safelisted ones. Content-Length and
# Last-Modified are safelisted by now; they are listed for older browsers.
# Location: where an upload's 201 says the new object is (its ETag is listed already).
EXPOSED_HEADERS = ("ETag, Last-Modified, Content-Length, Content-Range, Accept-Ranges, Content-Disposition, "
                   "X-Cache, Cache-Status, Age, X-Converted-From, Location")
ALLOWED_METHODS = "GET, HEAD, OPTIONS"
WRITABLE_METHODS = "GET, HEAD, OPTIONS, PUT"
# Request headers a preflight may ask for: those the image routes read (ranges, revalidation, format
# negotiation). Authorization is not among them: no GET route reads it, and a page has no token to send.
ALLOWED_REQUEST_HEADERS = frozenset(name.lower() for name in (
    hdrs.RANGE, hdrs.IF_RANGE, hdrs.IF_MATCH, hdrs.IF_NONE_MATCH, hdrs.IF_MODIFIED_SINCE,
    hdrs.IF_UNMODIFIED_SINCE, hdrs.ACCEPT))
# What an uploading page sends with its PUT (proxy/routes/uploads.py reads each): its token, the body's
# type (any but the three form types needs a preflight), and the checksums the body is verified against.
UPLOAD_REQUEST_HEADERS = ALLOWED_REQUEST_HEADERS | frozenset(name.lower() for name in (
    hdrs.AUTHORIZATION, hdrs.CONTENT_TYPE, "Content-MD5", "x-amz-checksum-sha256"))
TIMING_ALLOW_ORIGIN = "Timing-Allow-Origin"
Header = tuple[str, str]


@dataclass(frozen=True)
class CorsWrites:
    """Uploads across origins: PUT preflights allowed on the `paths` routes (whose paths take a PUT), and
    the CORS headers on the answers of `route` (the PUT's own, its 201 and its refusals)."""

    route: str
    paths: frozenset[str]


class CorsPolicy:
    """The CORS headers of one answer, from the request's Origin."""

    def __init__(self, config: CorsConfig) -> None:
        self.config = config
        self.varies = not config.any_origin  # every answer says Vary: Origin
        self._any = _allowing("*") if config.any_origin else ()
        self._by_origin = {origin: _allowing(origin) for origin in config.origins}
        self._wire_any = _wire(self._any)
        self._wire_by_origin = {origin: _wire(headers) for origin, headers in self._by_origin.items()}

    def headers(self, origin: str | None) -> tuple[Header, ...]:
        """The headers that let `origin` read an answer; none for an origin not allowed (or no Origin)."""
        if self.config.any_origin:
            return self._any
        return self._by_origin.get(origin or "", ())

    def wire_lines(self, origin: str | None) -> bytes:
        """`headers(origin)` as the header lines aiohttp writes for them."""
        if self.config.any_origin:
            return self._wire_any
        return self._wire_by_origin.get(origin or "", b"")

    def preflight(self, origin: str | None, method: str | None, asked: str, writable: bool = False) -> web.Response:
        """The 204 to an OPTIONS. To an allowed origin's preflight: the methods, the asked headers among
        those allowed, and how long to keep it. To any other, no permission: the browser then reports
        the missing Access-Control-Allow-Origin, the clearest message a page's developer can get (a 403
        would read "preflight status not ok"), as the usual nginx recipes answer. On a `writable` path
        (uploads on) PUT is allowed too, and a PUT's preflight may ask for the headers of an upload."""
        methods = WRITABLE_METHODS if writable else ALLOWED_METHODS
        response = web.Response(status=204, headers={hdrs.ALLOW: methods})
        if method is None or not self.headers(origin):
            return response  # a plain OPTIONS (RFC 9110 section 9.3.7), or an origin not allowed
        response.headers[hdrs.ACCESS_CONTROL_ALLOW_METHODS] = methods
        permitted = UPLOAD_REQUEST_HEADERS if writable and method == hdrs.METH_PUT else ALLOWED_REQUEST_HEADERS
        names = [name.strip().lower() for name in asked.split(",") if name.strip()]
        allowed = [name for name in names if name in permitted]
        if allowed:
            response.headers[hdrs.ACCESS_CONTROL_ALLOW_HEADERS] = ", ".join(allowed)
        response.headers[hdrs.ACCESS_CONTROL_MAX_AGE] = str(self.config.max_age_seconds)
        return response


def _allowing(origin: str) -> tuple[Header, ...]:
    return ((hdrs.ACCESS_CONTROL_ALLOW_ORIGIN, origin), (hdrs.ACCESS_CONTROL_EXPOSE_HEADERS, EXPOSED_HEADERS),
            (TIMING_ALLOW_ORIGIN, origin))


def _wire(headers: Iterable[Header]) -> bytes:
    return "".join(f"{name}: {value}\r\n" for name, value in headers).encode("ascii")


def add_vary_origin(headers: CIMultiDict[str]) -> None:
    """Name Origin in the Vary of `headers`: merged into the one there (in its place, so a cache that
    reads one Vary line sees both), or a new one."""
    vary = headers.get(hdrs.VARY)
    if vary is None:
        headers[hdrs.VARY] = "Origin"
    elif not any(token.strip().lower() in ("origin", "*") for token in vary.split(",")):
        headers[hdrs.VARY] = f"{vary}, Origin"


def cors_policy(config: CorsConfig | None) -> CorsPolicy | None:
    """The policy of the CORS settings, or None when CORS is off."""
    return CorsPolicy(config) if config is not None else None


def install_cors(app: web.Application, policy: CorsPolicy | None, routes: Iterable[str],
                 writes: CorsWrites | None = None) -> None:
    """CORS on the named `routes` (and on answers no route matched: their 404s and 405s): their
    answers' headers, and OPTIONS answered on them; with `writes` (uploads on), PUT preflights on
    its paths and the headers on its route's answers. Nothing at all when `policy` is None."""
    if policy is None:
        return
    preflighted = frozenset(routes)
    names = preflighted | {writes.route} if writes else preflighted
    writable = writes.paths if writes else frozenset()

    async def add_headers(request: web.Request, response: web.StreamResponse) -> None:
        if request.match_info.route.name not in names and request.match_info.route.name is not None:
            return  # health and metrics: for the operator's tools, not for pages
        if policy.varies:
            add_vary_origin(response.headers)
        response.headers.extend(policy.headers(request.headers.get(hdrs.ORIGIN)))

    async def preflight(request: web.Request) -> web.StreamResponse:
        headers = request.headers
        return policy.preflight(headers.get(hdrs.ORIGIN), headers.get(hdrs.ACCESS_CONTROL_REQUEST_METHOD),
                                headers.get(hdrs.ACCESS_CONTROL_REQUEST_HEADERS, ""),
                                request.match_info.route.resource is not None
                                and request.match_info.route.resource.name in writable)

    for resource in app.router.resources():
        if resource.name in preflighted and isinstance(resource, web.Resource):
            resource.add_route(hdrs.METH_OPTIONS, preflight)
    app.on_response_prepare.append(add_headers)
