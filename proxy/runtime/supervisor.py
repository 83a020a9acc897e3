"""The supervisor of a server of several workers, or of one beside the render host (SERVER_WORKERS=auto
on two or more cores, proxy.config.read_workers): N worker processes on one port, sharing the disk tiers.

What it does, in order:
1. It binds the port first (port 0 picks one port for all the workers). It keeps that socket bound
   but never listening, so the port stays reserved while workers come and go. The kernel gives
   connections only to listening sockets. Each worker opens its own SO_REUSEPORT socket on the port,
   and the kernel spreads new connections over those sockets.
2. It prepares the tiers once (cache.startup). No worker may remove leftover part files: it can't
   tell them from the fills that other workers are writing.
3. It starts the workers with the `spawn` method (see proxy.runtime.worker), without multiprocessing's
   resource tracker (`_without_resource_tracker`). It gives them a fresh, empty
   folder for prometheus-client's multiprocess files (proxy.metrics.shared_folder), and removes that
   folder when it stops.
4. It counts the workers that have said READY (each one listens by then) in memory it shares with
   them (proxy.runtime.readiness): until all have, their /healthz answers 503. Then it prints the
   "listening" line. The count is for start-up only: a restarted worker doesn't lower it.
5. It forwards signals. SIGTERM and SIGINT stop every worker gracefully (the exit status is 0 if
   all of them exit 0). SIGHUP reaches every worker (links reload).
6. It replaces a worker that dies unexpectedly. The pause before the restart doubles with each
   quick death (capped), so a worker that can't start doesn't spin. A worker that dies while the
   server starts stops the whole start-up.
7. It runs the render host (proxy.render.host), the process where the workers' large renders run,
   and replaces it the same way when it dies, at start-up too: until it listens, the workers run
   their large renders themselves. It stops the host after the workers.
"""

import contextlib
import logging
import multiprocessing
import multiprocessing.connection
import multiprocessing.resource_tracker
import os
import signal
import sys
import time
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path

from prometheus_client import multiprocess

from cache.startup import prepare_tiers, remove_parts_of
from proxy.config import Config
from proxy.logs.setup import configure_logging
from proxy.metrics.process_figures import REFRESH_SECONDS, SupervisorFigures
from proxy.metrics.shared_folder import fresh_metrics_folder, remove_metrics_folder
from proxy.render.host_process import RenderHostProcess
from proxy.render.shared_bounds import SharedBounds
from proxy.runtime.listen import announce, base_url, cannot_listen, listening_socket, refuse_taken_port
from proxy.runtime.readiness import READY, WorkersListening
from proxy.runtime.signal_inbox import SignalInbox
from proxy.runtime.worker import WorkerSpec, run_worker

log = logging.getLogger(__name__)

START_TIMEOUT = 120.0  # every worker imports Pillow, aiohttp and obstore, and opens three tiers
STOP_TIMEOUT = 30.0  # a worker's graceful stop: aiohttp's 10 s for requests, then closing caches
RESTART_FIRST_PAUSE = 0.5
RESTART_PAUSE_CAP = 30.0
HEALTHY_AFTER = 30.0  # a worker that lived this long starts its slot's pauses over
STOPPING_SIGNALS = (signal.SIGTERM, signal.SIGINT)
HOST_LOOK_SECONDS = 0.02  # at start-up, once the workers are ready, how often to look for the host's socket


@dataclass
class _Slot:
    """One worker's place: its process now, and the state its restarts need."""

    index: int
    process: BaseProcess | None = None
    channel: Connection | None = None  # None once it reads EOF
    started: float = 0.0
    ready: bool = False
    reload_when_ready: bool = False
    quick_deaths: int = 0
    restart_at: float | None = None


