"""Benchmark: preview-proxy side by side with an nginx preview cache and thumbor, in one run, on one
machine, on the same real photos. Start it with tests/benchmarks/peers.sh, which installs
the peers first (nginx and wrk from Debian, thumbor from PyPI in its own venv).

Loopback only, random free ports, configs generated into a temp dir (see peer_servers.py). Every
figure comes from a fresh server with an empty cache; repetitions are interleaved (each repetition
runs every peer back to back, in a rotating order), and ratios are preview-proxy / peer.

- W1: one cached 300 px preview hammered by wrk (64 connections, 10 s, after a 1 s warm-up); the
  cache hit is checked before and after (X-Cache-Status / X-Cache; for thumbor, its result file).
- W2: every photo once at 300 px from an empty cache, by 1 client and by 8 clients; beside the peers,
  the ceiling: the same renders in-process (pillow-simd with draft, no HTTP, no cache) on 1 process and
  on one process per core.
- W3: 2,000 requests drawn from a Zipf distribution (s = 1, fixed seed) over photos x {50, 300,
  1024} px, by 32 clients, from an empty cache.
- W4: a large original (1 GiB) through each proxy's origin path, cold: nginx's proxy_cache location
  in front of the static origin, and preview-proxy's S3 provider on the same origin (both fill their
  cache while they stream). thumbor has no originals pass-through. Ceiling: the same GET straight
  from the origin.
Peak RSS (W2, W3, W4) is VmHWM summed over each server's processes (master, workers, helpers), read
once its workload has run.

Access logs are on by default, as users run the servers (nginx to a file, preview-proxy in its
default configuration, stderr to a file); `--access-log off` turns them off on both sides.

Run:  bash tests/benchmarks/peers.sh [--quick] [--only W1,W2] [--access-log off] [--update-docs]
The report is printed and written to tests/benchmarks/results/peers.md (git-ignored); with
--update-docs it also replaces the peers-benchmark section of docs/benchmarks.md (a run of some
workloads, with --only, replaces a section of its own after it, e.g. peers-benchmark-w1).
"""

import argparse
import hashlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import uvloop
from PIL import Image

from tests.benchmarks import peer_servers as servers
from tests.benchmarks import peer_workloads as load
from tests.benchmarks.harness import REPO, BenchmarkError, cpu_seconds, machine, process_tree
from tests.benchmarks.originals import BigFile, MiB, write_big_file
from tests.benchmarks.peer_report import (
    IN_PROCESS,
    NGINX,
    PP,
    THUMBOR,
    Results,
    replace_marked_section,
    table,
    targets_text,
)

RESULTS = REPO / "tests" / "benchmarks" / "results" / "peers.md"
BENCHMARKS_DOC = REPO / "docs" / "benchmarks.md"
CORPUS = REPO / ".cache" / "corpus" / "photos"
BIG_FILES = REPO / ".cache" / "peers"  # generated once, reused by later runs; never committed
WORKLOADS = ("W1", "W2", "W3", "W4")
WRK_CONNECTIONS, WRK_WARMUP, COLD_CLIENTS, ZIPF_REQUESTS, ZIPF_CLIENTS = 64, 1.0, 8, 2_000, 32
HIT_WIDTH = 300
WARMUP_KEY = "warmup.jpg"  # a copy of a photo under a key no workload asks for
BIG_KEY = "big.bin"


SETTINGS_NOTE = (
    "Settings that differ from the peers' defaults, each to give them their best or the same output: nginx "
    "`proxy_cache_lock_timeout 60s` (5 s would let slow renders under load run twice), `keepalive_requests "
    "1000000` (wrk's connections stay open) and `proxy_buffers 32 64k` on the originals location; thumbor "
    "`PROGRESSIVE_JPEG = False` (baseline JPEG, as the others write; it still encodes with `optimize`), its "
    "renders on each process's IOLoop (`ENGINE_THREADPOOL_SIZE = 0`, its default). The origin is a separate "
    "nginx with one worker and no access log.")
