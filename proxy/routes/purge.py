"""PURGE: remove an original with every preview and conversion made from it, a prefix of originals, or one preview.

    PURGE /<bucket>/<key>                 the original (storage tier) and its previews and conversions
    PURGE /<bucket>/<prefix>*             the same for every original whose key starts with <prefix>
    PURGE /links/<scheme>/<bucket>/<key>  the same for a linked original (a trailing * for a prefix)
    PURGE /previews/<signature>/...       that one preview (every version and negotiated format of it)

A path of one segment (`/`, `/healthz`) matches no PURGE route: 404, or 405 where GET is served.

Admins only: `Authorization: Bearer <token>`, one of ADMIN_TOKENS (401 with `WWW-Authenticate: Bearer`
otherwise; 403 while none is configured). The answer is 200 with the entries removed per tier, as
JSON; every purge writes one log line naming the token by its place (`token #2`), never the token.
A trailing `*` in the raw path marks a prefix (a key that ends with `*` is purged as `%2A`); an empty
prefix (a whole bucket) is refused, as a slip too costly to allow by accident. The hot lane never sees
PURGE: it answers only GET and HEAD.
"""

import dataclasses
import logging

from aiohttp import hdrs, web

from previews.errors import PublicError
from previews.grammar.option_table import apply_options
from previews.grammar.sdk_form import parse_sdk_form
from previews.grammar.url import parse_preview_url
from proxy.app_keys import CONFIG, LINKS, METRICS, ORIGINALS, PURGER
from proxy.errors import AdminDisabled, AdminUnauthorized, BadRequest
from proxy.http.access.signature import verify
from proxy.http.object_path import parse_object_path
from proxy.http.request_target import path_and_query
from proxy.storage.links.sources import SCHEMES, LinkRef
from proxy.tiers.keys import preview_key_prefix, preview_source_id
from proxy.tiers.preview_sources import preview_source
from proxy.tiers.previews import PreviewSource

log = logging.getLogger(__name__)
PURGE = "PURGE"
PURGE_ROUTE = "purge"  # the `route` label of this route's request metrics
USAGE = "PURGE needs /<bucket>/<key>, /<bucket>/<prefix>*, /links/<scheme>/<bucket>/<key> or a preview URL"
# The formats IMGPROXY_AUTO_WEBP/AVIF may pick for a URL that names none: each is a preview of its own.
NEGOTIATED_FORMATS = ("webp", "avif")


async def purge(request: web.Request) -> web.StreamResponse:
    """Check the admin token, purge what the path names, answer with the counts."""
    metrics = request.app[METRICS]
    try:
        token = _admin_token(request)
        what, removed = await _purge_target(request.app, path_and_query(request))
    except PublicError as error:
        metrics.purge_request(_OUTCOMES.get(type(error), "invalid"))
        raise
    metrics.purge_request("purged")
    log.info("purge by token #%d: %s: %s", token, what, " ".join(f"{tier}={n}" for tier, n in removed.items()))
    return web.json_response({"purged": what, "removed": removed})


_OUTCOMES: dict[type, str] = {AdminUnauthorized: "unauthorized", AdminDisabled: "disabled"}


def _admin_token(request: web.Request) -> int:
    """The place of the request's token in ADMIN_TOKENS, or the refusal."""
    admin = request.app[CONFIG].admin
    if not admin.tokens:
        raise AdminDisabled()
    number = admin.token_number(request.headers.get(hdrs.AUTHORIZATION, ""))
    if number is None:
        raise AdminUnauthorized()
    return number


async def _purge_target(app: web.Application, target: str) -> tuple[str, dict[str, int]]:
    """What the raw path and query name, purged: (a description for the log and the answer, counts)."""
    path = target.split("?", 1)[0]
    purger = app[PURGER]
    if path.startswith("/previews/"):
        return path, await purger.previews(_preview_key_prefixes(app, target))
    if path.startswith("/image-converter/"):
        raise BadRequest("PURGE the original (/<bucket>/<key>): it removes its conversions too")
    originals: PreviewSource = app[ORIGINALS]
    scheme, _, rest = path.removeprefix("/links/").partition("/")
    if path.startswith("/links/") and scheme in SCHEMES:
        path = "/" + rest
        originals = app[LINKS].resolve(LinkRef(scheme, parse_object_path(path + "x" if path.endswith("*") else path)))
    if path.count("/") < 2:
        raise BadRequest(USAGE)
    if not path.endswith("*"):
        ref = parse_object_path(path)
        return f"{ref.bucket}/{ref.key}", await purger.original(originals, ref)
    prefix_path = path[:-1]
    if prefix_path.endswith("/") and prefix_path.count("/") == 2:
        raise BadRequest("PURGE of a whole bucket is refused: name a prefix, /<bucket>/<prefix>*")
    # Checked as a key (segments, characters, length) with a stand-in for a last segment that may be empty.
    ref = parse_object_path(prefix_path + "x")
    prefix = ref.key[:-1]
    return f"{ref.bucket}/{prefix}*", await purger.prefix(originals, ref.bucket, prefix)


def _preview_key_prefixes(app: web.Application, target: str) -> tuple[str, ...]:
    """The key prefixes of the preview a URL names, checked as a GET of it would be (signature included).

    Its expiry is not checked: an expired URL's preview may still be on disk. With IMGPROXY_AUTO_WEBP or
    AVIF and no format in the URL, the negotiated formats are previews of their own, purged too.
    """
    settings = app[CONFIG].previews
    raw_path, _, query = target.partition("?")
    path = raw_path[len("/previews"):]
    url = parse_sdk_form(path, query) or parse_preview_url(path, query)  # Supervisely's older form too
    verify(settings.signature, url.signature, url.signed_path + (f"?{query}" if query else ""))
    options = apply_options(settings.render.defaults, url.options, settings.render.presets)
    if url.extension:
        options = dataclasses.replace(options, format=url.extension)
    originals, ref = preview_source(app, url.source, query)
    source_id = preview_source_id(originals.cache_key(ref), query)
    variants = [options]
    if not options.format:
        enabled = {"webp": settings.auto_webp, "avif": settings.auto_avif}
        variants += [dataclasses.replace(options, format=name) for name in NEGOTIATED_FORMATS if enabled[name]]
    return tuple(preview_key_prefix(variant.canonical(), source_id) for variant in variants)
