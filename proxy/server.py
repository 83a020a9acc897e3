"""Running the app on uvloop, on a real socket, and saying where it listens."""

import asyncio
import logging
import signal
import socket

import uvloop
from aiohttp import web

from proxy.app import build_app
from proxy.app_keys import CONFIG, HOT_PREVIEWS, LINKS, METRICS
from proxy.config import Config
from proxy.hot_lane import HotLane
from proxy.hot_lane_server import HotLaneSite
from proxy.sample import sample_url_path

log = logging.getLogger(__name__)
SHUTDOWN_SECONDS = 10
ACCESS_LOG_FORMAT = '%a "%r" %s %b %Tfs "%{X-Cache}o" "%{User-Agent}i"'


def serve(config: Config) -> None:
    """Serve until SIGINT or SIGTERM. Port 0 picks a free port; the chosen one is printed."""
    uvloop.run(_serve(config))


async def _serve(config: Config) -> None:
    app = build_app(config)
    runner = web.AppRunner(app, access_log=logging.getLogger("aiohttp.access") if config.server.access_log
                           else None, access_log_format=ACCESS_LOG_FORMAT, handler_cancellation=True)
    await runner.setup()
    sock = socket.socket(socket.AF_INET6 if ":" in config.server.host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((config.server.host, config.server.port))
    site = _site(runner, sock, app)
    await site.start()
    host, port = sock.getsockname()[:2]
    base = f"http://{host if ':' not in host else f'[{host}]'}:{port}"
    # Tests and scripts read this line to learn the port; keep its shape.
    print(f"preview-proxy listening on {base}", flush=True)
    sample = sample_url_path(config)
    if sample is not None:
        print(f"try: {base}{sample}", flush=True)
        print(f"and a preview: {base}/previews/q/ext:jpeg/resize:fill:300:0:0/q:70/plain{sample}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    # SIGHUP re-reads the links file (REMOTE_LINKS_PATH); requests in flight are not disturbed.
    loop.add_signal_handler(signal.SIGHUP, app[LINKS].reload_soon)
    await stop.wait()
    log.info("shutting down")
    await runner.cleanup()


def _site(runner: web.AppRunner, sock: socket.socket, app: web.Application) -> web.SockSite:
    """The listening site: with the hot lane in front of aiohttp when it is on (and can be: the lane
    writes no access log line, and with no memory budget there is nothing hot)."""
    config = app[CONFIG]
    hot = app[HOT_PREVIEWS]
    if config.server.hot_lane and not config.server.access_log and hot.enabled:
        lane = HotLane(hot, app[LINKS], config.previews, app[METRICS])
        return HotLaneSite(runner, sock, lane, shutdown_timeout=SHUTDOWN_SECONDS)
    return web.SockSite(runner, sock, shutdown_timeout=SHUTDOWN_SECONDS)