ACCESS_LOG_NOTES = {
    True: ("Access logs on: nginx's front server writes its `combined` lines, unbuffered (its default), to "
           "access.log in the run's temp dir; preview-proxy runs in its default configuration (no ACCESS_LOG, "
           "HOT_LANE or LOG_* in its environment: cached previews answered by the hot lane, which formats "
           "every access line and writes them in batches) with stderr to a file in the run's temp dir; thumbor "
           "runs at `--log-level error`, so tornado's access lines are not written."),
    False: "Access logs off everywhere (`--access-log off`: nginx `access_log off`, preview-proxy ACCESS_LOG=false).",
}


@dataclass(frozen=True)
class Settings:
    """What to run and how long."""

    repetitions: int
    wrk_seconds: float
    big_size: int
    only: tuple[str, ...]
    update_docs: bool
    quick: bool
    access_log: bool = True


@dataclass
class Bench:
    """The shared ground of a run: the photos' keys, the temp dir, the origin, and fresh peers on demand."""

    tmp: Path
    data: Path
    keys: list[str]
    origin_url: str
    access_log: bool = True
    runs: int = 0

    @contextmanager
    def fresh(self, peer: str, with_origin: bool = False) -> Iterator[servers.Peer]:
        """A newly started `peer` with an empty cache of its own, removed once it has stopped (W4 leaves
        a gigabyte in each)."""
        self.runs += 1
        directory = self.tmp / "runs" / f"{self.runs:03d}-{peer}"
        starters: dict[str, Callable[[], AbstractContextManager[servers.Peer]]] = {
            NGINX: lambda: servers.nginx_cache(self.origin_url, directory, self.access_log),
            THUMBOR: lambda: servers.thumbor(self.data / "storage", directory),
            PP: lambda: servers.preview_proxy(self.data, directory, self.origin_url if with_origin else None,
                                              self.access_log),
        }
        try:
            with starters[peer]() as started:
                yield started
        finally:
            shutil.rmtree(directory, ignore_errors=True)


def rotated(peers: tuple[str, ...], repetition: int) -> tuple[str, ...]:
    """The peers in a different order each repetition, so none always runs first (or right after another)."""
    shift = repetition % len(peers)
    return peers[shift:] + peers[:shift]


def run_w1(bench: Bench, settings: Settings, results: Results, notes: list[str]) -> None:
    """Hits on one cached preview, by wrk."""
    target = load.Preview(bench.keys[0], HIT_WIDTH)
    evidence: dict[str, str] = {}
    logged: dict[str, int] = {}
    for repetition in range(settings.repetitions):
        for peer in rotated((NGINX, THUMBOR, PP), repetition):
            with bench.fresh(peer) as server:
                evidence[peer] = uvloop.run(load.cache_a_preview(server, target))
                url = server.preview_url(target.width, target.key)
                warm_up = load.run_wrk(url, WRK_WARMUP, WRK_CONNECTIONS, servers.CORES)
                sample = load.run_wrk(url, settings.wrk_seconds, WRK_CONNECTIONS, servers.CORES)
                if not uvloop.run(load.is_still_cached(server, target)):
                    raise BenchmarkError(f"{peer}: the W1 preview was no longer a cache hit after wrk")
                if server.access_log is not None:
                    path = server.preview_path(target.width, target.key)
                    logged[peer] = wait_for_access_lines(server.access_log, path,
                                                         int(warm_up["requests"] + sample["requests"]))
                results.setdefault("W1", {}).setdefault(peer, []).append(sample)
    notes.append("W1 cache hits checked before and after each wrk run: "
                 + "; ".join(f"{peer}: {text}" for peer, text in sorted(evidence.items())) + ".")
    if logged:
        notes.append("W1 access lines: after each run, the log holds at least one line per request wrk counted "
                     "(last run: " + ", ".join(f"{peer} {count:,}" for peer, count in sorted(logged.items())) + ").")


def wait_for_access_lines(log: Path, path: str, at_least: int, timeout: float = 10.0) -> int:
    """The access lines of `path` in `log`, once there are `at_least` (preview-proxy writes the hot lane's
    in batches, up to a second late); fails if they don't come within `timeout`."""
    needle = f" {path} ".encode()
    deadline = time.monotonic() + timeout
    while True:
        with log.open("rb") as lines:
            count = sum(needle in line for line in lines)
        if count >= at_least:
            return count
        if time.monotonic() > deadline:
            raise BenchmarkError(f"{log}: {count:,} access lines of {path}, expected at least {at_least:,}")
        time.sleep(0.2)  # polling a file that fills; the deadline above bounds the loop


