"""The four workloads of tests/benchmarks/peers.py, each run against one started peer.

Every workload checks its answers (status, JPEG, width, cache status where the peer reports one), so
a peer that answers errors fast can't win. Every loop is bounded in count and time.
"""

import asyncio
import hashlib
import io
import multiprocessing
import random
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from PIL import Image

from tests.benchmarks.harness import BenchmarkError, percentiles
from tests.benchmarks.originals import BigFile, MiB
from tests.benchmarks.peer_servers import Peer
from tests.benchmarks.previews import reference_render

REQUEST_TIMEOUT = 120.0
WORKLOAD_TIMEOUT = 600.0
ZIPF_EXPONENT = 1.0  # the classic web-cache popularity; rank 1 gets ~1/H(n) of all requests
ZIPF_SEED = 6  # the same request sequence for every peer and every run
WIDTHS = (50, 300, 1024)
HIT_TIMEOUT = 20.0

Sample = dict[str, float]


@dataclass(frozen=True)
class Preview:
    """One request of a workload: the original's key and the width asked for."""

    key: str
    width: int


def _latency_ms(text: str) -> float:
    """wrk's `1.23ms`, `850.00us`, `1.02s` or `1.50m` in milliseconds."""
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not match:
        raise BenchmarkError(f"unexpected wrk latency {text!r}")
    return float(match[1]) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[match[2]]


def parse_wrk(output: str) -> Sample:
    """Requests/s, p50 and p99 (ms) and the requests answered, from `wrk --latency` output; fails on any
    non-2xx answer or socket error."""
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.MULTILINE)
    count = re.search(r"^\s*(\d+) requests in ", output, re.MULTILINE)
    p50 = re.search(r"^\s+50%\s+(\S+)", output, re.MULTILINE)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.MULTILINE)
    if not (rps and count and p50 and p99):
        raise BenchmarkError(f"can't read wrk's output:\n{output}")
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    failed = (int(bad[1]) if bad else 0) + (sum(int(n) for n in errors.groups()) if errors else 0)
    if failed:
        raise BenchmarkError(f"wrk saw {failed} failed requests:\n{output}")
    return {"rps": float(rps[1]), "p50": _latency_ms(p50[1]), "p99": _latency_ms(p99[1]), "requests": int(count[1])}


def run_wrk(url: str, seconds: float, connections: int, threads: int) -> Sample:
    """`wrk --latency` on one URL; its own duration bounds it, the timeout bounds a hang."""
    argv = ["wrk", "--latency", "-t", str(threads), "-c", str(connections), "-d", f"{seconds:g}s", "--timeout", "10s",
            url]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, check=False)
    if result.returncode != 0:
        raise BenchmarkError(f"wrk failed ({result.returncode}): {result.stderr.strip()}")
    return parse_wrk(result.stdout)


def jpeg_width(body: bytes) -> int:
    """The width of a JPEG (header only), or -1 if `body` isn't one."""
    try:
        with Image.open(io.BytesIO(body)) as image:
            return image.width if image.format == "JPEG" else -1
    except OSError:
        return -1


async def cache_a_preview(peer: Peer, preview: Preview) -> str:
    """GET a preview until the peer serves it from its cache (bounded). Returns the evidence, for the report."""
    url = peer.preview_url(preview.width, preview.key)
    deadline = time.monotonic() + HIT_TIMEOUT
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)) as session:
        while time.monotonic() < deadline:
            async with session.get(url) as response:
                body = await response.read()
                if response.status != 200 or jpeg_width(body) != preview.width:
                    raise BenchmarkError(f"{url}: {response.status}, not a {preview.width} px JPEG")
                status = peer.cache_status(response.headers)
            if peer.cache_header and status == "HIT":
                return f"{peer.cache_header}: HIT"
            if peer.result_dir and any(path.is_file() for path in peer.result_dir.rglob("*")):
                return "file in result storage"  # thumbor says nothing; its result storage is the evidence
            await asyncio.sleep(0.05)
    raise BenchmarkError(f"{url}: not served from the cache within {HIT_TIMEOUT:g} s")


async def is_still_cached(peer: Peer, preview: Preview) -> bool:
    """After the load: a peer that reports its cache status still says HIT."""
    if not peer.cache_header:
        return True
    async with (aiohttp.ClientSession() as session,
                session.get(peer.preview_url(preview.width, preview.key)) as response):
        await response.read()
        return peer.cache_status(response.headers) == "HIT"


