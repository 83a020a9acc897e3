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
import shutil
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import boto3
import uvloop
from botocore.config import Config as BotoConfig

from tests.benchmarks.harness import (
    FILE_SERVER,
    REPO,
    BenchmarkError,
    hammer,
    helper_process,
    machine,
    peak_rss,
    percentiles,
    proxy_server,
    run_measuring_cores,
)
from tests.support.s3 import ACCESS_KEY, REGION, SECRET_KEY, s3_env

RESULTS = REPO / "tests" / "benchmarks" / "results" / "originals.md"
MiB = 1024 * 1024
BUCKET, SMALL_KEY, BIG_KEY = "bench", "small.jpg", "big.bin"
SMALL_SIZE = 30 * 1024
CONNECTIONS = 32
BIG_TIMEOUT, HIT_TIMEOUT = 600.0, 60.0

# SIGTERM ends moto. It keeps objects in memory or in unlinked temporary files, so nothing is left
# behind. werkzeug would otherwise log every upload part.
MOTO_SERVER = """
import logging, signal
logging.getLogger("werkzeug").setLevel(logging.ERROR)
from tests.support.s3 import MotoS3
print(MotoS3().endpoint, flush=True)
signal.pause()
"""


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


async def measure_load(url: str, seconds: float, warmup: float, expect_cache: str | None) -> tuple[float, str]:
    """Small GETs after a warm-up that opens every connection. Returns req/s and a description."""
    def check(response: aiohttp.ClientResponse, body: bytes) -> bool:
        return response.status == 200 and len(body) == SMALL_SIZE and response.headers.get("X-Cache") == expect_cache

    connector = aiohttp.TCPConnector(limit=CONNECTIONS)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=10)) as session:
        await hammer(session, url, warmup, CONNECTIONS, check)
        latencies, errors, elapsed = await hammer(session, url, seconds, CONNECTIONS, check)
    if not latencies:
        raise BenchmarkError(f"{url}: no successful request ({errors} errors)")
    p50, p99 = percentiles(latencies)
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
        ref_pid, ref_url = stack.enter_context(helper_process(FILE_SERVER, str(data / "storage")))

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
