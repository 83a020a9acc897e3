"""Benchmark: how fast preview-proxy serves originals, next to references measured in the same run.

Loopback only; every loop is bounded in count and time. Each scenario gets a fresh server process,
and its peak RSS (VmHWM) is read after the scenario.

1. A cached ~30 KB original: requests/s and p50/p99 latency over 32 keep-alive connections for a
   fixed time after a warm-up, (a) from local disk (default STORAGE_PROVIDER) and (b) from the S3
   storage cache (object on moto, warmed once; every response must say `X-Cache: HIT`). Reference:
   aiohttp's stock `web.FileResponse` serving the same file, from a tiny `web.run_app` process.
2. A 1 GiB original (--quick: 256 MiB): MiB/s of one GET whose body is read and discarded in chunks,
   checking its length and the SHA-256 of its first and last MiB, (a) from local disk and (b) through
   the S3 storage cache, cold (a MISS that streams while it fills from moto) and warm (a HIT).
   References: "raw read", the file read in Python in 1 MiB chunks (page cache, as the server sees
   it); the same FileResponse app, the ceiling of this Python client; for the cold run, a GET straight
   from moto, the ceiling of the origin.

Ratios are preview-proxy / reference from the same run, so they hold on a shared, noisy machine.
"cores" is each process's CPU time over wall time; near 1.0 shows which side limits a figure.
preview-proxy runs with ACCESS_LOG=false, as the reference logs nothing. moto runs in its own
process, so it doesn't share the measuring client's GIL.

Run:  cd /work/main && .venv/bin/python -m tests.benchmarks.originals [--quick]
The table is printed and written to tests/benchmarks/results/originals.md (git-ignored).
"""

import argparse
import asyncio
import hashlib
import os
import platform
import resource
import select
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Coroutine, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import boto3
import uvloop
from botocore.config import Config as BotoConfig

from tests.support.s3 import ACCESS_KEY, REGION, SECRET_KEY, s3_env
from tests.support.server import ServerProcess

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "tests" / "benchmarks" / "results" / "originals.md"
MiB = 1024 * 1024
BUCKET, SMALL_KEY, BIG_KEY = "bench", "small.jpg", "big.bin"
SMALL_SIZE = 30 * 1024
CONNECTIONS = 32
MAX_REQUESTS = 2_000_000  # bounds the count too, in case a server answers errors at once
BIG_TIMEOUT, HIT_TIMEOUT, START_TIMEOUT = 600.0, 60.0, 30.0

