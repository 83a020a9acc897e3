"""What every benchmark shares: helper processes, CPU and memory readings, load loops, the machine line.

Loopback only; every loop is bounded in count and time.
"""

import asyncio
import os
import platform
import resource
import select
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Coroutine, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import uvloop

from tests.support.processes import stop_process_group
from tests.support.server import ServerProcess

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT = 30.0
MAX_REQUESTS = 2_000_000  # bounds the count too, in case a server answers errors at once

# The stock reference: FileResponse under `web.run_app` (asyncio loop with sendfile, no access log).
# The socket listens before the URL is printed, so the first request can't be refused.
FILE_SERVER = """
import socket, sys
from pathlib import Path
from aiohttp import web
root = Path(sys.argv[1])
async def handle(request):
    return web.FileResponse(root / request.match_info["path"])
app = web.Application()
app.router.add_get("/{path:.+}", handle)
sock = socket.socket()
sock.bind(("127.0.0.1", 0))
sock.listen(128)
print(f"http://127.0.0.1:{sock.getsockname()[1]}", flush=True)
web.run_app(app, sock=sock, print=None, access_log=None)
"""


class BenchmarkError(Exception):
    """A scenario gave a wrong answer, so its figure would mean nothing."""


def cpu_seconds(pid: int, thread: int | None = None) -> float:
    """utime + stime of a process, or of its thread `thread`, from /proc/<pid>[/task/<thread>]/stat (fields 14
    and 15)."""
    stat = Path(f"/proc/{pid}/stat" if thread is None else f"/proc/{pid}/task/{thread}/stat")
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_measuring_cores(pids: dict[str, int], client: Coroutine[Any, Any, tuple[float, str]]) -> tuple[float, str]:
    """Run a client coroutine on uvloop. Appends to its description how many cores each process kept busy."""
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    own = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    figure, text = uvloop.run(client)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    busy = {name: (cpu_seconds(pid) - before[name]) / wall for name, pid in pids.items()}
    busy["client"] = (after.ru_utime + after.ru_stime - own.ru_utime - own.ru_stime) / wall
    return figure, f"{text}; cores: " + ", ".join(f"{name} {value:.2f}" for name, value in busy.items())


@contextmanager
def helper_process(code: str, *args: str) -> Iterator[tuple[int, str]]:
    """Run `python -c code` in its own process. Yields its pid and the first line it prints (a URL)."""
    process = subprocess.Popen([sys.executable, "-c", code, *args], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], START_TIMEOUT)
        line = process.stdout.readline().strip() if ready else ""
        if not line.startswith("http://"):
            raise BenchmarkError(f"helper process did not start: {line!r}")
        yield process.pid, line
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@contextmanager
def proxy_server(env: dict[str, str], args: Sequence[str] = ()) -> Iterator[ServerProcess]:
    """A fresh preview-proxy process (`serve` with extra `args`), stopped on the way out."""
    server = ServerProcess({"ACCESS_LOG": "false", **env}, cwd=REPO, args=args)
    try:
        yield server
    finally:
        server.stop()


def proc_value(path: str, name: str) -> str:
    """The value after `name:` in a /proc file such as /proc/meminfo or /proc/<pid>/status."""
    return next(line.split(":", 1)[1].strip() for line in Path(path).read_text().splitlines()
                if line.split(":", 1)[0].strip() == name)


def peak_rss(pid: int) -> str:
    """VmHWM of any process (ServerProcess.peak_rss_bytes reads the same line for the proxy)."""
    return f"{int(proc_value(f'/proc/{pid}/status', 'VmHWM').split()[0]) / 1024:.0f} MiB"


def process_tree(pid: int) -> list[int]:
    """`pid` and all its live descendants (workers forked by a master), from the PPid in /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int(proc_value(f"/proc/{entry.name}/status", "PPid"))
            except (OSError, StopIteration, ValueError):
                continue  # gone meanwhile, or a kernel thread
    tree, frontier = [pid], [pid]
    while frontier:
        children = [child for child, parent in parents.items() if parent in frontier]
        tree += children
        frontier = children
    return tree


def tree_peak_rss_bytes(pid: int) -> int:
    """VmHWM summed over a process and its descendants: what a master and its workers held at their peaks."""
    total = 0
    for member in process_tree(pid):
        try:
            total += int(proc_value(f"/proc/{member}/status", "VmHWM").split()[0]) * 1024
        except (OSError, StopIteration):
            continue  # exited meanwhile; a zombie has no VmHWM
    return total


def free_port() -> int:
    """A port that was free a moment ago, for servers that can't be told to pick one (nginx, thumbor)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def process_group(argv: Sequence[str], ready_url: str, env: dict[str, str] | None = None,
                  log: Path | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """Run a server in its own process group until `ready_url` answers; on the way out SIGTERM, then
    SIGKILL, the whole group, as a master's forked workers may outlive it (thumbor's do)."""
    output = log.open("ab") if log else subprocess.DEVNULL
    process = subprocess.Popen(list(argv), cwd=REPO, env=env, stdout=output, stderr=subprocess.STDOUT,
                               start_new_session=True)
    try:
        try:
            wait_until_serving(ready_url, process)
        except BenchmarkError as error:
            if log is None:
                raise
            # The run's temporary folder goes with the run: the server's last words go with the error.
            tail = log.read_text(errors="replace").splitlines()[-20:]
            raise BenchmarkError("\n".join([str(error), *tail])) from None
        yield process
    finally:
        stop_process_group(process, grace=10.0)
        if log:
            output.close()  # type: ignore[union-attr]  # a file when `log` is given


def wait_until_serving(url: str, process: subprocess.Popen[bytes], timeout: float = START_TIMEOUT) -> None:
    """Poll `url` until it answers 200, or fail if the process exits or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchmarkError(f"{process.args!r} exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:  # refused, or an HTTP error status: not ready yet
            pass
        time.sleep(0.05)
    raise BenchmarkError(f"{url} did not answer 200 within {timeout:g} s")


def machine() -> str:
    """One line: CPUs we may use, CPU model, memory, Python, date and commit."""
    mem_gib = int(proc_value("/proc/meminfo", "MemTotal").split()[0]) / 2**20
    commit = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=REPO, capture_output=True, text=True,
                            check=False).stdout.strip()
    return (f"{len(os.sched_getaffinity(0))} CPUs ({proc_value('/proc/cpuinfo', 'model name')}), "
            f"{mem_gib:.1f} GiB RAM, Python {platform.python_version()}, "
            f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, commit {commit}")


async def hammer(session: aiohttp.ClientSession, url: str, seconds: float, connections: int,
                 check: Callable[[aiohttp.ClientResponse, bytes], bool]) -> tuple[list[float], int, float]:
    """`connections` workers send GETs until the deadline. Returns latencies, errors and elapsed time."""
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal errors
        while time.perf_counter() < deadline and len(latencies) + errors < MAX_REQUESTS:
            started = time.perf_counter()
            try:
                async with session.get(url) as response:
                    ok = check(response, await response.read())
            except (aiohttp.ClientError, TimeoutError):
                ok = False
            if ok:
                latencies.append(time.perf_counter() - started)
            else:
                errors += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    return latencies, errors, time.perf_counter() - started


def percentiles(latencies: list[float]) -> tuple[float, float]:
    """p50 and p99 in milliseconds."""
    ordered = sorted(latencies)
    p50, p99 = (ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 for q in (0.5, 0.99))
    return p50, p99
