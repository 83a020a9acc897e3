"""Benchmark: the server's own work for a miss, beside the same renders in-process in the same run.

A miss costs the server more than its render: the request, the tier's lock, lookups and store, the
render's two trips to a render thread (its header, then its pixels), the hand-overs between threads, the
response and its access line. W3's floor (tests.benchmarks.w3_floor) counts that work as load beside
the renders; this measures it alone, where the render itself is small:

1. The server (peers' preview-proxy in its default configuration, fresh, empty cache): one client on one
   connection, so one worker, asks a 10 px preview of each of twelve 2-4 MP photos, whose 1/8 decodes
   the worker then keeps, and then each photo at every width from 20 to 59 px: 480 misses, each
   rendered from a kept decode. The server's CPU per miss, all its processes together and the
   worker's event loop thread alone (from /proc).
2. The reference: the same 480 renders in this process with the project's own render (`render_preview`,
   the server's render settings, decodes kept as a worker keeps them, the same 10 px renders first):
   CPU per render.

The server's own work per miss is the difference. Server and reference alternate for `--repetitions`
runs; the figures are medians.

Run from the checkout:  .venv/bin/python -m tests.benchmarks.miss_cost [--repetitions 3]
"""

import argparse
import statistics
import time
from pathlib import Path

import aiohttp
import uvloop

from previews.config import RenderConfig
from previews.grammar.option_table import apply_options
from previews.grammar.url import parse_preview_url
from previews.imaging.decoded import SHARED_DECODE_PIXELS, keep_decoded_images
from previews.render import deadline_after, render_preview
from proxy.app import DECODES_KEPT
from tests.benchmarks import peers
from tests.benchmarks.harness import cpu_seconds, process_tree
from tests.benchmarks.peer_servers import Peer

PHOTOS = "mate-"  # twelve 2-4 MP baseline and progressive photos (shared/corpus)
FIRST_WIDTH = 10  # rendered first: each photo's 1/8 decode, kept for the widths after it
WIDTHS = range(20, 60)


async def _get_all(session: aiohttp.ClientSession, server: Peer, requests: list[tuple[int, str]]) -> None:
    for width, key in requests:
        async with session.get(server.preview_url(width, key)) as response:
            await response.read()
            if response.status != 200 or response.headers.get("X-Cache") != "MISS":
                raise peers.BenchmarkError(f"{key} at {width} px: {response.status} "
                                           f"{response.headers.get('X-Cache')}, not a rendered miss")


async def _misses(server: Peer, keys: list[str]) -> tuple[float, float, float]:
    # One connection for all of it: the worker that keeps the decodes is the one asked for the misses.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as session:
        await _get_all(session, server, [(FIRST_WIDTH, key) for key in keys])
        misses = [(width, key) for width in WIDTHS for key in keys]
        pids = process_tree(server.pid)
        before = {pid: (cpu_seconds(pid), cpu_seconds(pid, pid)) for pid in pids}
        started = time.perf_counter()
        await _get_all(session, server, misses)
        wall = time.perf_counter() - started
        after = {pid: (cpu_seconds(pid), cpu_seconds(pid, pid)) for pid in pids}
    used = sum(after[pid][0] - before[pid][0] for pid in pids)
    loop = max(after[pid][1] - before[pid][1] for pid in pids)  # the worker that served the connection
    return wall * 1000 / len(misses), used * 1000 / len(misses), loop * 1000 / len(misses)


def _reference(paths: list[Path], server: Peer) -> float:
    """CPU per render (ms) of the same renders in this process, from decodes kept as a worker keeps them."""
    config = RenderConfig(shared_decode_pixels=SHARED_DECODE_PIXELS)  # as a server with a render host
    keep_decoded_images(DECODES_KEPT)
    try:
        def render(width: int, path: Path) -> None:
            # Past the route's prefix (/previews): the signature, options and source the parser reads.
            url = parse_preview_url("/" + server.preview_path(width, path.name).split("/", 2)[2])
            with path.open("rb") as file:
                render_preview(file, apply_options(config.defaults, url.options, config.presets), config,
                               deadline_after(60))

        for path in paths:
            render(FIRST_WIDTH, path)
        started = time.thread_time()
        for width in WIDTHS:
            for path in paths:
                render(width, path)
        return 1000 * (time.thread_time() - started) / (len(WIDTHS) * len(paths))
    finally:
        keep_decoded_images(0)


def main() -> None:
    """Print each run's figures and their medians."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--repetitions", type=int, default=3)
    repetitions = parser.parse_args().repetitions
    photos = sorted(peers.CORPUS.glob(f"{PHOTOS}*.jpg"))
    runs = []
    with peers.bench_ground(photos, None, True) as bench:
        keys = [key for key in bench.keys if Path(key).name.startswith(PHOTOS)]
        for repetition in range(repetitions):
            with bench.fresh(peers.PP) as server:
                wall, used, loop = uvloop.run(_misses(server, keys))
            reference = _reference(photos, server)
            runs.append((wall, used, loop, reference))
            print(f"run {repetition + 1}: a miss {wall:.2f} ms, the server's CPU {used:.2f} ms (its event loop "
                  f"{loop:.2f} ms); the same render in-process {reference:.2f} ms", flush=True)
    wall, used, loop, reference = (statistics.median(column) for column in zip(*runs, strict=True))
    print(f"{len(photos)} photos x {len(WIDTHS)} widths, medians of {repetitions}: the server's CPU per miss "
          f"{used:.2f} ms (event loop {loop:.2f} ms), of which the render {reference:.2f} ms: "
          f"{used - reference:.2f} ms of the server's own work per miss")


if __name__ == "__main__":
    main()
