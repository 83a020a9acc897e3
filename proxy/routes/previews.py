"""GET and HEAD `/previews/<signature>/<options...>/<source>`: imgproxy's URL syntax.

Supervisely's older `/previews/<w>x<h>,<format>,q<quality>/<source>` is read as its imgproxy
equivalent (previews/grammar/sdk_form.py), so both share one cache entry.

Everything is checked before any I/O, in this order: the path's grammar, the signature, the options,
the expiry and the source. Then the Previews service finds or renders the image. A URL whose answer
was found in memory before is answered from the hot-previews map without those steps (hot/previews.py).
Its headers are built once, by preview_headers.py, whichever way it goes out.
"""

import dataclasses
import time
from collections.abc import Callable

from aiohttp import hdrs, web

from previews.grammar.option_table import apply_options
from previews.grammar.options import ProcessingOptions
from previews.grammar.sdk_form import parse_sdk_form
from previews.grammar.url import parse_preview_url
from proxy.app_keys import CONFIG, HOT_PREVIEWS, LINKS, METRICS, PREVIEWS
from proxy.errors import Forbidden
from proxy.hot.previews import HotPreviews, Refresh, answer, hot_key
from proxy.http.access.private_buckets import private_preview_cache_control
from proxy.http.access.signature import verify
from proxy.http.cache_status import CacheAnswer
from proxy.http.request_target import path_and_query, target_as_sent
from proxy.http.respond import respond
from proxy.routes.links import changing_source_cache_control
from proxy.routes.preview_headers import PreviewHeaders, preview_headers
from proxy.settings.previews import PreviewsConfig
from proxy.storage.links.config import LinksConfig
from proxy.tiers.keys import preview_source_id
from proxy.tiers.preview_sources import preview_source
from proxy.tiers.previews import FoundPreview, PreviewRequest, Previews

PREFIX = "/previews"
PREVIEW_ROUTE = "preview"  # the `route` label of this route's request metrics


async def get_preview(request: web.Request) -> web.StreamResponse:
    """Serve a preview from the previews cache, rendering it on a miss."""
    config = request.app[CONFIG]
    settings = config.previews
    accept = request.headers.get(hdrs.ACCEPT, "")
    hot = request.app[HOT_PREVIEWS]
    target = path_and_query(request)  # absolute-form targets are served (and kept) as their path and query
    # Kept under the target as sent, path prefix included: the hot lane, which knows no prefix, never
    # finds an entry for an unprefixed path that aiohttp would not route here.
    key = hot_key(target_as_sent(request), negotiated_format(accept, settings) or "")
    links = request.app[LINKS].config  # read before resolving: a reload meanwhile must not bless this answer
    entry = hot.find(key, links)
    if entry is not None:
        return await answer(request, entry, hot)
    raw_path, _, query = target.partition("?")
    path = raw_path[len(PREFIX):]
    url = parse_sdk_form(path, query) or parse_preview_url(path, query)
    # The query string belongs to the source (imgproxy URLs have none), so it is signed with the path.
    verify(settings.signature, url.signature, url.signed_path + (f"?{query}" if query else ""))
    options = apply_options(settings.render.defaults, url.options, settings.render.presets)
    if url.extension:
        options = dataclasses.replace(options, format=url.extension)
    if options.expires and options.expires < time.time():  # 0 means "never", as in imgproxy
        raise Forbidden("the URL has expired")
    # `<bucket>/<key>` of the main storage, a link (`s3://bucket/key`, ...) through the links file,
    # or a conversion of either (`image-converter/convert/<bucket>/<key>`).
    originals, ref = preview_source(request.app, url.source, query)
    private_cache_control = private_preview_cache_control(config, ref.bucket)  # a private source: signed URLs only
    options, negotiated = _negotiate_format(options, accept, settings)
    source_id = preview_source_id(originals.cache_key(ref), query)
    previews = request.app[PREVIEWS]
    preview_request = PreviewRequest(ref, source_id, options, options.format or "auto", originals)
    found = await previews.get(preview_request)
    preview = found.preview
    # A preview's URL doesn't carry its source's version: one of a source that can change is not immutable.
    cache_control = (private_cache_control or changing_source_cache_control(config, url.source)
                     or settings.cache_control)

    def answer_of(found: FoundPreview) -> tuple[CacheAnswer, PreviewHeaders]:
        cache = CacheAnswer(previews.tier_name, found.cache_status, found.preview.stored_at, stored=True)
        return cache, preview_headers(found.preview.meta.info, cache_control, options, ref.key, cache, negotiated)

    cache, headers = answer_of(found)
    if hot.enabled:
        # Only answers from the store are kept: a render's bytes may come from an original that
        # changed while it ran, which the store refuses to keep too.
        _keep_hot(hot, key, found, headers, options.expires or 0, links,
                  lambda: _refresh_hot(hot, key, previews, preview_request, answer_of, options.expires or 0, links))
    try:
        return await respond(request, headers.info, headers.route, data=preview.data, file=preview.file,
                             use_sendfile=config.server.sendfile, cache=cache, metrics=request.app[METRICS])
    finally:
        if preview.file is not None:
            preview.file.close()


def _keep_hot(hot: HotPreviews, key: str, found: FoundPreview, headers: PreviewHeaders, expires: int,
              links: LinksConfig, refresh: Refresh) -> None:
    """Keep a store's answer in the hot map, with `refresh` to check it again before its trust ends."""
    preview = found.preview
    if found.from_store and preview.data is not None and preview.stored_at is not None:
        hot.keep(key, headers, preview.data, expires, found.source_trusted_until, links, preview.stored_at, refresh)


async def _refresh_hot(hot: HotPreviews, key: str, previews: Previews, preview_request: PreviewRequest,
                       answer_of: Callable[[FoundPreview], tuple[CacheAnswer, PreviewHeaders]], expires: int,
                       links: LinksConfig) -> None:
    """Check a hot answer's source and store again and keep what a hit would answer now, with the new
    trust (hot/previews.py): the same headers the full path would build for that hit."""
    found = await previews.recheck(preview_request)
    if found is not None:
        _keep_hot(hot, key, found, answer_of(found)[1], expires, links,
                  lambda: _refresh_hot(hot, key, previews, preview_request, answer_of, expires, links))


def _negotiate_format(options: ProcessingOptions, accept: str,
                      settings: PreviewsConfig) -> tuple[ProcessingOptions, bool]:
    """With no format in the URL, IMGPROXY_AUTO_AVIF/WEBP pick one from Accept (and the answer varies)."""
    if options.format or not (settings.auto_avif or settings.auto_webp):
        return options, False
    name = negotiated_format(accept, settings)
    return (dataclasses.replace(options, format=name) if name else options), True


def negotiated_format(accept: str, settings: PreviewsConfig) -> str | None:
    """The format IMGPROXY_AUTO_AVIF/WEBP pick for this Accept header, or None (then the URL's or the source's)."""
    if not (settings.auto_avif or settings.auto_webp):
        return None
    accepted = accept.lower()
    for enabled, name in ((settings.auto_avif, "avif"), (settings.auto_webp, "webp")):
        if enabled and f"image/{name}" in accepted:
            return name
    return None
