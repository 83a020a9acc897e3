"""The previews a warm run makes: imgproxy options, turned into the request a GET would make.

`--previews rs:fit:300:0/q:70` names the options part of a preview URL; a whole preview path
(`/previews/<signature>/<options>/plain/<source>[@ext]`) is accepted too, and only its options and
extension are kept. The request is built with the same functions as the previews route, so the
previews-tier key is the one a later `GET /previews/<sig>/<options>/plain/<source>` looks up
(without an Accept header: with IMGPROXY_AUTO_WEBP/AVIF on, name the format, `f:webp`).
"""

import dataclasses
from dataclasses import dataclass

from aiohttp import web

from previews.grammar.option_table import apply_options
from previews.grammar.options import ProcessingOptions
from previews.grammar.url import parse_preview_url
from proxy.settings.previews import PreviewsConfig
from proxy.tiers.keys import preview_source_id
from proxy.tiers.preview_sources import preview_source
from proxy.tiers.previews import PreviewRequest

ROUTE_PREFIX = "previews/"
# A stand-in source when the text has none: only the options are parsed from it.
_NO_SOURCE = "plain/-"


@dataclass(frozen=True)
class PreviewSpec:
    """One `--previews` value as given, and its options with the configured defaults and presets applied."""

    text: str
    options: ProcessingOptions


def parse_preview_spec(text: str, settings: PreviewsConfig) -> PreviewSpec:
    """The options of `text`; previews.errors.PublicError (with its reason) if they are not valid."""
    path = text.strip().strip("/")
    if path.startswith(ROUTE_PREFIX):
        path = path[len(ROUTE_PREFIX):].partition("/")[2]  # drop the route and the signature
    segments = path.split("/")
    has_source = any(":" not in segment for segment in segments)
    url = parse_preview_url(f"/-/{path}" if has_source else f"/-/{path}/{_NO_SOURCE}")
    options = apply_options(settings.render.defaults, url.options, settings.render.presets)
    if url.extension:  # as the route does with `@<ext>`
        options = dataclasses.replace(options, format=url.extension)
    return PreviewSpec(text, options)


def preview_request(app: web.Application, source: str, spec: PreviewSpec) -> PreviewRequest:
    """The request `GET /previews/<sig>/<options>/plain/<source>` makes, without Accept or a query string."""
    originals, ref = preview_source(app, source, "")
    source_id = preview_source_id(originals.cache_key(ref), "")
    return PreviewRequest(ref, source_id, spec.options, spec.options.format or "auto", originals)