def run_w2(bench: Bench, settings: Settings, results: Results, notes: list[str]) -> None:
    """Every photo once at 300 px from an empty cache, by 1 client and by COLD_CLIENTS; and the same
    renders in-process (the ceiling), on 1 process and on one per core, in the same rotation."""
    requests = [load.Preview(key, HIT_WIDTH) for key in bench.keys]
    storage = bench.data / "storage" / servers.BUCKET
    photos = [storage / key for key in bench.keys]
    for repetition in range(settings.repetitions):
        for clients, processes, scenario in ((1, 1, "W2-1"), (COLD_CLIENTS, servers.CORES, "W2-8")):
            for peer in rotated((NGINX, THUMBOR, PP, IN_PROCESS), repetition):
                if peer == IN_PROCESS:
                    sample = load.in_process_renders(photos, processes, storage / WARMUP_KEY)
                else:
                    with bench.fresh(peer) as server:
                        uvloop.run(load.warm_up(server, WARMUP_KEY))
                        sample = uvloop.run(load.previews(server, requests, clients))
                        sample["rss_mib"] = server.peak_rss_bytes() / MiB
                results.setdefault(scenario, {}).setdefault(peer, []).append(sample)
    notes.append(f"W2 {IN_PROCESS}: the ceiling, the same photos rendered with nothing around them (no HTTP, no "
                 "cache): `Image.open`, `draft`, `thumbnail` to 300 px keeping the aspect ratio, JPEG q70, with the "
                 "project's pillow-simd, on 1 process for W2's 1 client and on one process per core "
                 f"({servers.CORES}) for its {COLD_CLIENTS} clients, each process taking the next photo when it is "
                 "free; its p99 is one render's time, not a client's wait.")


def run_w3(bench: Bench, settings: Settings, results: Results, notes: list[str]) -> None:
    """ZIPF_REQUESTS Zipf-distributed previews by ZIPF_CLIENTS, from an empty cache."""
    requests = load.zipf_requests(bench.keys, ZIPF_REQUESTS)
    for repetition in range(settings.repetitions):
        for peer in rotated((NGINX, THUMBOR, PP), repetition):
            with bench.fresh(peer) as server:
                uvloop.run(load.warm_up(server, WARMUP_KEY))
                sample = uvloop.run(load.previews(server, requests, ZIPF_CLIENTS))
                sample["rss_mib"] = server.peak_rss_bytes() / MiB
                results.setdefault("W3", {}).setdefault(peer, []).append(sample)
    distinct = len(set(requests))
    notes.append(f"W3: {distinct} distinct previews among {len(requests):,} requests, so at best "
                 f"{1 - distinct / len(requests):.0%} are hits (each rendered once); thumbor doesn't say which "
                 "requests hit its result storage.")


def run_w4(bench: Bench, settings: Settings, results: Results, notes: list[str], big: BigFile) -> None:
    """The large original through each proxy's origin path, cold, next to a GET straight from the origin."""
    cache_header = {NGINX: ("X-Cache-Status", "MISS"), PP: ("X-Cache", "MISS")}
    for repetition in range(settings.repetitions):
        direct = load.curl_download(f"{bench.origin_url}/{servers.BUCKET}/{BIG_KEY}", None, big.size)
        results.setdefault("W4", {}).setdefault("origin", []).append({"mib_s": direct})
        for peer in rotated((NGINX, PP), repetition):
            with bench.fresh(peer, with_origin=True) as server:
                assert server.original_path is not None
                url = server.base_url + server.original_path(BIG_KEY)
                # CPU time of the proxy's processes per GiB: on a machine shared with other work the MiB/s
                # swing with the load, the CPU a GiB costs much less.
                cpu_before = tree_cpu_seconds(server.pid)
                sample = {"mib_s": load.curl_download(url, cache_header[peer], big.size)}
                sample["cpu_s_gib"] = (tree_cpu_seconds(server.pid) - cpu_before) / (big.size / 2**30)
                sample["rss_mib"] = server.peak_rss_bytes() / MiB  # before the check below adds to it
                if not uvloop.run(load.cached_tail_matches(url, big)):
                    raise BenchmarkError(f"{peer}: the cached copy of the large original has other bytes")
                results["W4"].setdefault(peer, []).append(sample)
    ceiling = statistics.median(s["mib_s"] for s in results["W4"]["origin"])
    notes.append(f"W4: {big.size // MiB} MiB, downloaded by curl; nginx through `proxy_cache` (a MISS that fills the "
                 "cache as it streams), preview-proxy through its S3 provider (STORAGE_PROVIDER=minio) on the same "
                 f"static origin (X-Cache: MISS). The same GET straight from the origin: {ceiling:,.0f} MiB/s. "
                 "CPU is user + system time summed over the proxy's processes during the download. "
                 "Each cached copy's last MiB is checked afterwards. thumbor: n/a, it has no originals "
                 "pass-through.")


