"""The supervisor's handle on the render host (proxy.render.host): its socket's place, its start, its exit.

The socket lives in a folder of its own, made private (0700) before anything listens in it, so only the
server's user reaches the host. The host is started as `python -m proxy.render.host` (a fresh, small
interpreter: it imports none of the server) and ends when the supervisor's end of its watch pipe closes.
"""

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from proxy.metrics.shared_folder import fresh_folder

SOCKET_NAME = "render.sock"
FOLDER_PREFIX = "preview-proxy-render-"


class RenderHostProcess:
    """Starts, watches and stops the render host. `address` is what workers connect to (set by the first start)."""

    def __init__(self, heap_keep: int) -> None:
        self._folder: Path | None = None  # made by the first start, removed by `stop`
        self.address = ""
        self._heap_keep = heap_keep
        self._process: subprocess.Popen[bytes] | None = None
        self._watch_fd = -1
        self.sentinel = -1  # a pidfd: readable once the host has exited
        self.started = 0.0

    @property
    def pid(self) -> int | None:
        """The running host's process id, or None."""
        return self._process.pid if self._process is not None else None

    def listening(self) -> bool:
        """The host's socket is bound (it listens from then on, until it exits)."""
        return self._process is not None and os.path.exists(self.address)

    def start(self) -> None:
        """Start a host; the previous one must have been reaped (`reap`)."""
        assert self._process is None
        if self._folder is None:
            # Private (0700); the supervisor's pid in its name tells whose it is, and a dead one's is removed.
            self._folder = fresh_folder(FOLDER_PREFIX)
            self.address = str(self._folder / SOCKET_NAME)
        theirs, ours = os.pipe()
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "proxy.render.host", self.address, str(theirs), str(self._heap_keep)],
                pass_fds=(theirs,), stdin=subprocess.DEVNULL)
        except BaseException:
            os.close(ours)
            raise
        finally:
            os.close(theirs)
        self._watch_fd = ours
        self.sentinel = os.pidfd_open(self._process.pid)
        self.started = time.monotonic()

    def reap(self) -> int | None:
        """After the sentinel turned readable: the host's exit status (negative: the signal that ended it)."""
        if self._process is None:
            return None
        code = self._process.wait()
        self._release()
        return code

    def stop(self, timeout: float) -> int | None:
        """SIGTERM, then SIGKILL past `timeout`; the exit status. The socket's folder goes too."""
        code = None
        if self._process is not None:
            with contextlib.suppress(ProcessLookupError):
                self._process.send_signal(signal.SIGTERM)
            try:
                code = self._process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._process.kill()
                code = self._process.wait()
            self._release()
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
        return code

    def _release(self) -> None:
        for descriptor in (self._watch_fd, self.sentinel):
            if descriptor >= 0:
                os.close(descriptor)
        self._watch_fd = self.sentinel = -1
        self._process = None
