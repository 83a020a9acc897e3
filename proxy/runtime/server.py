"""Running the app on uvloop, on a real socket, and saying where it listens.

With one worker (SERVER_WORKERS=1) the app runs in this process, with no supervisor. With more,
proxy.runtime.supervisor starts the workers, and each one runs `serve_worker`: the same app, on its own
SO_REUSEPORT socket on the shared port, reporting to the supervisor rather than printing, and
answering /healthz 503 until the supervisor has seen every worker listen (proxy.runtime.readiness).
"""

import asyncio
import contextlib
import logging
import signal
import socket
import sys
from multiprocessing.connection import Connection
from pathlib import Path

import uvloop
from aiohttp import web

from cache.startup import prepare_tiers
from proxy.app import build_app
from proxy.app_keys import CONFIG, HOT_PREVIEWS, LINKS, METRICS
from proxy.config import Config
from proxy.hot.lane import HotLane
from proxy.hot.lane_server import HotLaneListener
from proxy.logs.access import ACCESS_LOGGER, AccessLogger
from proxy.logs.buffered_access import BufferedAccessLog
from proxy.metrics.listener import start_metrics_listener
from proxy.render.shared_bounds import SharedBounds
from proxy.routes.health import WORKERS_LISTENING
from proxy.runtime.listen import announce, base_url, cannot_listen, listening_socket
from proxy.runtime.log_floods import install_flood_filters
from proxy.runtime.log_redaction import install_redaction, register_config_secrets
from proxy.runtime.readiness import READY, WorkersListening

log = logging.getLogger(__name__)
SHUTDOWN_SECONDS = 10


def serve(config: Config) -> int:
    """Serve in this one process until SIGINT or SIGTERM; return the exit status.

    Port 0 picks a free port; the chosen one is printed. (Several workers: proxy.runtime.supervisor.)
    """
    binds = [(config.server.host, config.server.port)]
    if config.server.metrics_bind is not None:
        binds.append(config.server.metrics_bind)
    with contextlib.ExitStack() as stack:
        socks = []
        for host, port in binds:
            try:
                socks.append(stack.enter_context(listening_socket(host, port, reuse_port=False)))
            except OSError as error:
                print(f"preview-proxy: {cannot_listen(host, port, error)}", file=sys.stderr)
                return 1
        prepare_tiers(config.cache.tiers())
        metrics_sock = socks[1] if len(socks) > 1 else None
        uvloop.run(_serve(config, supervisor=None, metrics_dir=None, listening=None, sock=socks[0],
                          metrics_sock=metrics_sock))
    return 0


def serve_worker(config: Config, supervisor: Connection, metrics_dir: Path, listening: WorkersListening,
                 serves_metrics: bool, shared: SharedBounds | None = None, render_host: str | None = None) -> None:
    """One worker of a supervised server, until SIGTERM or until its supervisor is gone. With
    `serves_metrics` it also answers /metrics on METRICS_BIND (proxy.metrics.listener); its renders
    share cores and memory with the other workers' (`shared`, proxy.render.shared_bounds), and its large
    renders run in the render host at `render_host` (proxy.render.host)."""
    bind = config.server.metrics_bind if serves_metrics else None
    with contextlib.ExitStack() as stack:
        sock = stack.enter_context(listening_socket(config.server.host, config.server.port, reuse_port=True))
        metrics_sock = stack.enter_context(listening_socket(*bind, reuse_port=False)) if bind else None
        uvloop.run(_serve(config, supervisor, metrics_dir, listening, sock, metrics_sock, shared, render_host))


async def _serve(config: Config, supervisor: Connection | None, metrics_dir: Path | None,
                 listening: WorkersListening | None, sock: socket.socket,
                 metrics_sock: socket.socket | None, shared: SharedBounds | None = None,
                 render_host: str | None = None) -> None:
    # Here, after the process configured its logging (a worker does so before it imports this module).
    register_config_secrets(config)
    install_redaction()
    install_flood_filters()
    app = build_app(config, metrics_dir, shared, render_host)
    if listening is not None:
        app[WORKERS_LISTENING] = listening
    runner = web.AppRunner(app, access_log=ACCESS_LOGGER if config.server.access_log else None,
                           access_log_class=AccessLogger, handler_cancellation=True, shutdown_timeout=SHUTDOWN_SECONDS)
    await runner.setup()
    site = _site(runner, sock, app)
    await site.start()
    metrics_runner = await start_metrics_listener(app, metrics_sock) if metrics_sock is not None else None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    # SIGHUP re-reads the links file (REMOTE_LINKS_PATH); requests in flight are not disturbed.
    loop.add_signal_handler(signal.SIGHUP, app[LINKS].reload_soon)
    if supervisor is None:
        loop.add_signal_handler(signal.SIGINT, stop.set)
        announce(config, base_url(sock))
    else:
        # A worker leaves SIGINT to its supervisor (a terminal's Ctrl-C reaches the whole process group).
        _watch_supervisor(loop, supervisor, stop)
        supervisor.send_bytes(READY)
    await stop.wait()
    log.info("shutting down")
    if metrics_runner is not None:
        await metrics_runner.cleanup()
    await site.stop()  # first, as runner.cleanup() does with the sites it knows
    await runner.cleanup()


def _watch_supervisor(loop: asyncio.AbstractEventLoop, supervisor: Connection, stop: asyncio.Event) -> None:
    """Stop when the supervisor is gone (even SIGKILLed): its end of the channel closes, ours reads EOF.

    The supervisor never writes to the channel, so it becomes readable only then.
    """
    fd = supervisor.fileno()

    def gone() -> None:
        loop.remove_reader(fd)  # readable for good from now on: once is enough
        log.warning("the supervisor is gone; stopping")
        stop.set()

    loop.add_reader(fd, gone)


def _site(runner: web.AppRunner, sock: socket.socket, app: web.Application) -> web.SockSite | HotLaneListener:
    """The listening site: with the hot lane in front of aiohttp when it is on (and can be: with no
    memory budget there is nothing hot). The lane writes its access lines in batches."""
    config = app[CONFIG]
    hot = app[HOT_PREVIEWS]
    if config.server.hot_lane and hot.enabled:
        access_log = BufferedAccessLog() if config.server.access_log else None
        if access_log is not None and not access_log.enabled:
            access_log = None  # LOG_LEVEL above info: no access line is written, so none is kept
        lane = HotLane(hot, app[LINKS], config.previews, app[METRICS], access_log)
        return HotLaneListener(runner, sock, lane)
    return web.SockSite(runner, sock)
