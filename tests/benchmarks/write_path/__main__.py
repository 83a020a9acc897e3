"""Benchmark: the write path, side by side with its references in one run, repetitions interleaved.

- upload: a file (1 GiB) PUT through preview-proxy into moto, against boto3's `upload_file` of the
  same file straight to moto; target >= 0.8x boto3's throughput.
- migrate: `preview-proxy migrate` of a tree of 1,000 small files (1-64 KiB) and four 256 MiB files
  from local storage into moto, against `rclone copy` of the same folder; target >= 1.0x rclone's.

Each figure gets a fresh moto (ThreadedMotoServer in its own process, on loopback) and fresh buckets;
one scenario's repetitions run together, and within a repetition preview-proxy and its reference run
back to back, in an order that alternates. The files are flushed to disk before anything is measured,
and each scenario begins with one run of its reference that is not counted: a scenario's first large
transfer is slower whoever makes it (a run's first 256 MiB upload took 12-39% longer than the next
ones, for boto3 as for preview-proxy; with the scenarios interleaved, the first 1 GiB upload of each
repetition, after a migrate, took 25-60% longer), and preview-proxy goes first in odd repetitions.
Every object written is checked by its S3 ETag against the local file's (see ground.py). Figures are
medians; ratios are preview-proxy / reference, of the medians and of each repetition.

Run:  .venv/bin/python -m tests.benchmarks.write_path [--quick] [--only upload,migrate] [--update-docs]
(--quick: one repetition, 128 MiB upload, 100 small and four 32 MiB files; a few tens of seconds.)
The report is printed and written to tests/benchmarks/results/write_path.md; --update-docs also
replaces the write-path section of docs/benchmarks.md. rclone: `bash tests/benchmarks/peers.sh --install-only`.
"""

import argparse
import os
import re
import statistics
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.benchmarks.harness import REPO, BenchmarkError, machine
from tests.benchmarks.peers import ensure_big_file
from tests.benchmarks.write_path.contenders import (
    TRANSFERS,
    Run,
    migrate,
    rclone_copy,
    upload_through_proxy,
    upload_with_boto3,
)
from tests.benchmarks.write_path.ground import MIB, Files, Moto, Multipart, Sizes, fresh_moto, lay_out, rclone_version

RESULTS = REPO / "tests" / "benchmarks" / "results" / "write_path.md"
BENCHMARKS_DOC = REPO / "docs" / "benchmarks.md"
SECTION_BEGIN, SECTION_END = "<!-- write-path-benchmark:begin -->", "<!-- write-path-benchmark:end -->"
PP = "preview-proxy"
FULL = Sizes(upload=1024 * MIB, small_files=1000, large_files=4, large_size=256 * MIB)
QUICK = Sizes(upload=128 * MIB, small_files=100, large_files=4, large_size=32 * MIB)


@dataclass(frozen=True)
class Scenario:
    """A row: what is moved, the reference's name, the target ratio, and the two runs."""

    name: str
    reference: str
    target: float
    ours: Callable[[Moto, Files, Multipart, Path], Run]
    theirs: Callable[[Moto, Files, Multipart, Path], Run]


SCENARIOS = {
    "upload": Scenario("upload: one file, PUT with a bearer token", "boto3 `upload_file`", 0.8,
                       lambda moto, files, mp, tmp: upload_through_proxy(moto, files, mp),
                       lambda moto, files, mp, tmp: upload_with_boto3(moto, files, mp)),
    "migrate": Scenario("migrate: a tree from local storage", "`rclone copy`", 1.0,
                        lambda moto, files, mp, tmp: migrate(moto, files, mp, str(tmp / "cache")),
                        lambda moto, files, mp, tmp: rclone_copy(moto, files, mp, str(tmp / "rclone.conf"))),
}


