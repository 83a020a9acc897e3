"""Benchmark: deep zoom over IIIF, preview-proxy side by side with IIPImage, in one run, on the same photo.

IIPImage (Debian's iipimage-server, FastCGI, two processes behind nginx) serves a pyramidal TIFF made in
advance with Debian's libvips-tools (`vips tiffsave --tile --pyramid`, 512 px JPEG tiles): the time to
make it is reported on its own. preview-proxy (two workers) serves the plain JPEG: its cold sweep
includes making its own tile pyramid from it. Each peer starts fresh; a viewer-like sweep reads info.json
(as a viewer does first), then asks every 512 px tile of every scale factor, coarsest first (zooming in
all the way, then panning everywhere), by 6 clients (a browser's connections to one host), cold, then
the same sweep again, warm; the time runs from info.json's request to the last tile. Both write JPEG at
quality 80. Figures: tiles/s, p50 and p99 latency, the CPU seconds the peer's processes spent on the cold
sweep (what it cost, whatever share of a shared machine it got), peak RSS summed over its processes.
Repetitions are interleaved (which peer goes first alternates), each with fresh servers and empty caches;
the report gives each peer's medians, and preview-proxy / IIPImage of the medians and of each repetition.

Run:  python -m tests.benchmarks.iiif_peers [--photo kleiber-20mp.jpg] [--repetitions 3 | --quick]
      (about 10 s a repetition; installs nothing: bash deploy/apt-install.sh iipimage-server
      libvips-tools nginx-light first)
"""

import argparse
import asyncio
import io
import math
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from PIL import Image

from tests.benchmarks.harness import (
    REPO,
    BenchmarkError,
    cpu_seconds,
    free_port,
    machine,
    percentiles,
    process_tree,
    proxy_server,
    tree_peak_rss_bytes,
)
from tests.benchmarks.peer_servers import _nginx

IIPSRV = Path("/usr/lib/iipimage-server/iipsrv.fcgi")
VIPS = "vips"
CORPUS = REPO / ".cache" / "corpus" / "photos"
TILE, CLIENTS, QUALITY, PROCESSES = 512, 6, 80, 2
MAX_REPETITIONS = 15
IIP, PP = "IIPImage", "preview-proxy"
BUCKET = "bench"

IIP_SERVERS = """
    upstream iipsrv {{ {upstreams} }}
    server {{
        listen 127.0.0.1:{port};
        location = / {{ return 200; }}
        location /iipsrv {{
            fastcgi_pass iipsrv;
            fastcgi_param QUERY_STRING $query_string;
            fastcgi_param REQUEST_METHOD $request_method;
            fastcgi_param REQUEST_URI $request_uri;
            fastcgi_param SERVER_NAME $host;
            fastcgi_param SERVER_PORT $server_port;
            fastcgi_param SERVER_PROTOCOL $server_protocol;
        }}
    }}
"""


@dataclass(frozen=True)
class Sweep:
    """The tiles a viewer asks for, as IIIF `region/size` pairs, and their expected pixel sizes."""

    tiles: list[tuple[str, tuple[int, int]]]


@dataclass(frozen=True)
class Figures:
    """One sweep against one peer."""

    tiles_per_second: float
    p50_ms: float
    p99_ms: float


def viewer_sweep(width: int, height: int) -> Sweep:
    """Every 512 px tile at every scale factor, coarsest first."""
    factors = [1]
    while math.ceil(max(width, height) / factors[-1]) > TILE:
        factors.append(factors[-1] * 2)
    tiles = []
    for factor in reversed(factors):
        span = TILE * factor
        for top in range(0, height, span):
            for left in range(0, width, span):
                w, h = min(span, width - left), min(span, height - top)
                out_w = math.ceil(w / factor)
                tiles.append((f"{left},{top},{w},{h}/{out_w},", (out_w, round(h * out_w / w))))
    return Sweep(tiles)


