"""One worker process of a supervised server: what proxy.runtime.supervisor starts (spawns) for each slot.

The supervisor starts workers with multiprocessing's `spawn` method: a fresh interpreter, never a
fork. obstore's Rust runtime and a running event loop don't survive a fork. This module imports
nothing heavy at the top, because the worker must set PROMETHEUS_MULTIPROC_DIR before
prometheus_client is first imported.
"""

import logging
import os
import signal
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

from proxy.config import Config
from proxy.logs.setup import configure_logging
from proxy.render.shared_bounds import SharedBounds
from proxy.runtime.exits import exit_without_teardown
from proxy.runtime.readiness import WorkersListening

METRICS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a worker gets from its supervisor (pickled into the new process)."""

    config: Config  # the supervisor's, with the port it chose: every worker serves the same settings
    metrics_dir: Path
    channel: Connection  # the worker says READY on it; its EOF means the supervisor is gone
    listening: WorkersListening  # how many workers listen, as the supervisor counts them (for /healthz)
    serves_metrics: bool = False  # this worker answers /metrics on METRICS_BIND (the first slot's)
    shared: SharedBounds | None = None  # the cores and memory every worker's renders share
    slot: int = 0  # this worker's place among the supervisor's
    render_host: str | None = None  # the socket of the process that runs the large renders (proxy.render.host)


def run_worker(spec: WorkerSpec) -> None:
    """The worker process's whole life: serve until told to stop, then leave with its exit status."""
    # Until the event loop installs its own handlers: a SIGHUP or SIGINT now must not kill the worker.
    # SIGINT stays ignored: the supervisor handles Ctrl-C and stops its workers with SIGTERM.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    # prometheus_client picks its multiprocess mode when it is first imported (proxy.runtime.server imports it).
    os.environ[METRICS_DIR_VARIABLE] = str(spec.metrics_dir)
    configure_logging(spec.config.logs, with_pid=True)
    from proxy.runtime.server import serve_worker

    if spec.shared is not None:
        spec.shared.attach(spec.slot)
    try:
        serve_worker(spec.config, spec.channel, spec.metrics_dir, spec.listening, spec.serves_metrics, spec.shared,
                     spec.render_host)
    except Exception:
        log.exception("worker failed")
        exit_without_teardown(1)
    exit_without_teardown(0)
