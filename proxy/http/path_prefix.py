"""IMGPROXY_PATH_PREFIX: every route under a prefix (`/img/previews/...`), as imgproxy does.

The routes are registered at their usual paths and moved under the prefix once all are in place, so
the composition root's table stays as it is. The operational routes (health, readiness, metrics)
stay at their bare paths: probes and scrapers talk to each instance directly, and a path an ingress
forwards under the prefix should not make the metrics public.

Handlers read the path through request_target.path_and_query, which takes the prefix off again, so
every route parses the path it always did.
"""

from aiohttp import web

PATH_PREFIX = web.AppKey("path_prefix", str)
# Routes that answer at their bare paths whatever the prefix.
OPERATIONAL_ROUTES = frozenset({"healthz", "health", "readyz", "metrics"})


def apply_path_prefix(app: web.Application, prefix: str) -> None:
    """Move every route but the operational ones under `prefix` ("" leaves them where they are)."""
    app[PATH_PREFIX] = prefix
    if not prefix:
        return
    router = app.router
    for resource in list(router.resources()):
        if resource.name in OPERATIONAL_ROUTES:
            continue
        # The router indexes resources by their first path segment: re-index each under its new path.
        router.unindex_resource(resource)
        resource.add_prefix(prefix)
        router.index_resource(resource)