def tree_cpu_seconds(pid: int) -> float:
    """User + system time of a process and its descendants (a master and its workers), as far as they live."""
    total = 0.0
    for member in process_tree(pid):
        try:
            total += cpu_seconds(member)
        except (OSError, IndexError):
            continue  # exited meanwhile
    return total


def ensure_big_file(size: int) -> BigFile:
    """The large original of W4: random bytes, written once into .cache and reused afterwards."""
    path = BIG_FILES / f"original-{size // MiB}m.bin"
    if path.is_file() and path.stat().st_size == size:
        with path.open("rb") as source:
            head = hashlib.sha256(source.read(MiB)).hexdigest()
            source.seek(size - MiB)
            tail = hashlib.sha256(source.read(MiB)).hexdigest()
        return BigFile(path, size, head, tail)
    BIG_FILES.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    big = write_big_file(partial, size)
    partial.replace(path)  # a run killed midway leaves no short file under the final name
    return BigFile(path, size, big.head, big.tail)


def lay_out(tmp: Path, photos: list[Path], big: BigFile | None) -> Path:
    """DATA_PATH with storage/<bucket>/photos/*.jpg (copies), the warm-up key, and the large original."""
    bucket = tmp / "data" / "storage" / servers.BUCKET
    (bucket / "photos").mkdir(parents=True)
    for photo in photos:
        shutil.copyfile(photo, bucket / "photos" / photo.name)
    shutil.copyfile(photos[0], bucket / WARMUP_KEY)
    if big:
        (bucket / BIG_KEY).symlink_to(big.path)  # only the origin (nginx) reads it, and follows links
    return tmp / "data"


@contextmanager
def bench_ground(photos: list[Path], big: BigFile | None, access_log: bool) -> Iterator[Bench]:
    """The temp dir, the photos laid out, and the origin; all gone on the way out."""
    tmp = Path(tempfile.mkdtemp(prefix="pp-bench-peers-"))
    try:
        data = lay_out(tmp, photos, big)
        with servers.origin(data / "storage", tmp / "origin") as origin_url:
            yield Bench(tmp, data, [f"photos/{photo.name}" for photo in photos], origin_url, access_log)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def versions() -> str:
    """The peers as they ran."""
    pillow = subprocess.run([str(servers.THUMBOR_VENV / "bin" / "python"), "-c", "import PIL; print(PIL.__version__)"],
                            capture_output=True, text=True, check=True).stdout.strip()
    return (f"{servers.nginx_version()} (Debian, image_filter + proxy_cache, `worker_processes auto`: "
            f"{servers.CORES}); thumbor {servers.thumbor_version()} (PyPI, PIL engine on Pillow {pillow}, "
            f"`--processes {servers.CORES}`, file loader, file result storage); preview-proxy `serve` in its "
            f"default configuration (SERVER_WORKERS {servers.preview_proxy_workers()}).")