class Supervisor:
    """Runs `config.server.workers` workers until SIGTERM or SIGINT. Blocking; `run` returns the exit status."""

    def __init__(self, config: Config) -> None:
        self._config = config
        _without_resource_tracker()
        self._context = multiprocessing.get_context("spawn")
        self._slots = [_Slot(index) for index in range(config.server.workers)]
        self._listening = WorkersListening(len(self._slots), self._context)
        # The cores (IMGPROXY_WORKERS renders at once for the whole server) and the memory their renders share.
        self._shared = SharedBounds(config.previews.workers, len(self._slots), self._context)
        self._host = RenderHostProcess(config.previews.heap_keep)
        self._host_restarts = _Slot(-1)  # the host's restarts, paced as a worker's slot (no process of its own here)
        self._metrics_dir = Path()
        self._stopping = False
        self._serving = False  # every worker was ready once, and the port was announced
        self._failed = False
        self._reloads = 0

    def run(self) -> int:
        """Serve through the workers; return 0 after a clean stop, 1 otherwise."""
        configure_logging(self._config.logs, with_pid=True)  # the workers' form: lines name their process
        host, port = self._config.server.host, self._config.server.port
        metrics_host, metrics_port = self._config.server.metrics_bind or ("", 0)
        try:
            # The first worker binds METRICS_BIND; a taken port stops the server here, in one line.
            refuse_taken_port(metrics_host, metrics_port)
        except OSError as error:
            print(f"preview-proxy: {cannot_listen(metrics_host, metrics_port, error)}", file=sys.stderr)
            return 1
        try:
            refuse_taken_port(host, port)
            reserved = listening_socket(host, port, reuse_port=True)
        except OSError as error:
            print(f"preview-proxy: {cannot_listen(host, port, error)}", file=sys.stderr)
            return 1
        with reserved, SignalInbox() as inbox:
            self._config = replace(self._config, server=replace(self._config.server,
                                                                port=reserved.getsockname()[1]))
            self._metrics_dir = fresh_metrics_folder()
            log.info("%d workers; their metrics files in %s", len(self._slots), self._metrics_dir)
            figures = SupervisorFigures(self._metrics_dir)
            try:
                prepare_tiers(self._config.cache.tiers())
                self._host.start()
                log.info("render host %d started", self._host.pid)
                for slot in self._slots:
                    self._start(slot)
                if self._wait_until_ready(inbox):
                    announce(self._config, base_url(reserved))
                    self._serving = True
                    figures_due = 0.0
                    while not self._stopping:
                        if time.monotonic() >= figures_due:  # our own memory, CPU and descriptors, in the scrape
                            figures.refresh(self._host.pid)
                            figures_due = time.monotonic() + REFRESH_SECONDS
                        self._turn(inbox, _sooner(self._restart_timeout(), figures_due - time.monotonic()))
                        self._restart_due()
                self._stop_all(inbox)
            finally:
                self._stop_host()
                figures.close()
                remove_metrics_folder(self._metrics_dir)
        return 1 if self._failed else 0

    def _start(self, slot: _Slot) -> None:
        ours, theirs = self._context.Pipe(duplex=True)
        # The first slot's worker answers /metrics on METRICS_BIND, if set (proxy.metrics.listener).
        spec = WorkerSpec(self._config, self._metrics_dir, theirs, self._listening, serves_metrics=slot.index == 0,
                          shared=self._shared, slot=slot.index, render_host=self._host.address)
        process = self._context.Process(target=run_worker, args=(spec,), name=f"preview-proxy-worker-{slot.index}")
        process.start()
        theirs.close()  # the worker holds its end; ours reads EOF once the worker is gone
        slot.process, slot.channel, slot.started = process, ours, time.monotonic()
        slot.ready, slot.restart_at = False, None
        slot.reload_when_ready = self._reloads > 0  # it read the links file as it was at our start
        log.info("worker %d started (slot %d)", process.pid, slot.index)

    def _wait_until_ready(self, inbox: SignalInbox) -> bool:
        deadline = time.monotonic() + START_TIMEOUT
        # The host too, so that the first large renders don't run in the workers (it says nothing when it
        # listens: its socket's file is looked for; it is up long before the workers anyway).
        while not all(slot.ready for slot in self._slots) or not self._host_up():
            if self._stopping or self._failed:
                return False
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                log.error("workers did not start within %g s; stopping", START_TIMEOUT)
                self._failed = True
                return False
            all_ready = all(slot.ready for slot in self._slots)
            self._turn(inbox, min(remaining, HOST_LOOK_SECONDS) if all_ready else remaining)
        return True

    def _host_up(self) -> bool:
        """The render host listens, or it is dead and waits for its restart (the workers then render)."""
        return self._host.listening() or self._host.pid is None

    def _turn(self, inbox: SignalInbox, timeout: float | None) -> None:
        """Wait (at most `timeout` seconds) for a signal, a worker's message or a worker's exit, and handle it."""
        live = [slot for slot in self._slots if slot.process is not None]
        waitables: list[object] = [inbox.reader]
        waitables += [slot.channel for slot in live if slot.channel is not None]
        waitables += [slot.process.sentinel for slot in live if slot.process is not None]
        host_sentinel = self._host.sentinel
        if host_sentinel >= 0:
            waitables.append(host_sentinel)
        woken = multiprocessing.connection.wait(waitables, timeout)  # type: ignore[arg-type]
        if host_sentinel >= 0 and host_sentinel in woken:
            self._on_host_exit()
        if inbox.reader in woken:
            for signum in inbox.take():
                self._on_signal(signum)
        for slot in live:
            if slot.channel is not None and slot.channel in woken:
                self._on_message(slot, slot.channel)
            if slot.process is not None and slot.process.sentinel in woken:
                self._on_exit(slot, slot.process)

    def _on_signal(self, signum: int) -> None:
        if signum in STOPPING_SIGNALS and not self._stopping:
            log.info("%s: stopping %d worker(s)", signal.Signals(signum).name, len(self._slots))
            self._stopping = True
            self._signal_all(signal.SIGTERM)
        elif signum == signal.SIGHUP and not self._stopping:
            self._reloads += 1
            for slot in self._slots:
                if slot.process is not None and slot.ready:
                    _kill(slot.process, signal.SIGHUP)
                else:  # still starting: before its handler is in, SIGHUP would be ignored
                    slot.reload_when_ready = True

    def _on_message(self, slot: _Slot, channel: Connection) -> None:
        try:
            message = channel.recv_bytes()
        except (EOFError, OSError):
            slot.channel = None  # the worker is gone; its sentinel says how
            channel.close()
            return
        if message == READY and slot.process is not None:
            slot.ready = True
            log.info("worker %d ready (slot %d)", slot.process.pid, slot.index)
            if not self._serving:
                self._listening.set_count(sum(each.ready for each in self._slots))
            if slot.reload_when_ready:
                slot.reload_when_ready = False
                _kill(slot.process, signal.SIGHUP)
            if self._stopping:
                _kill(slot.process, signal.SIGTERM)

    def _on_exit(self, slot: _Slot, process: BaseProcess) -> None:
        process.join()
        code, pid = process.exitcode, process.pid
        assert pid is not None  # it was started
        process.close()
        if slot.channel is not None:
            slot.channel.close()
        slot.process, slot.channel = None, None
        # Its live gauges (renders in progress, queue depth, breaker state) stop counting.
        multiprocess.mark_process_dead(pid, str(self._metrics_dir))
        self._shared.give_back_for(slot.index)  # the cores and memory its renders held are free again
        if code != 0:  # a clean exit cancelled its fills, which removed their part files
            remove_parts_of(self._config.cache.tiers(), pid)
        if self._stopping:
            # A worker still starting dies of SIGTERM before it can handle it: that is a clean stop too.
            clean = code == 0 or (not slot.ready and code == -signal.SIGTERM)
            self._failed |= not clean
            log.log(logging.INFO if clean else logging.ERROR, "worker %d exited with status %s", pid, code)
            return
        if not self._serving:
            log.error("worker %d exited with status %s while the server was starting; stopping", pid, code)
            self._failed = True
            self._stopping = True
            return
        lived = time.monotonic() - slot.started
        pause = _schedule_restart(slot, lived)
        log.error("worker %d exited unexpectedly with status %s after %.1f s; starting another in %g s",
                  pid, code, lived, pause)

    def _on_host_exit(self) -> None:
        pid, lived = self._host.pid, time.monotonic() - self._host.started
        code = self._host.reap()
        if self._stopping:
            log.info("render host %s exited with status %s", pid, code)
            return
        pause = _schedule_restart(self._host_restarts, lived)
        log.error("render host %s exited unexpectedly with status %s after %.1f s; starting another in %g s "
                  "(meanwhile the workers render everything themselves)", pid, code, lived, pause)

    def _stop_host(self) -> None:
        self._host_restarts.restart_at = None
        pid = self._host.pid
        code = self._host.stop(STOP_TIMEOUT)
        if pid is not None:
            log.info("render host %d exited with status %s", pid, code)

    def _restart_timeout(self) -> float | None:
        due = [slot.restart_at for slot in (*self._slots, self._host_restarts) if slot.restart_at is not None]
        return max(0.0, min(due) - time.monotonic()) if due else None

    def _restart_due(self) -> None:
        now = time.monotonic()
        for slot in self._slots:
            if slot.restart_at is not None and slot.restart_at <= now and not self._stopping:
                self._start(slot)
        host = self._host_restarts
        if host.restart_at is not None and host.restart_at <= now and not self._stopping:
            host.restart_at = None
            self._host.start()
            log.info("render host %d started", self._host.pid)

    def _stop_all(self, inbox: SignalInbox) -> None:
        """SIGTERM to every worker still running, then wait for them all (SIGKILL past STOP_TIMEOUT)."""
        self._stopping = True
        self._signal_all(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        while any(slot.process is not None for slot in self._slots):
            if time.monotonic() >= deadline:
                self._failed = True
                for slot in self._slots:
                    if slot.process is not None:
                        log.error("worker %d did not stop within %g s; killing it", slot.process.pid, STOP_TIMEOUT)
                        _kill(slot.process, signal.SIGKILL)
                deadline = time.monotonic() + STOP_TIMEOUT  # SIGKILL can't be refused: this wait ends
            self._turn(inbox, deadline - time.monotonic())
        log.info("all workers stopped")

    def _signal_all(self, signum: int) -> None:
        for slot in self._slots:
            slot.restart_at = None
            if slot.process is not None:
                _kill(slot.process, signum)


def _without_resource_tracker() -> None:
    """Keep `spawn` from starting multiprocessing's resource tracker, a process of its own (13 MiB).

    The tracker removes the named semaphores and shared memory segments that processes leave behind
    when they die. The supervisor and its workers make none: their pipes are plain pipes, and the
    readiness count is a RawValue, in a file unlinked at once. So the tracker would watch nothing.
    spawn asks for the tracker's pipe before each start and launches it when there is none; given
    /dev/null it takes the tracker for running (spawn.py sets the same attribute in every child).
    """
    tracker = multiprocessing.resource_tracker._resource_tracker
    if getattr(tracker, "_fd", None) is None:
        tracker._fd = os.open(os.devnull, os.O_WRONLY)  # type: ignore[attr-defined]


def _schedule_restart(slot: _Slot, lived: float) -> float:
    """After an unexpected exit of what lived `lived` seconds in `slot`: when to start another. The pause
    doubles with each quick death (capped) and starts over after a healthy life. Returns the pause."""
    slot.quick_deaths = 0 if lived >= HEALTHY_AFTER else slot.quick_deaths + 1
    pause = min(RESTART_PAUSE_CAP, RESTART_FIRST_PAUSE * 2 ** max(0, slot.quick_deaths - 1))
    slot.restart_at = time.monotonic() + pause
    return pause


def _sooner(timeout: float | None, other: float) -> float:
    """The shorter of two waits (`timeout` None: no limit), never negative."""
    return max(0.0, other if timeout is None else min(timeout, other))


def _kill(process: BaseProcess, signum: int) -> None:
    if process.pid is not None:
        with contextlib.suppress(ProcessLookupError):  # already gone: its sentinel will say so
            os.kill(process.pid, signum)
