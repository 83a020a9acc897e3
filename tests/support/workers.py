"""Helpers for multi-worker tests: which worker served what, read from the server's own log.

A worker's log lines carry its pid (`[1234] aiohttp.access: ...`), so the access log says which
process answered each request. No test-only endpoint is needed.
"""

import os
import re
import signal
from collections import Counter
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.support.http import fetch
from tests.support.previews_kit import Samples, poll
from tests.support.server import ServerProcess

ACCESS_LINE = re.compile(r"\[(\d+)\] aiohttp\.access: \S+ \"GET (\S+) HTTP")
METRICS_FOLDER = re.compile(r"their metrics files in (\S+)")


def access_pids(server: ServerProcess, path: str) -> list[int]:
    """The pid of every access log line for exactly `path`, in log order."""
    return [int(match.group(1)) for line in list(server.log_lines)
            if (match := ACCESS_LINE.search(line)) is not None and match.group(2) == path]


def served_by(server: ServerProcess, path: str, count: int) -> Counter[int]:
    """Requests for `path` per worker pid, once `count` of them are logged (bounded wait)."""
    found = poll(lambda: (pids := access_pids(server, path)) and len(pids) >= count and pids,
                 f"{count} access lines for {path}")
    return Counter(found)


def scrape_path(server: ServerProcess, path: str) -> Samples:
    """/metrics fetched as `path` (with a query of the test's own, so that its access line can be found)."""
    status, _, body = fetch(server, path)
    assert status == 200
    return [(sample.name, dict(sample.labels), sample.value)
            for family in text_string_to_metric_families(body.decode()) for sample in family.samples]


def wait_for_workers(server: ServerProcess, count: int) -> set[int]:
    """The live workers, once `count` of them run (bounded wait)."""
    return poll(lambda: (live := server.live_worker_pids()) and len(live) == count and live, f"{count} live workers")


def metrics_folder(server: ServerProcess) -> Path:
    """The supervisor's folder of prometheus-client multiprocess files."""
    match = METRICS_FOLDER.search(server.wait_for_log("their metrics files in"))
    assert match is not None
    return Path(match.group(1))


def kill_worker(server: ServerProcess, pid: int) -> None:
    """SIGKILL one worker, then wait until the supervisor has seen it go (its sockets are closed by then)."""
    assert pid in server.live_worker_pids()
    os.kill(pid, signal.SIGKILL)
    server.wait_for_log(f"worker {pid} exited unexpectedly", timeout=15)


def open_part_files(pid: int, partial: Path) -> list[Path]:
    """The part files under `partial` that process `pid` has open (from /proc/<pid>/fd)."""
    found = []
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = Path(fd.readlink())
        except (FileNotFoundError, OSError):
            continue  # closed meanwhile
        if target.parent == partial:
            found.append(target)
    return found


def render_host_pid(server: ServerProcess) -> int:
    """The render host the supervisor started last, once it has (its log line names it; bounded wait)."""

    def started() -> int | None:
        lines = [line for line in list(server.log_lines) if "render host " in line and line.endswith(" started")]
        return int(lines[-1].rsplit("render host ", 1)[1].split()[0]) if lines else None

    return poll(started, "the render host's start")