def run(settings: Settings) -> list[str]:
    """Run the chosen workloads and return the report's body (Markdown, without its title)."""
    photos = sorted(CORPUS.glob("*.jpg"))
    if not photos:
        raise BenchmarkError(f"no photos in {CORPUS}: run `bash deploy/dev.sh test` once (it fetches them)")
    if not (servers.THUMBOR_VENV / "bin" / "thumbor").exists():
        raise BenchmarkError("thumbor is not installed: run `bash tests/benchmarks/peers.sh`")
    big = ensure_big_file(settings.big_size) if "W4" in settings.only else None
    results: Results = {}
    notes: list[str] = []
    with bench_ground(photos, big, settings.access_log) as bench:
        if "W1" in settings.only:
            run_w1(bench, settings, results, notes)
        if "W2" in settings.only:
            run_w2(bench, settings, results, notes)
        if "W3" in settings.only:
            run_w3(bench, settings, results, notes)
        if big:
            run_w4(bench, settings, results, notes, big)
    megapixels = statistics.mean(_pixels(photo) for photo in photos) / 1e6
    command = " ".join(["bash tests/benchmarks/peers.sh", *(["--quick"] if settings.quick else []),
                        *([f"--only {','.join(settings.only)}"] if settings.only != WORKLOADS else []),
                        *([] if settings.access_log else ["--access-log off"])])
    return [
        f"Machine: {machine()}. Peers: {versions()}",
        f"Command: `{command}`; {len(photos)} photos (mean {megapixels:.1f} MP), JPEG q70 previews keeping the "
        "aspect ratio (nginx `image_filter resize W -`, thumbor `/unsafe/Wx0/`, preview-proxy `rs:fit:W:0`); "
        f"{settings.repetitions} interleaved repetition(s), a fresh server with an empty cache for each figure; "
        f"wrk for {settings.wrk_seconds:g} s. Figures are medians; ratios are preview-proxy / peer, of the medians "
        "in bold, then each repetition's.", "",
        *table(results, {"W4": {THUMBOR: "n/a (no originals route)"}}), "",
        *(["**A --quick run** (one repetition, for development): not the figures to publish.", ""]
          if settings.quick else []),
        "Targets (on the medians):", *targets_text(results), "",
        *(f"- {note}" for note in [ACCESS_LOG_NOTES[settings.access_log], *notes, SETTINGS_NOTE]),
    ]


def _pixels(path: Path) -> int:
    with Image.open(path) as image:
        return image.width * image.height


def parse_args(argv: list[str] | None) -> Settings:
    """Command-line options."""
    parser = argparse.ArgumentParser(description="preview-proxy against nginx and thumbor.")
    parser.add_argument("--quick", action="store_true", help="1 repetition, wrk for 5 s, a 256 MiB original")
    parser.add_argument("--only", default=",".join(WORKLOADS), help="comma-separated workloads, e.g. W1,W2")
    parser.add_argument("--access-log", choices=("on", "off"), default="on",
                        help="nginx's and preview-proxy's access logs (default on: each as users run it)")
    parser.add_argument("--update-docs", action="store_true",
                        help="also rewrite the peers section of docs/benchmarks.md")
    args = parser.parse_args(argv)
    only = tuple(name.strip().upper() for name in args.only.split(",") if name.strip())
    if unknown := set(only) - set(WORKLOADS):
        parser.error(f"unknown workload(s) {', '.join(sorted(unknown))}; choose from {', '.join(WORKLOADS)}")
    if args.quick:
        return Settings(1, 5.0, 256 * MiB, only, args.update_docs, True, args.access_log == "on")
    return Settings(3, 10.0, 1024 * MiB, only, args.update_docs, False, args.access_log == "on")


def main(argv: list[str] | None = None) -> int:
    """Run, print the report, write it to RESULTS and, if asked, into docs/benchmarks.md."""
    settings = parse_args(argv)
    body = run(settings)
    report = "\n".join(["# preview-proxy against nginx and thumbor", "", *body]) + "\n"
    print(report)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(report)
    if settings.update_docs:  # a run of some workloads has a section of its own, below the full run's
        section = "peers-benchmark" + ("" if settings.only == WORKLOADS else "-" + "-".join(settings.only).lower())
        replace_marked_section(BENCHMARKS_DOC, [f"### {', '.join(settings.only)} alone", "", *body]
                               if settings.only != WORKLOADS else body, section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