# The stock reference: FileResponse under `web.run_app` (asyncio loop with sendfile, no access log).
# The socket listens before the URL is printed, so the first request can't be refused.
REFERENCE_SERVER = """
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
# SIGTERM ends moto. It keeps objects in memory or in unlinked temporary files, so nothing is left
# behind. werkzeug would otherwise log every upload part.
MOTO_SERVER = """
import logging, signal
logging.getLogger("werkzeug").setLevel(logging.ERROR)
from tests.support.s3 import MotoS3
print(MotoS3().endpoint, flush=True)
signal.pause()
"""


class BenchmarkError(Exception):
    """A scenario gave a wrong answer, so its figure would mean nothing."""


@dataclass(frozen=True)
class BigFile:
    """A large random file and the SHA-256 of its first and last MiB."""

    path: Path
    size: int
    head: str
    tail: str


def write_big_file(path: Path, size: int) -> BigFile:
    """Write `size` random bytes in 1 MiB chunks, so the file is never held in memory."""
    digests = []
    with path.open("wb") as out:
        for index in range(size // MiB):
            chunk = os.urandom(MiB)
            out.write(chunk)
            if index in (0, size // MiB - 1):
                digests.append(hashlib.sha256(chunk).hexdigest())
    return BigFile(path, size, digests[0], digests[-1])


def raw_read_mib_s(path: Path) -> float:
    """Read a file into one reused 1 MiB buffer, like `cat file > /dev/null`."""
    buffer, total, started = bytearray(MiB), 0, time.perf_counter()
    with path.open("rb", buffering=0) as source:
        while count := source.readinto(buffer):
            total += count
    return total / MiB / (time.perf_counter() - started)


async def _hammer(session: aiohttp.ClientSession, url: str, seconds: float,
                  expect_cache: str | None) -> tuple[list[float], int, float]:
    """CONNECTIONS workers send GETs until the deadline. Returns latencies, errors and elapsed time."""
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal errors
        while time.perf_counter() < deadline and len(latencies) + errors < MAX_REQUESTS:
            started = time.perf_counter()
            try:
                async with session.get(url) as response:
                    body = await response.read()
                    ok = (response.status == 200 and len(body) == SMALL_SIZE
                          and response.headers.get("X-Cache") == expect_cache)
            except (aiohttp.ClientError, TimeoutError):
                ok = False
            if ok:
                latencies.append(time.perf_counter() - started)
            else:
                errors += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONNECTIONS)))
    return latencies, errors, time.perf_counter() - started


async def measure_load(url: str, seconds: float, warmup: float, expect_cache: str | None) -> tuple[float, str]:
    """Small GETs after a warm-up that opens every connection. Returns req/s and a description."""
    connector = aiohttp.TCPConnector(limit=CONNECTIONS)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=10)) as session:
        await _hammer(session, url, warmup, expect_cache)
        latencies, errors, elapsed = await _hammer(session, url, seconds, expect_cache)
    if not latencies:
        raise BenchmarkError(f"{url}: no successful request ({errors} errors)")
    latencies.sort()
    p50, p99 = (latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000 for q in (0.5, 0.99))
    rps = len(latencies) / elapsed
    return rps, f"{rps:,.0f} req/s, p50 {p50:.1f} ms, p99 {p99:.1f} ms" + (f", **{errors} errors**" if errors else "")


async def fetch_big(url: str, source: BigFile, expect_cache: str | None) -> tuple[float, str]:
    """GET a large original and discard the body as it arrives. Returns MiB/s and a description."""
    head, tail, tail_start = hashlib.sha256(), hashlib.sha256(), source.size - MiB
    position, first_byte = 0, 0.0
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=BIG_TIMEOUT, sock_read=60),
                                     read_bufsize=MiB) as session:
        started = time.perf_counter()
        async with session.get(url) as response:
            cache = response.headers.get("X-Cache")
            if response.status != 200 or cache != expect_cache:
                raise BenchmarkError(f"{url}: {response.status}, X-Cache {cache}; expected 200, {expect_cache}")
            async for chunk in response.content.iter_chunked(MiB):
                if position == 0:
                    first_byte = time.perf_counter() - started
                view, end = memoryview(chunk), position + len(chunk)
                if position < MiB:
                    head.update(view[:MiB - position])
                if end > tail_start:
                    tail.update(view[max(0, tail_start - position):])
                position = end
        elapsed = time.perf_counter() - started
    if position != source.size or (head.hexdigest(), tail.hexdigest()) != (source.head, source.tail):
        raise BenchmarkError(f"{url}: got {position} of {source.size} bytes, or different bytes")
    mib_s = source.size / MiB / elapsed
    return mib_s, f"{mib_s:,.0f} MiB/s, first byte {first_byte * 1000:.0f} ms"


async def wait_for_hit(url: str, get_first: bool) -> None:
    """Optionally GET once to start a fill, then poll HEAD until the committed entry answers HIT."""
    deadline = time.monotonic() + HIT_TIMEOUT
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        if get_first:
            async with session.get(url) as response:
                await response.read()
        while time.monotonic() < deadline:
            async with session.head(url) as response:
                if response.headers.get("X-Cache") == "HIT":
                    return
            await asyncio.sleep(0.05)
    raise BenchmarkError(f"{url}: no HIT within {HIT_TIMEOUT:g} s")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc/<pid>/stat (fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
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
def proxy_server(env: dict[str, str]) -> Iterator[ServerProcess]:
    """A fresh preview-proxy process, stopped on the way out."""
    server = ServerProcess({"ACCESS_LOG": "false", **env}, cwd=REPO)
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


def machine() -> str:
    """One line: CPUs we may use, CPU model, memory, Python, date and commit."""
    mem_gib = int(proc_value("/proc/meminfo", "MemTotal").split()[0]) / 2**20
    commit = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=REPO, capture_output=True, text=True,
                            check=False).stdout.strip()
    return (f"{len(os.sched_getaffinity(0))} CPUs ({proc_value('/proc/cpuinfo', 'model name')}), "
            f"{mem_gib:.1f} GiB RAM, Python {platform.python_version()}, "
            f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, commit {commit}")


def run(quick: bool) -> list[str]:
    """Run every scenario and return the Markdown report."""
    seconds, warmup, big_size = (1.5, 0.5, 256 * MiB) if quick else (5.0, 1.0, 1024 * MiB)
    rows: list[str] = []

    def row(*cells: str) -> None:
        rows.append(f"| {' | '.join(cells)} |")

    with ExitStack() as stack:
        tmp = Path(tempfile.mkdtemp(prefix="pp-bench-"))
        stack.callback(shutil.rmtree, tmp, ignore_errors=True)
        data = tmp / "data"
        (data / "storage" / BUCKET).mkdir(parents=True)
        small = data / "storage" / BUCKET / SMALL_KEY
        small.write_bytes(os.urandom(SMALL_SIZE))
        moto_pid, endpoint = stack.enter_context(helper_process(MOTO_SERVER))
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name=REGION, aws_access_key_id=ACCESS_KEY,
                          aws_secret_access_key=SECRET_KEY, config=BotoConfig(s3={"addressing_style": "path"}))
        s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        s3.upload_file(str(small), BUCKET, SMALL_KEY)
        local_env, remote_env = {"DATA_PATH": str(data)}, s3_env(endpoint, DATA_PATH=str(data))
        ref_pid, ref_url = stack.enter_context(helper_process(REFERENCE_SERVER, str(data / "storage")))

        # The machine is shared and noisy, so each reference runs right before the scenario it
        # is compared with, rather than once for all of them.
        # 1. Small file, each preview-proxy path in a fresh process.
        for name, env, cache in (("local disk", local_env, "BYPASS"), ("S3 storage cache", remote_env, "HIT")):
            ref_rps, ref_text = run_measuring_cores(
                {"server": ref_pid}, measure_load(f"{ref_url}/{BUCKET}/{SMALL_KEY}", seconds, warmup, None))
            with proxy_server(env) as server:
                url = server.url(f"/{BUCKET}/{SMALL_KEY}")
                if cache == "HIT":
                    uvloop.run(wait_for_hit(url, get_first=True))
                rps, text = run_measuring_cores({"server": server.pid}, measure_load(url, seconds, warmup, cache))
                row(f"30 KB, {name}, X-Cache {cache}", text, f"FileResponse {ref_text}", f"{rps / ref_rps:.2f}",
                    f"{server.peak_rss_bytes() / MiB:.0f} MiB")

        # 2. Large file.
        label = f"{big_size // MiB} MiB"
        big = write_big_file(data / "storage" / BUCKET / BIG_KEY, big_size)

        def transfer(name: str, env: dict[str, str], cache: str) -> None:
            raw = raw_read_mib_s(big.path)
            refs = [("raw read", raw, f"{raw:,.0f} MiB/s"), ("FileResponse", *run_measuring_cores(
                {"server": ref_pid}, fetch_big(f"{ref_url}/{BUCKET}/{BIG_KEY}", big, None)))]
            if cache == "MISS":  # a cold fill can't beat its origin, so GET from moto directly too (no auth)
                refs.append(("moto direct", *run_measuring_cores(
                    {"moto": moto_pid}, fetch_big(f"{endpoint}/{BUCKET}/{BIG_KEY}", big, None))))
            with proxy_server(env) as server:
                url = server.url(f"/{BUCKET}/{BIG_KEY}")
                pids = {"server": server.pid, **({"moto": moto_pid} if cache == "MISS" else {})}
                mib_s, text = run_measuring_cores(pids, fetch_big(url, big, cache))
                if cache == "MISS":  # the warm run needs the committed entry
                    uvloop.run(wait_for_hit(url, get_first=False))
                row(f"{label}, {name}, X-Cache {cache}", text, "; ".join(f"{ref} {desc}" for ref, _, desc in refs),
                    "; ".join(f"{mib_s / figure:.2f} of {ref}" for ref, figure, _ in refs),
                    f"{server.peak_rss_bytes() / MiB:.0f} MiB")

        transfer("local disk", local_env, "BYPASS")
        started = time.perf_counter()
        s3.upload_file(str(big.path), BUCKET, BIG_KEY)  # boto3 goes multipart above 8 MiB
        upload = time.perf_counter() - started
        transfer("S3 cold (fills the cache)", remote_env, "MISS")
        # A new process on the same DATA_PATH: the HIT comes from the entry committed on disk.
        transfer("S3 warm", remote_env, "HIT")
        ref_rss = peak_rss(ref_pid)
    return [
        "# preview-proxy: originals benchmark", "",
        f"Machine: {machine()}",
        f"Command: `.venv/bin/python -m tests.benchmarks.originals{' --quick' if quick else ''}`: "
        f"{CONNECTIONS} connections, {seconds:g} s per small-file run after a {warmup:g} s warm-up.", "",
        "| scenario | figure | reference | ratio | server peak RSS |", "|---|---|---|---|---|", *rows, "",
        f"Uploading {label} to moto (boto3 multipart) took {upload:.1f} s ({big_size / MiB / upload:,.0f} MiB/s). "
        f"Peak RSS of the FileResponse reference server over the whole run: {ref_rss}.",
    ]


def main() -> int:
    """Parse arguments, run, print the report and write it to RESULTS."""
    parser = argparse.ArgumentParser(description="Benchmark preview-proxy's originals route on loopback.")
    parser.add_argument("--quick", action="store_true", help="shorter runs and a 256 MiB large file")
    report = "\n".join(run(parser.parse_args().quick)) + "\n"
    print(report)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
