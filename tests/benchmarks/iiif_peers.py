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

Run:  python -m tests.benchmarks.iiif_peers [--photo kleiber-20mp.jpg]   (about 30 s; installs nothing:
      bash deploy/apt-install.sh iipimage-server libvips-tools nginx-light first)
"""

import argparse
import asyncio
import io
import math
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Coroutine, Iterator
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photo", default="kleiber-20mp.jpg", help="a photo of the corpus")
    photo = CORPUS / parser.parse_args().photo
    if not IIPSRV.exists() or shutil.which(VIPS) is None:
        raise SystemExit("install iipimage-server and libvips-tools: bash deploy/apt-install.sh iipimage-server "
                         "libvips-tools nginx-light")
    with Image.open(photo) as image:
        width, height = image.size
    sweep = viewer_sweep(width, height)
    print(machine())
    print(f"{photo.name}: {width}x{height}, {len(sweep.tiles)} tiles a sweep, {CLIENTS} clients")
    with tempfile.TemporaryDirectory(prefix="iiif-peers-") as temp:
        work = Path(temp)
        tiffs = work / "tiffs"
        tiffs.mkdir()
        started = time.perf_counter()
        subprocess.run([VIPS, "tiffsave", str(photo), str(tiffs / "photo.tif"), "--tile", "--pyramid",
                        "--compression", "jpeg", "--Q", "90", "--tile-width", str(TILE), "--tile-height", str(TILE)],
                       check=True)
        print(f"IIPImage's pyramidal TIFF made in advance by vips: {time.perf_counter() - started:.2f} s")
        rows = []
        with iipimage(tiffs, work) as (base, pids):
            url_of = UrlOf("/iipsrv?IIIF=/photo.tif/{params}/0/default.jpg", "/iipsrv?IIIF=/photo.tif/info.json")
            cold, cold_cpu = _measured(pids, _run_sweep(base, url_of, sweep))
            warm, _ = _measured(pids, _run_sweep(base, url_of, sweep))
            rows.append(("IIPImage", cold, warm, cold_cpu, sum(_hwm(pid) for pid in _trees(pids))))
        data = work / "data"
        (data / "storage" / BUCKET).mkdir(parents=True)
        shutil.copyfile(photo, data / "storage" / BUCKET / "photo.jpg")
        with proxy_server({"DATA_PATH": str(data), "IIIF_BUCKETS": BUCKET},
                          ["--workers", str(PROCESSES)]) as server:
            base = f"/iiif/3/{BUCKET}%2Fphoto.jpg"
            url_of = UrlOf(base + "/{params}/0/default.jpg", base + "/info.json")
            cold, cold_cpu = _measured([server.pid], _run_sweep(server.base_url, url_of, sweep))
            warm, _ = _measured([server.pid], _run_sweep(server.base_url, url_of, sweep))
            rows.append(("preview-proxy", cold, warm, cold_cpu, tree_peak_rss_bytes(server.pid)))
    print("| peer | cold tiles/s | cold p50 / p99 ms | cold CPU s | warm tiles/s | warm p50 / p99 ms | peak RSS |")
    print("|---|---|---|---|---|---|---|")
    for name, cold, warm, cpu, peak in rows:
        print(f"| {name} | {cold.tiles_per_second:.0f} | {cold.p50_ms:.0f} / {cold.p99_ms:.0f} | {cpu:.2f} | "
              f"{warm.tiles_per_second:.0f} | {warm.p50_ms:.0f} / {warm.p99_ms:.0f} | {peak / 2**20:.0f} MiB |")


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