async def _run_sweep(base: str, url_of: "UrlOf", sweep: Sweep) -> Figures:
    """The sweep as a viewer makes it: info.json, then the tiles by CLIENTS clients; every answer checked
    for status and size. The time is from info.json's request to the last tile's answer."""
    latencies: list[float] = []
    queue = list(sweep.tiles)

    async def client(session: aiohttp.ClientSession) -> None:
        while queue:
            params, size = queue.pop(0)
            started = time.perf_counter()
            async with session.get(base + url_of(params)) as response:
                body = await response.read()
                if response.status != 200:
                    raise BenchmarkError(f"{url_of(params)}: {response.status} {body[:200]!r}")
            latencies.append(time.perf_counter() - started)
            got = Image.open(io.BytesIO(body)).size
            if abs(got[0] - size[0]) > 1 or abs(got[1] - size[1]) > 1:
                raise BenchmarkError(f"{url_of(params)}: {got}, expected {size}")

    started = time.perf_counter()
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        async with session.get(base + url_of.info) as response:
            info = await response.json(content_type=None)
            if response.status != 200 or not info.get("tiles"):
                raise BenchmarkError(f"{url_of.info}: {response.status} {info!r:.200}")
        await asyncio.gather(*(client(session) for _ in range(CLIENTS)))
    elapsed = time.perf_counter() - started
    p50, p99 = percentiles(latencies)
    return Figures(len(latencies) / elapsed, p50, p99)


class UrlOf:
    """A peer's URL of an IIIF `region/size`, and of the image's info.json."""

    def __init__(self, template: str, info: str) -> None:
        self.template = template
        self.info = info

    def __call__(self, params: str) -> str:
        return self.template.format(params=params)