def measure(only: tuple[str, ...], repetitions: int, sizes: Sizes,
            multipart: Multipart) -> dict[str, dict[str, list[Run]]]:
    """{scenario: {"ours"|"theirs": one Run per repetition}}."""
    big = ensure_big_file(max(sizes.upload, sizes.large_size))  # what the upload and the large files are cut from
    results: dict[str, dict[str, list[Run]]] = {name: {"ours": [], "theirs": []} for name in only}
    with tempfile.TemporaryDirectory(prefix="pp-bench-write-") as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "rclone.conf").write_text("")  # the remote comes from the environment; no user config is read
        files = lay_out(tmp, big.path, sizes, multipart)
        os.sync()  # the files' write-back would otherwise run during the first figures
        for name in only:
            scenario = SCENARIOS[name]
            with fresh_moto() as moto:
                warm_up = scenario.theirs(moto, files, multipart, tmp)
            print(f"{name}, warm-up with the reference (not counted): {warm_up.seconds:.1f} s", file=sys.stderr,
                  flush=True)
            for repetition in range(repetitions):
                order = (("ours", scenario.ours), ("theirs", scenario.theirs))
                for side, contender in order if repetition % 2 == 0 else order[::-1]:
                    with fresh_moto() as moto:
                        run = contender(moto, files, multipart, tmp)
                    results[name][side].append(run)
                    print(f"repetition {repetition + 1}, {name}, {side}: {run.seconds:.1f} s, {run.mib_s:.0f} MiB/s; "
                          f"CPU s: {_cpu_text(run)}; load average {os.getloadavg()[0]:.1f}", file=sys.stderr,
                          flush=True)
    return results


def _cpu_text(run: Run) -> str:
    return ", ".join(f"{name} {seconds:.1f}" for name, seconds in run.cpu.items() if seconds >= 0.05)


def _describe(runs: list[Run]) -> str:
    """The medians of one side: seconds, MiB/s, and CPU seconds by process."""
    seconds = statistics.median(run.seconds for run in runs)
    names = [name for name in runs[0].cpu if statistics.median(run.cpu[name] for run in runs) >= 0.05]
    cpu = ", ".join(f"{name} {statistics.median(run.cpu[name] for run in runs):.1f}" for name in names)
    return f"{seconds:.1f} s, {statistics.median(run.mib_s for run in runs):,.0f} MiB/s (CPU s: {cpu})"


def report(results: dict[str, dict[str, list[Run]]], sizes: Sizes, multipart: Multipart, quick: bool,
           repetitions: int, load: tuple[float, float]) -> list[str]:
    """The Markdown body: machine and its load, settings, the table, the targets."""
    what = {"upload": f"{sizes.upload // MIB:,} MiB",
            "migrate": f"{sizes.small_files:,} small files (1-64 KiB) + {sizes.large_files} x "
                       f"{sizes.large_size // MIB} MiB"}
    lines = [f"Machine: {machine()}. Endpoint: moto {_moto_version()} (ThreadedMotoServer in its own process, "
             f"loopback), a fresh one for each figure. Reference tools: boto3 {_boto3_version()}, {rclone_version()} "
             f"(Debian). Load average (1 min) when the run began and ended: {load[0]:.1f}, {load[1]:.1f} (other "
             "work on the same cores slows the endpoint most of all: read the spread of the ratios with it).",
             f"Command: `.venv/bin/python -m tests.benchmarks.write_path{' --quick' if quick else ''}`; "
             f"{repetitions} interleaved repetition(s) of each scenario, after one run of its reference that is not "
             "counted (a scenario's first large transfer is slower whoever makes it). Multipart settings on every "
             "side: one PUT up to "
             f"{multipart.threshold // MIB} MiB, else parts of {multipart.part_size // MIB} MiB, "
             f"{multipart.concurrency} at once (preview-proxy's defaults; boto3 `TransferConfig`, rclone "
             f"`--s3-upload-cutoff/--s3-chunk-size/--s3-upload-concurrency`); {TRANSFERS} objects at once for "
             f"migrate (`--jobs`) and rclone (`--transfers`), both their defaults. Figures are medians; CPU "
             "seconds per process over the run; ratios are preview-proxy's throughput / the reference's, of the "
             "medians in bold, then each repetition's.", "",
             f"| scenario | {PP} | reference | {PP} / reference | target |", "|---|---|---|---|---|"]
    verdicts = []
    for name, runs in results.items():
        scenario = SCENARIOS[name]
        each = [ours.mib_s / theirs.mib_s for ours, theirs in zip(runs["ours"], runs["theirs"], strict=True)]
        ratio = (statistics.median(run.mib_s for run in runs["ours"])
                 / statistics.median(run.mib_s for run in runs["theirs"]))
        spread = f" ({', '.join(f'{r:.2f}' for r in each)})" if len(each) > 1 else ""
        lines.append(f"| {scenario.name}, {what[name]} | {_describe(runs['ours'])} | {scenario.reference}: "
                     f"{_describe(runs['theirs'])} | **{ratio:.2f}**{spread} | >= {scenario.target:g}x |")
        verdicts.append(f"- {name} >= {scenario.target:g}x {scenario.reference}: {ratio:.2f}{spread}: "
                        + ("met" if ratio >= scenario.target else "**not met**"))
    if quick:
        lines += ["", "**A --quick run** (one repetition, small sizes, for development): not the figures to publish."]
    lines += ["", "Targets (on the medians):", *verdicts, "",
              "- Every object is checked after each run by its S3 ETag (MD5, or MD5 of the parts' MD5s), computed "
              "from the local file: the same bytes, cut into the same parts, whoever wrote them.",
              "- The upload through preview-proxy is sent by curl (`-T`, no checksum header) to a one-worker "
              "`serve`; the clock runs until its 201. boto3 runs in the benchmark's own process.",
              "- rclone keeps its other defaults: it reads each large file once more for the MD5 it stores as "
              "metadata, and it checks the destination before copying (empty here)."]
    return lines


