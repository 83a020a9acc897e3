"""What the access log costs on hits, side by side in one run: the smoke benchmark's hits (one cached
preview, the harness's hammer of 32 connections) against three servers over the same files:

- access log off, hot lane on;
- access log on, hot lane on (the default: the lane writes its lines in batches);
- access log on, hot lane off (what the default was while the lane needed the access log off).

Rounds are interleaved (each server once per round, the best round kept), as in smoke.py, so a noisy
neighbour slows one round rather than one server. The servers' lines go to this process's pipe, which
it reads, as a terminal or a log collector would: the figure with the access log on includes writing it.

Run: .venv/bin/python -m tests.benchmarks.access_log   (about 30 s)
"""

import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

import uvloop

from tests.benchmarks.harness import BenchmarkError, proxy_server
from tests.benchmarks.previews import BUCKET, CORPUS, fetch, hits, preview_path

ROUNDS = 2
HIT_SECONDS, HIT_WARMUP = 2.0, 0.5
SERVERS = {
    "access log off, lane on": {"ACCESS_LOG": "false", "HOT_LANE": "true"},
    "access log on, lane on (default)": {"ACCESS_LOG": "true", "HOT_LANE": "true"},
    "access log on, lane off (old default)": {"ACCESS_LOG": "true", "HOT_LANE": "false"},
}


def measure() -> dict[str, float]:
    """{server: best hits per second over ROUNDS interleaved rounds}."""
    photos = sorted(CORPUS.glob("*.jpg"))
    if not photos:
        raise BenchmarkError(f"no photos in {CORPUS}: run `bash deploy/dev.sh test` once (it fetches them)")
    with tempfile.TemporaryDirectory(prefix="pp-bench-access-") as tmp_name:
        tmp = Path(tmp_name)
        storage = tmp / "data" / "storage" / BUCKET / "photos"
        storage.mkdir(parents=True)
        (storage / photos[0].name).write_bytes(photos[0].read_bytes())
        best = dict.fromkeys(SERVERS, 0.0)
        path = preview_path(photos[0].name, 0)
        with ExitStack() as stack:
            servers = {name: stack.enter_context(proxy_server(
                {"DATA_PATH": str(tmp / "data"), "CACHE_PATH": str(tmp / f"cache-{number}"), **env}))
                for number, (name, env) in enumerate(SERVERS.items())}
            for server in servers.values():
                for _ in range(3):  # a render, a hit from the store, then hits from memory
                    uvloop.run(fetch(server.url(path)))
            for _ in range(ROUNDS):
                for name, server in servers.items():
                    rate = uvloop.run(hits(server.url(path), HIT_SECONDS, HIT_WARMUP, "HIT"))[0]
                    best[name] = max(best[name], rate)
            lines = sum("aiohttp.access" in line for line in servers["access log on, lane on (default)"].log_lines)
            if not lines:
                raise BenchmarkError("the default server wrote no access line")
    return best


def main() -> int:
    """Print the figures as a Markdown table."""
    measured = measure()
    off = measured["access log off, lane on"]
    print("| server | hits/s | vs access log off |\n|---|---|---|")
    for name, rate in measured.items():
        print(f"| {name} | {rate:,.0f} | {rate / off:.0%} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
