"""Benchmark: previews on real photos, next to plain Pillow doing the same work in the same run.

Loopback only; every loop is bounded in count and time. Every figure comes from a fresh server
process with an empty cache, and its peak RSS (VmHWM) is read after the scenario.

1. Hits: one cached 300 px preview, GET over 32 keep-alive connections for a fixed time after a
   warm-up (every response must say `X-Cache: HIT`). Reference: aiohttp's stock `web.FileResponse`
   serving the same bytes from a file.
2. Cold renders: every photo once (times `rounds`, each round with its own cachebuster so it renders
   again) at `resize:fill:300:0:0/q:70`, from an empty cache, by one client and then by 8 clients.
   Every response must be a MISS and a 300 px wide JPEG. Renders/s and p50/p99 latency. Reference
   and server alternate for `repetitions` runs; the table gives medians and each run's own ratio.
   Reference, in this process: `Image.open`, `draft`, `thumbnail`, JPEG q70 on the same files with
   the same pillow-simd, sequentially (the issue's reference) and on as many threads as the machine
   has cores (the stricter one: the server may use every core too). The 8-client figure is set
   against both.

Run:  cd /work/main && .venv/bin/python -m tests.benchmarks.previews [--quick]
The table is printed and written to tests/benchmarks/results/previews.md (git-ignored).
"""

import argparse
import asyncio
import concurrent.futures
import io
import os
import shutil
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import aiohttp
import uvloop
from PIL import Image

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

RESULTS = REPO / "tests" / "benchmarks" / "results" / "previews.md"
CORPUS = REPO / ".cache" / "corpus" / "photos"
BUCKET = "bench-public"
WIDTH, QUALITY = 300, 70
HIT_CONNECTIONS, COLD_CLIENTS = 32, 8
REQUEST_TIMEOUT = 60.0


def preview_path(name: str, round_number: int) -> str:
    """The client URL (Supervisely's form); a cachebuster per round makes each round render again."""
    return f"/previews/q/ext:jpeg/resize:fill:{WIDTH}:0:0/q:{QUALITY}/cb:{round_number}/plain/{BUCKET}/photos/{name}"


def reference_render(path: Path) -> int:
    """What the server does for one photo, in plain Pillow: open, draft, thumbnail, JPEG q70."""
    with Image.open(path) as image:
        target = (WIDTH, max(1, round(image.height * WIDTH / image.width)))
        image.draft("RGB", target)
        image.thumbnail(target)
        out = io.BytesIO()
        image.save(out, "JPEG", quality=QUALITY)
    return out.tell()


def measure_reference(paths: list[Path], threads: int) -> tuple[float, str]:
    """Renders/s of `reference_render` over `paths`, on one thread or a pool of `threads`."""
    started = time.perf_counter()
    if threads == 1:
        for path in paths:
            reference_render(path)
    else:
        with concurrent.futures.ThreadPoolExecutor(threads) as pool:
            list(pool.map(reference_render, paths))
    rate = len(paths) / (time.perf_counter() - started)
    return rate, f"{rate:.1f} renders/s"


def is_preview(response: aiohttp.ClientResponse, body: bytes, cache: str) -> bool:
    """A 200 JPEG, WIDTH px wide, with the expected X-Cache (reads the header only)."""
    if response.status != 200 or response.headers.get("X-Cache") != cache:
        return False
    try:
        with Image.open(io.BytesIO(body)) as image:
            return image.format == "JPEG" and image.width == WIDTH
    except OSError:
        return False


async def cold_renders(base_url: str, paths: list[str], clients: int) -> tuple[float, str]:
    """GET every path once, `clients` at a time. Returns renders/s and a description."""
    queue = list(reversed(paths))
    latencies: list[float] = []
    failures: list[str] = []
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
    async with aiohttp.ClientSession(timeout=timeout) as session:

        async def client() -> None:
            while queue:
                path = queue.pop()
                started = time.perf_counter()
                async with session.get(base_url + path) as response:
                    body = await response.read()
                    if not is_preview(response, body, "MISS"):
                        failures.append(f"{path}: {response.status} {response.headers.get('X-Cache')}")
                        continue
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        elapsed = time.perf_counter() - started
    if failures:
        raise BenchmarkError(f"{len(failures)} bad responses, first: {failures[0]}")
    p50, p99 = percentiles(latencies)
    rate = len(latencies) / elapsed
    return rate, f"{rate:.1f} renders/s, p50 {p50:.0f} ms, p99 {p99:.0f} ms"


async def hits(url: str, seconds: float, warmup: float, cache: str | None) -> tuple[float, str]:
    """GETs of one URL over HIT_CONNECTIONS connections. Returns req/s and a description."""
    def check(response: aiohttp.ClientResponse, body: bytes) -> bool:
        return response.status == 200 and len(body) > 0 and response.headers.get("X-Cache") == cache

    connector = aiohttp.TCPConnector(limit=HIT_CONNECTIONS)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=10)) as session:
        await hammer(session, url, warmup, HIT_CONNECTIONS, check)
        latencies, errors, elapsed = await hammer(session, url, seconds, HIT_CONNECTIONS, check)
    if not latencies:
        raise BenchmarkError(f"{url}: no successful request ({errors} errors)")
    p50, p99 = percentiles(latencies)
    rate = len(latencies) / elapsed
    return rate, f"{rate:,.0f} req/s, p50 {p50:.1f} ms, p99 {p99:.1f} ms" + (f", **{errors} errors**" if errors else "")


async def fetch(url: str) -> bytes:
    """One GET that must succeed."""
    async with (aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)) as session,
                session.get(url) as response):
        if response.status != 200:
            raise BenchmarkError(f"{url}: {response.status}")
        return await response.read()


