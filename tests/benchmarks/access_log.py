"""What the access log costs on hits, side by side in one run: the smoke benchmark's hits (one cached
preview, the harness's hammer of 32 connections) against three servers over the same files:

- access log off, hot lane on;
- access log on, hot lane on (the default: the lane writes its lines in batches);
- access log on, hot lane off (what the default was while the lane needed the access log off).

Rounds are interleaved (each server once per round, the best round kept), as in smoke.py, so a noisy
neighbour slows one round rather than one server. Two figures each: hits/s, which the Python client
bounds on a small machine (and which the client's own reading of the servers' log pipe slows when
lines are written), and the server's CPU time per answer (user + system, from /proc, over the hot
answers it counts), which is the cost of the access log itself.

Run: .venv/bin/python -m tests.benchmarks.access_log   (about 30 s)
"""

import os
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

import uvloop

from tests.benchmarks.harness import BenchmarkError, proxy_server
from tests.benchmarks.previews import BUCKET, CORPUS, fetch, hits, preview_path
from tests.support.previews_kit import metric

HOT = "preview_proxy_hot_answers_total"  # the lane's and the handler's answers from memory
ROUNDS = 2
HIT_SECONDS, HIT_WARMUP = 2.0, 0.5
SERVERS = {
    "access log off, lane on": {"ACCESS_LOG": "false", "HOT_LANE": "true"},
    "access log on, lane on (default)": {"ACCESS_LOG": "true", "HOT_LANE": "true"},
    "access log on, lane off (old default)": {"ACCESS_LOG": "true", "HOT_LANE": "false"},
}


def measure() -> dict[str, tuple[float, float]]:
    """{server: (best hits per second, least server CPU seconds per answer) over ROUNDS interleaved rounds}."""
    photos = sorted(CORPUS.glob("*.jpg"))
    if not photos:
        raise BenchmarkError(f"no photos in {CORPUS}: run `bash deploy/dev.sh test` once (it fetches them)")
    with tempfile.TemporaryDirectory(prefix="pp-bench-access-") as tmp_name:
        tmp = Path(tmp_name)
        storage = tmp / "data" / "storage" / BUCKET / "photos"
        storage.mkdir(parents=True)
        (storage / photos[0].name).write_bytes(photos[0].read_bytes())
        best = dict.fromkeys(SERVERS, 0.0)
        cpu_per_answer = dict.fromkeys(SERVERS, float("inf"))
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
                    cpu_before, answers_before = cpu_seconds(server.pid), metric(server, HOT)
                    rate = uvloop.run(hits(server.url(path), HIT_SECONDS, HIT_WARMUP, "HIT"))[0]
                    answers = metric(server, HOT) - answers_before
                    best[name] = max(best[name], rate)
                    cpu_per_answer[name] = min(cpu_per_answer[name], (cpu_seconds(server.pid) - cpu_before) / answers)
            lines = sum("aiohttp.access" in line for line in servers["access log on, lane on (default)"].log_lines)
            if not lines:
                raise BenchmarkError("the default server wrote no access line")
    return {name: (best[name], cpu_per_answer[name]) for name in SERVERS}


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process so far (fields 14 and 15 of /proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    """Print the figures as a Markdown table."""
    measured = measure()
    print("| server | hits/s | server CPU per answer |\n|---|---|---|")
    for name, (rate, cpu) in measured.items():
        print(f"| {name} | {rate:,.0f} | {cpu * 1e6:.0f} us |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