async def warm_up(peer: Peer, key: str) -> None:
    """Cache-cold, not process-cold: a few concurrent renders of a key no workload asks for, so start-up
    (imports, thread pools, every worker process) isn't billed to the first figures."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)) as session:

        async def one(width: int) -> None:
            async with session.get(peer.preview_url(width, key)) as response:
                if response.status != 200:
                    raise BenchmarkError(f"{peer.name} warm-up: {response.status} {await response.text()}")
                await response.read()

        await asyncio.gather(*(one(60 + n) for n in range(4)))


async def previews(peer: Peer, requests: list[Preview], clients: int) -> Sample:
    """GET each preview in order, `clients` at a time. Previews/s, p50 and p99 (ms), and the hit ratio
    where the peer reports cache status."""
    queue = list(reversed(requests))
    latencies: list[float] = []
    hits: list[bool] = []
    failures: list[str] = []
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector,
                                     timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)) as session:

        async def client() -> None:
            while queue and not failures:
                preview = queue.pop()
                started = time.perf_counter()
                async with session.get(peer.preview_url(preview.width, preview.key)) as response:
                    body = await response.read()
                    status = peer.cache_status(response.headers)
                if response.status != 200 or jpeg_width(body) != preview.width:
                    failures.append(f"{preview}: {response.status}, {len(body)} bytes")
                    return
                latencies.append(time.perf_counter() - started)
                hits.append(status == "HIT")

        started = time.perf_counter()
        await asyncio.wait_for(asyncio.gather(*(client() for _ in range(clients))), WORKLOAD_TIMEOUT)
        elapsed = time.perf_counter() - started
    if failures:
        raise BenchmarkError(f"{peer.name}: bad response, {failures[0]}")
    p50, p99 = percentiles(latencies)
    sample = {"rps": len(latencies) / elapsed, "p50": p50, "p99": p99}
    if peer.cache_header:
        sample["hit_ratio"] = sum(hits) / len(hits)
    return sample


def timed_reference_render(path: Path) -> float:
    """One in-process render (previews.reference_render: open, draft, thumbnail, JPEG q70), in seconds."""
    started = time.perf_counter()
    reference_render(path)
    return time.perf_counter() - started


def in_process_renders(paths: list[Path], processes: int, warm_up: Path) -> Sample:
    """The ceiling of W2: every photo once through timed_reference_render, with nothing around it (no HTTP,
    no cache), on `processes` processes, each taking the next photo when it is free, as the clients take
    the next request. Renders/s, and each render's p50 and p99 (ms).

    The processes are started and have rendered `warm_up` before the clock starts, as each server
    has rendered its warm-up key."""
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        pool.map(timed_reference_render, [warm_up] * processes * 2, chunksize=1)
        started = time.perf_counter()
        seconds = pool.map(timed_reference_render, paths, chunksize=1)
        elapsed = time.perf_counter() - started
    p50, p99 = percentiles(seconds)
    return {"rps": len(paths) / elapsed, "p50": p50, "p99": p99}


def zipf_requests(keys: list[str], count: int) -> list[Preview]:
    """`count` previews drawn from a Zipf distribution over keys x WIDTHS (ranks shuffled, fixed seed)."""
    rng = random.Random(ZIPF_SEED)
    items = [Preview(key, width) for key in keys for width in WIDTHS]
    rng.shuffle(items)
    weights = [1 / rank**ZIPF_EXPONENT for rank in range(1, len(items) + 1)]
    return rng.choices(items, weights, k=count)


def curl_download(url: str, expect_cache: tuple[str, str] | None, size: int) -> float:
    """GET `url` with curl into /dev/null, checking status, length and the cache header. Returns MiB/s.

    curl, not the aiohttp client: at 0.4-1.3 GiB/s (and much less on a busy machine) the Python client
    would be the limit and squeeze every ratio towards 1."""
    argv = ["curl", "--silent", "--show-error", "--max-time", str(int(WORKLOAD_TIMEOUT)), "--output", "/dev/null",
            "--dump-header", "-", "--write-out", "\n%{http_code} %{size_download} %{speed_download}", url]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=WORKLOAD_TIMEOUT + 30, check=False)
    if result.returncode != 0:
        raise BenchmarkError(f"curl {url}: {result.stderr.strip()}")
    headers, last_line = result.stdout.rsplit("\n", 1)
    status, length, speed = last_line.split()
    if status != "200" or int(length) != size:
        raise BenchmarkError(f"{url}: {status}, {length} of {size} bytes")
    if expect_cache:
        name, value = expect_cache
        found = re.search(rf"^{re.escape(name)}:\s*(\S+)", headers, re.MULTILINE | re.IGNORECASE)
        if not found or found[1] != value:
            raise BenchmarkError(f"{url}: {name} {found[1] if found else None}, expected {value}")
    return float(speed) / MiB


async def cached_tail_matches(url: str, big: BigFile) -> bool:
    """The last MiB of the cached copy, asked for by Range, has the original's bytes."""
    async with (aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)) as session,
                session.get(url, headers={"Range": f"bytes={big.size - MiB}-"}) as response):
        return response.status == 206 and hashlib.sha256(await response.read()).hexdigest() == big.tail
