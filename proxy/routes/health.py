"""Operational routes: liveness, readiness and Prometheus metrics."""

import asyncio

from aiohttp import web

from proxy.app_keys import METRICS, PROVIDER, TIERS
from proxy.errors import ProxyError
from proxy.runtime.readiness import WorkersListening

READINESS_TIMEOUT = 3.0
# Set in each worker of a multi-worker server (proxy.runtime.server); absent in a single process.
WORKERS_LISTENING = web.AppKey("workers_listening", WorkersListening)


async def healthz(request: web.Request) -> web.Response:
    """The process is up and its event loop turns, and every worker listens (see proxy.runtime.readiness)."""
    starting = _still_starting(request.app)
    if starting is not None:
        return starting
    return web.Response(text="ok\n")


async def readyz(request: web.Request) -> web.Response:
    """Every worker listens, the caches are open and the storage provider answers."""
    starting = _still_starting(request.app)
    if starting is not None:
        return starting
    for tier in request.app[TIERS]:
        if not await asyncio.to_thread(tier.is_open):
            return web.Response(status=503, text=f"cache tier {tier.name} is not usable\n")
    try:
        async with asyncio.timeout(READINESS_TIMEOUT):
            await request.app[PROVIDER].check()
    except TimeoutError:
        return web.Response(status=503, text="storage provider did not answer in time\n")
    except ProxyError as error:
        return web.Response(status=503, text=f"storage provider is not ready: {error.reason}\n")
    return web.Response(text="ready\n")


def _still_starting(app: web.Application) -> web.Response | None:
    """503 while the supervisor has not yet seen every worker listen; None once it has (or with one process)."""
    listening = app.get(WORKERS_LISTENING)
    if listening is None or listening.complete():
        return None
    return web.Response(status=503, text=listening.describe() + "\n", headers={"Retry-After": "1"})


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text exposition, with the tiers' size gauges and the readiness gauge refreshed first."""
    registry = request.app[METRICS]
    for tier in request.app[TIERS]:
        size, entries = await asyncio.to_thread(tier.stats)
        registry.tier_stats(tier.name, size, entries, tier.config.size_limit)
    # The same check as /readyz, so an alert on readiness needs only the scrape (bounded by READINESS_TIMEOUT).
    registry.readiness((await readyz(request)).status == 200)
    # With several workers the exposition reads every worker's metrics files: off the loop. With one,
    # it reads the loop's own lock-free per-request numbers (proxy.metrics.event_loop): on the loop, where
    # nothing changes them meanwhile.
    body = await asyncio.to_thread(registry.exposition) if registry.shared else registry.exposition()
    return web.Response(body=body, content_type="text/plain", charset="utf-8",
                        headers={"Cache-Control": "no-store"})