@contextmanager
def iipimage(folder: Path, work: Path) -> Iterator[tuple[str, list[int]]]:
    """IIPImage: PROCESSES FastCGI processes behind one nginx. Yields its URL and the processes' pids."""
    ports = [free_port() for _ in range(PROCESSES)]
    env = {**os.environ, "FILESYSTEM_PREFIX": f"{folder}/", "JPEG_QUALITY": str(QUALITY), "VERBOSITY": "0",
           "LOGFILE": str(work / "iipsrv.log"), "MAX_IMAGE_CACHE_SIZE": "64"}
    processes = [subprocess.Popen([str(IIPSRV), "--bind", f"127.0.0.1:{port}", "--backlog", "1024"], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
                 for port in ports]
    port = free_port()
    servers = IIP_SERVERS.format(port=port, upstreams=" ".join(f"server 127.0.0.1:{p};" for p in ports))
    try:
        with _nginx(work / "nginx", port, "1", servers) as nginx:
            yield f"http://127.0.0.1:{port}", [nginx, *(process.pid for process in processes)]
    finally:
        for process in processes:
            process.terminate()
            process.wait(10)


def _hwm(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    return next((int(line.split()[1]) * 1024 for line in status.splitlines() if line.startswith("VmHWM")), 0)


@dataclass(frozen=True)
class Row:
    """One peer's figures in one repetition."""

    cold: Figures
    warm: Figures
    cold_cpu: float
    peak_rss: int


def run_iipimage(tiffs: Path, work: Path, sweep: Sweep) -> Row:
    """A fresh IIPImage (empty image cache): the sweep cold, then warm."""
    work.mkdir(parents=True)
    with iipimage(tiffs, work) as (base, pids):
        url_of = UrlOf("/iipsrv?IIIF=/photo.tif/{params}/0/default.jpg", "/iipsrv?IIIF=/photo.tif/info.json")
        cold, cold_cpu = _measured(pids, _run_sweep(base, url_of, sweep))
        warm, _ = _measured(pids, _run_sweep(base, url_of, sweep))
        return Row(cold, warm, cold_cpu, sum(_hwm(pid) for pid in _trees(pids)))


def run_preview_proxy(photo: Path, data: Path, sweep: Sweep) -> Row:
    """A fresh preview-proxy with empty tiers in `data`: the sweep cold (making the pyramid), then warm."""
    (data / "storage" / BUCKET).mkdir(parents=True)
    shutil.copyfile(photo, data / "storage" / BUCKET / "photo.jpg")
    with proxy_server({"DATA_PATH": str(data), "IIIF_BUCKETS": BUCKET}, ["--workers", str(PROCESSES)]) as server:
        base = f"/iiif/3/{BUCKET}%2Fphoto.jpg"
        url_of = UrlOf(base + "/{params}/0/default.jpg", base + "/info.json")
        cold, cold_cpu = _measured([server.pid], _run_sweep(server.base_url, url_of, sweep))
        warm, _ = _measured([server.pid], _run_sweep(server.base_url, url_of, sweep))
        return Row(cold, warm, cold_cpu, tree_peak_rss_bytes(server.pid))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photo", default="kleiber-20mp.jpg", help="a photo of the corpus")
    parser.add_argument("--repetitions", type=int, default=3, help="interleaved repetitions (fresh servers each)")
    parser.add_argument("--quick", action="store_true", help="one repetition")
    args = parser.parse_args()
    photo = CORPUS / args.photo
    repetitions = 1 if args.quick else max(1, min(args.repetitions, MAX_REPETITIONS))
    if not IIPSRV.exists() or shutil.which(VIPS) is None:
        raise SystemExit("install iipimage-server and libvips-tools: bash deploy/apt-install.sh iipimage-server "
                         "libvips-tools nginx-light")
    with Image.open(photo) as image:
        width, height = image.size
    sweep = viewer_sweep(width, height)
    print(machine())
    print(f"{photo.name}: {width}x{height}, {len(sweep.tiles)} tiles a sweep, {CLIENTS} clients, "
          f"{repetitions} repetitions")
    rows: dict[str, list[Row]] = {IIP: [], PP: []}
    with tempfile.TemporaryDirectory(prefix="iiif-peers-") as temp:
        work = Path(temp)
        tiffs = work / "tiffs"
        tiffs.mkdir()
        started = time.perf_counter()
        subprocess.run([VIPS, "tiffsave", str(photo), str(tiffs / "photo.tif"), "--tile", "--pyramid",
                        "--compression", "jpeg", "--Q", "90", "--tile-width", str(TILE), "--tile-height", str(TILE)],
                       check=True)
        print(f"IIPImage's pyramidal TIFF made in advance by vips: {time.perf_counter() - started:.2f} s")
        runners = {IIP: lambda repetition: run_iipimage(tiffs, work / f"iip-{repetition}", sweep),
                   PP: lambda repetition: run_preview_proxy(photo, work / f"pp-{repetition}", sweep)}
        for repetition in range(repetitions):
            # Alternate which peer goes first, so neither always runs on a machine the other just warmed.
            for peer in (IIP, PP) if repetition % 2 == 0 else (PP, IIP):
                rows[peer].append(runners[peer](repetition))
    print(report(rows))


def report(rows: dict[str, list[Row]]) -> str:
    """Each peer's medians over the repetitions, then preview-proxy / IIPImage: of the medians, and of each
    repetition (in brackets)."""
    lines = ["| peer | cold tiles/s | cold p50 / p99 ms | cold CPU s | warm tiles/s | warm p50 / p99 ms | peak RSS |",
             "|---|---|---|---|---|---|---|"]
    for peer, samples in rows.items():
        def median(value: Callable[[Row], float], samples: list[Row] = samples) -> float:
            return statistics.median(value(row) for row in samples)
        lines.append(
            f"| {peer} | {median(lambda r: r.cold.tiles_per_second):.0f} | {median(lambda r: r.cold.p50_ms):.0f} / "
            f"{median(lambda r: r.cold.p99_ms):.0f} | {median(lambda r: r.cold_cpu):.2f} | "
            f"{median(lambda r: r.warm.tiles_per_second):.0f} | {median(lambda r: r.warm.p50_ms):.0f} / "
            f"{median(lambda r: r.warm.p99_ms):.0f} | {median(lambda r: r.peak_rss) / 2**20:.0f} MiB |")
    lines.append("")
    metrics: dict[str, Callable[[Row], float]] = {
        "cold tiles/s": lambda r: r.cold.tiles_per_second, "warm tiles/s": lambda r: r.warm.tiles_per_second,
        "cold CPU s": lambda r: r.cold_cpu}
    for name, value in metrics.items():
        ours, theirs = [value(r) for r in rows[PP]], [value(r) for r in rows[IIP]]
        each = ", ".join(f"{a / b:.2f}" for a, b in zip(ours, theirs, strict=True))
        lines.append(f"preview-proxy / IIPImage, {name}: **{statistics.median(ours) / statistics.median(theirs):.2f}**"
                     + (f" ({each})" if len(ours) > 1 else ""))
    return "\n".join(lines)


def _trees(pids: list[int]) -> list[int]:
    """The processes and all their live descendants (nginx's workers, preview-proxy's)."""
    return sorted({member for pid in pids for member in process_tree(pid)})


def _measured(pids: list[int], sweep: Coroutine[Any, Any, Figures]) -> tuple[Figures, float]:
    """The sweep's figures, and the CPU seconds (user and system) the peer's processes spent on it: on a
    shared machine, what the work cost whatever share of the cores it got."""
    before = sum(cpu_seconds(pid) for pid in _trees(pids))
    figures = asyncio.run(sweep)
    return figures, sum(cpu_seconds(pid) for pid in _trees(pids)) - before


if __name__ == "__main__":
    main()
