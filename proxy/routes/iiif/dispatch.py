"""GET and HEAD under `/iiif/`: the IIIF Image API's three resources, each parsed before any I/O.

A path that is no IIIF URL (another first segment than `2` or `3`, or another shape) keeps its plain
meaning, `/<bucket>/<key>` of a bucket named `iiif`, as `/links/` does for what is no link.
"""

from aiohttp import web

from previews.iiif.request import Resource, parse_iiif_path
from proxy.http.request_target import path_and_query
from proxy.routes.iiif.images import answer_image
from proxy.routes.iiif.info import answer_info, redirect_to_info
from proxy.routes.originals import get_original

PREFIX = "/iiif/"
IIIF_ROUTE = "iiif"  # the `route` label of this route's request metrics


async def get_iiif(request: web.Request) -> web.StreamResponse:
    """Answer an IIIF URL: info.json, an image, or the base URI's redirect."""
    raw_path = path_and_query(request).split("?", 1)[0]
    path = parse_iiif_path(raw_path[len(PREFIX):])
    if path is None:
        return await get_original(request)
    if path.resource is Resource.BASE:
        return redirect_to_info(request, path)
    if path.resource is Resource.INFO:
        return await answer_info(request, path)
    return await answer_image(request, path)
