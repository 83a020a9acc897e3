"""/metrics on an address of its own (METRICS_BIND), so that the public port does not publish it.

The listener is a second, one-route aiohttp app in the process that serves it, sharing that process's
metrics, tiers and provider: the scrape is the same as on the main port (tiers measured, readiness
checked, every worker's figures summed). The main app then has no /metrics route: the public port
answers it 404.

Which process: the only one of a single-process server; with several workers, the worker in the
supervisor's first slot. The supervisor runs no app (no tiers, no provider, no event loop), and the
folder every worker writes to lets any one of them answer for all. When that worker dies, the
supervisor starts another in its slot, which listens again: scrapes fail for the moment between.
"""

import logging
import socket

from aiohttp import web

from proxy.app_keys import METRICS, PROVIDER, TIERS
from proxy.routes import health

log = logging.getLogger(__name__)


async def start_metrics_listener(app: web.Application, sock: socket.socket) -> web.AppRunner:
    """Answer /metrics for `app`'s process on `sock` (bound, not yet listening); the caller cleans the
    runner up when it stops."""
    metrics_app = web.Application()
    metrics_app[METRICS] = app[METRICS]
    metrics_app[TIERS] = app[TIERS]
    metrics_app[PROVIDER] = app[PROVIDER]
    listening = app.get(health.WORKERS_LISTENING)
    if listening is not None:
        metrics_app[health.WORKERS_LISTENING] = listening
    metrics_app.router.add_get("/metrics", health.metrics, name="metrics")
    runner = web.AppRunner(metrics_app, access_log=None)  # a scrape every few seconds is no news
    await runner.setup()
    await web.SockSite(runner, sock).start()
    host, port = sock.getsockname()[:2]
    log.info("metrics on http://%s:%d/metrics", host if ":" not in host else f"[{host}]", port)
    return runner