def _pixels(path: Path) -> int:
    with Image.open(path) as image:
        return image.width * image.height


def run(quick: bool) -> list[str]:
    """Run every scenario and return the Markdown report."""
    seconds, warmup, rounds, repetitions = (2.0, 0.5, 1, 1) if quick else (8.0, 1.0, 6, 3)
    photos = sorted(CORPUS.glob("*.jpg"))
    if not photos:
        raise BenchmarkError(f"no photos in {CORPUS}: run `bash deploy/dev.sh test` once (it fetches them)")
    cores = len(os.sched_getaffinity(0))
    rows: list[str] = []

    def row(*cells: str) -> None:
        rows.append(f"| {' | '.join(cells)} |")

    with ExitStack() as stack:
        tmp = Path(tempfile.mkdtemp(prefix="pp-bench-previews-"))
        stack.callback(shutil.rmtree, tmp, ignore_errors=True)
        storage = tmp / "data" / "storage" / BUCKET / "photos"
        storage.mkdir(parents=True)
        for photo in photos:
            shutil.copyfile(photo, storage / photo.name)
        local = [storage / photo.name for photo in photos]
        megapixels = sum(_pixels(path) for path in local) / len(local) / 1e6

        def fresh_env(name: str) -> dict[str, str]:
            # Same originals, empty cache: each scenario renders from scratch.
            return {"DATA_PATH": str(tmp / "data"), "CACHE_PATH": str(tmp / f"cache-{name}")}

        # 1. Hits on one cached preview.
        hit_path = preview_path(photos[0].name, 0)
        with proxy_server(fresh_env("hits")) as server:
            body = uvloop.run(fetch(server.url(hit_path)))
            (tmp / "files").mkdir()
            (tmp / "files" / "preview.jpg").write_bytes(body)
            ref_pid, ref_url = stack.enter_context(helper_process(FILE_SERVER, str(tmp / "files")))
            ref_rate, ref_text = run_measuring_cores({"server": ref_pid},
                                                     hits(f"{ref_url}/preview.jpg", seconds, warmup, None))
            rate, text = run_measuring_cores({"server": server.pid}, hits(server.url(hit_path), seconds, warmup, "HIT"))
            row(f"hit, {len(body) / 1024:.0f} KB preview, {HIT_CONNECTIONS} connections", text,
                f"FileResponse {ref_text}", f"{rate / ref_rate:.2f}", f"{server.peak_rss_bytes() / 2**20:.0f} MiB")

        # 2. Cold renders, in interleaved repetitions (both references, then the server with one
        # client and with 8), as the machine is shared: medians and each repetition's ratio are reported.
        paths = [preview_path(photo.name, r) for r in range(1, rounds + 1) for photo in photos]
        work = local * rounds
        refs: dict[int, list[float]] = {1: [], cores: []}
        runs: dict[int, list[tuple[float, str]]] = {1: [], COLD_CLIENTS: []}
        rss = {1: 0, COLD_CLIENTS: 0}
        for repetition in range(repetitions):
            for threads in refs:
                refs[threads].append(measure_reference(work, threads)[0])
            for clients in runs:
                with proxy_server(fresh_env(f"cold-{clients}-{repetition}")) as server:
                    # Cache-cold, not process-cold: one render first, so thread start-up and lazy
                    # imports aren't billed to the figure (a server in service is long past them).
                    uvloop.run(fetch(server.url(preview_path(photos[0].name, 0))))
                    runs[clients].append(run_measuring_cores({"server": server.pid},
                                                             cold_renders(server.base_url, paths, clients)))
                    rss[clients] = max(rss[clients], server.peak_rss_bytes())

        def ratios(clients: int, threads: int) -> str:
            rates = [rate for rate, _ in runs[clients]]
            median = statistics.median(rates) / statistics.median(refs[threads])
            each = ", ".join(f"{rate / ref:.2f}" for rate, ref in zip(rates, refs[threads], strict=True))
            return f"{median:.2f} of Pillow on {threads} thread{'s' if threads > 1 else ''} (each: {each})"

        for clients, compared in ((1, (1,)), (COLD_CLIENTS, (1, cores))):
            ordered = sorted(runs[clients])
            text = ordered[len(ordered) // 2][1]
            row(f"cold render, {clients} client{'s' if clients > 1 else ''}", f"{text} (median of {repetitions})",
                "; ".join(f"Pillow, {t} thread{'s' if t > 1 else ''}: {statistics.median(refs[t]):.1f} renders/s"
                          for t in compared),
                "; ".join(ratios(clients, t) for t in compared), f"{rss[clients] / 2**20:.0f} MiB")
        ref_rss = peak_rss(ref_pid)
    return [
        "# preview-proxy: previews benchmark", "",
        f"Machine: {machine()}",
        f"Command: `.venv/bin/python -m tests.benchmarks.previews{' --quick' if quick else ''}`: {len(photos)} photos "
        f"(mean {megapixels:.1f} MP) x {rounds} round(s) x {repetitions} repetition(s), "
        f"`resize:fill:{WIDTH}:0:0/q:{QUALITY}` to JPEG; hits over "
        f"{HIT_CONNECTIONS} connections for {seconds:g} s after a {warmup:g} s warm-up.", "",
        "| scenario | figure | reference (same run) | ratio | server peak RSS |", "|---|---|---|---|---|", *rows, "",
        f"Peak RSS of the FileResponse reference server: {ref_rss}.",
    ]


def main() -> int:
    """Parse arguments, run, print the report and write it to RESULTS."""
    parser = argparse.ArgumentParser(description="Benchmark preview-proxy's previews on real photos.")
    parser.add_argument("--quick", action="store_true", help="shorter runs, one round of photos")
    report = "\n".join(run(parser.parse_args().quick)) + "\n"
    print(report)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
