"""CI smoke benchmark: two ratios cheap enough for every test run (about 20 s), each set against a
reference measured in the same run, so they hold on any machine and under moderate noise.

- hits: requests/s of one cached preview (32 connections, the harness's hammer) over stock aiohttp
  `web.FileResponse` serving the same bytes from its own process;
- cold renders: previews/s of every photo once at 300 px, one client, from an empty cache, over
  plain Pillow rendering the same photos in this process (previews.py's reference).

Each ratio is the best of ROUNDS interleaved rounds (reference, then server): a regression slows
every round, a noisy neighbour only some. tests/test_benchmark_smoke.py compares them with the
ratios recorded in smoke_baseline.json.

Run:     .venv/bin/python -m tests.benchmarks.smoke            print the ratios and the verdict
Record:  .venv/bin/python -m tests.benchmarks.smoke --record   3 runs, the median into the baseline
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import uvloop

from tests.benchmarks.harness import FILE_SERVER, REPO, BenchmarkError, helper_process, machine, proxy_server
from tests.benchmarks.previews import (
    BUCKET,
    CORPUS,
    cold_renders,
    fetch,
    hits,
    measure_reference,
    preview_path,
)

BASELINE = REPO / "tests" / "benchmarks" / "smoke_baseline.json"
COLLAPSE_FRACTION = 0.3  # see tests/test_benchmark_smoke.py for why
ROUNDS = 2
HIT_SECONDS, HIT_WARMUP = 2.0, 0.5
RECORD_RUNS = 3


def measure() -> dict[str, float]:
    """One smoke run: {ratio name: preview-proxy / reference}, each the best of ROUNDS rounds."""
    photos = sorted(CORPUS.glob("*.jpg"))
    if not photos:
        raise BenchmarkError(f"no photos in {CORPUS}: run `bash deploy/dev.sh test` once (it fetches them)")
    with tempfile.TemporaryDirectory(prefix="pp-bench-smoke-") as tmp_name:
        tmp = Path(tmp_name)
        storage = tmp / "data" / "storage" / BUCKET / "photos"
        storage.mkdir(parents=True)
        local = []
        for photo in photos:
            (storage / photo.name).write_bytes(photo.read_bytes())
            local.append(storage / photo.name)
        hit_ratios, cold_ratios = [], []
        with proxy_server({"DATA_PATH": str(tmp / "data"), "CACHE_PATH": str(tmp / "cache")}) as server:
            hit_url = server.url(preview_path(photos[0].name, 0))
            body = uvloop.run(fetch(hit_url))  # renders it, and warms the server up
            (tmp / "files").mkdir()
            (tmp / "files" / "preview.jpg").write_bytes(body)
            with helper_process(FILE_SERVER, str(tmp / "files")) as (_, ref_url):
                for round_number in range(1, ROUNDS + 1):
                    reference = uvloop.run(hits(f"{ref_url}/preview.jpg", HIT_SECONDS, HIT_WARMUP, None))[0]
                    ours = uvloop.run(hits(hit_url, HIT_SECONDS, HIT_WARMUP, "HIT"))[0]
                    hit_ratios.append(ours / reference)
                    # A cachebuster per round: each round renders every photo again.
                    reference = measure_reference(local, 1)[0]
                    paths = [preview_path(photo.name, round_number) for photo in photos]
                    ours = uvloop.run(cold_renders(server.base_url, paths, 1))[0]
                    cold_ratios.append(ours / reference)
    return {"hits_vs_file_response": max(hit_ratios), "cold_renders_vs_pillow": max(cold_ratios)}


def collapses(measured: dict[str, float], baseline: dict[str, float]) -> list[str]:
    """The ratios that fell below COLLAPSE_FRACTION of their recorded value, described."""
    return [f"{name}: {measured[name]:.2f}, below {COLLAPSE_FRACTION:.0%} of the recorded {recorded:.2f}"
            for name, recorded in baseline.items() if measured[name] < COLLAPSE_FRACTION * recorded]


def load_baseline() -> dict[str, float]:
    """The recorded ratios."""
    return {name: float(value) for name, value in json.loads(BASELINE.read_text())["ratios"].items()}


def record() -> dict[str, object]:
    """Run RECORD_RUNS times and write each ratio's median to BASELINE, with the date, commit and machine."""
    runs = [measure() for _ in range(RECORD_RUNS)]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                            check=True).stdout.strip()
    baseline: dict[str, object] = {
        "recorded": f"{datetime.now(UTC):%Y-%m-%d}",
        "commit": commit,
        "machine": machine(),
        "how": f"median of {RECORD_RUNS} runs of `python -m tests.benchmarks.smoke --record`",
        "ratios": {name: round(statistics.median(run[name] for run in runs), 3) for name in runs[0]},
        "runs": [{name: round(value, 3) for name, value in run.items()} for run in runs],
    }
    BASELINE.write_text(json.dumps(baseline, indent=2) + "\n")
    return baseline


def main(argv: list[str] | None = None) -> int:
    """Print the ratios and whether any collapsed (exit 1), or with --record, rewrite the baseline."""
    parser = argparse.ArgumentParser(description="The CI smoke benchmark (hits and cold renders).")
    parser.add_argument("--record", action="store_true", help=f"run {RECORD_RUNS} times, record the medians")
    if parser.parse_args(argv).record:
        print(json.dumps(record(), indent=2))
        return 0
    measured = measure()
    baseline = load_baseline()
    for name, value in measured.items():
        print(f"{name}: {value:.2f} (recorded {baseline[name]:.2f}, floor {COLLAPSE_FRACTION * baseline[name]:.2f})")
    failed = collapses(measured, baseline)
    print("collapsed: " + "; ".join(failed) if failed else "no collapse")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