def _moto_version() -> str:
    import moto

    return str(moto.__version__)


def _boto3_version() -> str:
    import boto3

    return str(boto3.__version__)


def replace_marked_section(document: Path, block: list[str]) -> None:
    """Put `block` between the write-path markers of `document` (they must be there, once each)."""
    text = document.read_text()
    pattern = re.compile(re.escape(SECTION_BEGIN) + r".*?" + re.escape(SECTION_END), re.DOTALL)
    if len(pattern.findall(text)) != 1:
        raise SystemExit(f"{document}: expected one {SECTION_BEGIN} ... {SECTION_END} section")
    document.write_text(pattern.sub(lambda _: "\n".join([SECTION_BEGIN, *block, SECTION_END]), text))


def main(argv: list[str] | None = None) -> int:
    """Measure, print the report, write it to RESULTS and, if asked, into docs/benchmarks.md."""
    parser = argparse.ArgumentParser(description="preview-proxy's uploads and migrate against boto3 and rclone.")
    parser.add_argument("--quick", action="store_true", help="1 repetition, small sizes: a check, not figures")
    parser.add_argument("--only", default="upload,migrate", help="comma-separated: upload, migrate")
    parser.add_argument("--repetitions", type=int, default=None, help="interleaved repetitions (default 3; 1 quick)")
    parser.add_argument("--update-docs", action="store_true", help="also rewrite the section of docs/benchmarks.md")
    args = parser.parse_args(argv)
    only = tuple(name.strip() for name in args.only.split(",") if name.strip())
    if unknown := set(only) - set(SCENARIOS):
        parser.error(f"unknown scenario(s) {', '.join(sorted(unknown))}; choose from {', '.join(SCENARIOS)}")
    repetitions = args.repetitions or (1 if args.quick else 3)
    if not 1 <= repetitions <= 9:
        parser.error("--repetitions must be 1 to 9")
    if "migrate" in only:
        rclone_version()  # fails early, with the way to install it
    sizes, multipart = (QUICK if args.quick else FULL), Multipart()
    load_before = os.getloadavg()[0]
    try:
        results = measure(only, repetitions, sizes, multipart)
    except BenchmarkError as error:
        print(f"write_path: {error}", file=sys.stderr)
        return 1
    body = report(results, sizes, multipart, args.quick, repetitions, (load_before, os.getloadavg()[0]))
    text = "\n".join(["# The write path: preview-proxy against boto3 and rclone", "", *body]) + "\n"
    print(text)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)
    if args.update_docs:
        replace_marked_section(BENCHMARKS_DOC, body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
