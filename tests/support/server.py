"""Run preview-proxy as a real process on a loopback port, as users do."""

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

START_TIMEOUT = 60.0  # several workers start at once on a 2-core machine
WORKER_READY = re.compile(r"proxy\.runtime\.supervisor: worker (\d+) ready")


class ServerProcess:
    """`preview-proxy serve --port 0 --workers N` with its own environment; learns the port from its log.

    With one worker (the default here, whatever the machine's cores) the server is one process; with
    more, `pid` is the supervisor's and `worker_pids` names the workers. `args` go after the others
    (so a later `--workers` wins).
    """

    def __init__(self, env: Mapping[str, str], cwd: Path, workers: int = 1, args: Sequence[str] = ()) -> None:
        self.log_lines: list[str] = []
        self.killed = False
        self._listening = threading.Event()
        self.base_url = ""
        full_env = {k: v for k, v in os.environ.items() if not k.startswith(("STORAGE_", "CACHE_", "AWS_"))}
        full_env.update(env)
        full_env["PYTHONUNBUFFERED"] = "1"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "proxy.runtime.cli", "serve", "--host", "127.0.0.1", "--port", "0",
             "--workers", str(workers), *args],
            cwd=cwd, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self._reader = threading.Thread(target=self._read_output, daemon=True)
        self._reader.start()
        if not self._listening.wait(START_TIMEOUT) or not self.base_url:
            self.stop()
            raise RuntimeError("server did not start:\n" + "\n".join(self.log_lines[-30:]))

    def _read_output(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            line = line.rstrip("\n")
            self.log_lines.append(line)
            if line.startswith("preview-proxy listening on "):
                self.base_url = line.rsplit(" ", 1)[1]
                self._listening.set()
        self._listening.set()  # exited: unblock the waiter

    def url(self, path: str) -> str:
        """Absolute URL of `path` on this server."""
        return self.base_url + path

    @property
    def pid(self) -> int:
        """The server's process id (the supervisor's, with several workers)."""
        return self.process.pid

    def worker_pids(self) -> list[int]:
        """The workers the supervisor has reported ready so far, oldest first, dead ones included."""
        return [int(match.group(1)) for line in list(self.log_lines)
                if (match := WORKER_READY.search(line)) is not None]

    def live_worker_pids(self) -> set[int]:
        """Ready workers that still run as children of the supervisor."""
        return {pid for pid in self.worker_pids() if _parent_of(pid) == self.pid}

    def peak_rss_bytes(self) -> int:
        """VmHWM: the highest resident set size the process has had."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmHWM in /proc status")

    def log_text(self) -> str:
        """Everything the process printed so far."""
        return "\n".join(self.log_lines)

    def wait_for_log(self, needle: str, timeout: float = 10.0) -> str:
        """Block until a log line contains `needle` (bounded), and return it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.log_lines):
                if needle in line:
                    return line
            time.sleep(0.02)
        raise AssertionError(f"no log line with {needle!r} within {timeout}s")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it doesn't go within 10 s."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self._reader.join(5)

    def kill(self) -> None:
        """SIGKILL at once: a crash, as far as the server can tell."""
        self.killed = True
        self.process.kill()
        self.process.wait(5)
        self._reader.join(5)


def _parent_of(pid: int) -> int | None:
    """The parent pid of a running process, from /proc (None if it has gone, or is a zombie)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name (field 2) is in parentheses and may contain spaces: split after its last ")".
    state, parent = stat.rsplit(")", 1)[1].split()[:2]
    return None if state == "Z" else int(parent)
