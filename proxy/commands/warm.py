"""`preview-proxy warm FILE [--previews OPTIONS ...] [--jobs N] [--dry-run]`: fill the caches ahead of traffic.

FILE lists sources in Supervisely's links format (proxy.commands.warm_list). Each original is
fetched into the storage tier and each `--previews` rendered into the previews tier, through the
server's own components (proxy.commands.warm_run), so a later request for them is a HIT. Safe while
a server runs on the same DATA_PATH: both take the same per-key locks across processes.
"""

import argparse
import asyncio
import time

from tqdm.contrib.logging import logging_redirect_tqdm

from previews.errors import PublicError
from proxy.commands.warm_list import BadLine, WarmSource, parse_sources, read_lines
from proxy.commands.warm_previews import PreviewSpec, parse_preview_spec
from proxy.commands.warm_progress import Progress, human_bytes
from proxy.commands.warm_run import Status
from proxy.commands.warm_session import Session, warm_all
from proxy.config import Config

EXIT_INTERRUPTED = 130  # as a shell reports a command stopped by SIGINT


def run_warm_command(args: argparse.Namespace, config: Config) -> int:
    """Run `warm`; the exit status: 0 all warmed or cached, 1 something failed, 2 bad usage, 130 stopped."""
    try:
        lines = read_lines(args.file)
        specs = [parse_preview_spec(text, config.previews) for text in args.previews]
    except OSError as error:
        print(f"preview-proxy warm: can't read {args.file}: {error.strerror or error}")
        return 2
    except PublicError as error:
        print(f"preview-proxy warm: bad --previews options: {error.reason}")
        return 2
    parsed = parse_sources(lines)
    sources = [item for item in parsed if isinstance(item, WarmSource)]
    bad = [item for item in parsed if isinstance(item, BadLine)]
    if args.dry_run:
        return _dry_run(sources, bad, specs)
    started = time.monotonic()
    progress = Progress(len(sources))
    try:
        if progress.is_bar:
            with logging_redirect_tqdm():  # log lines above the bar, not through it
                session = asyncio.run(warm_all(config, sources, specs, args.jobs, progress, args.progress_every))
        else:
            session = asyncio.run(warm_all(config, sources, specs, args.jobs, progress, args.progress_every))
    finally:
        progress.close()
    _summary(session, len(sources), bad, time.monotonic() - started)
    if session.interrupted:
        return EXIT_INTERRUPTED
    return 1 if bad or any(result.status is Status.FAILED for result in session.results) else 0


def _dry_run(sources: list[WarmSource], bad: list[BadLine], specs: list[PreviewSpec]) -> int:
    for item in sources:
        print(f"would warm line {item.line}: {item.source}" + (f" + {len(specs)} preview(s)" if specs else ""))
    for line in bad:
        print(f"line {line.line}: bad source: {line.reason}")
    print(f"warm --dry-run: {len(sources)} source(s), {len(bad)} bad line(s)")
    return 1 if bad else 0


def _summary(session: Session, total: int, bad: list[BadLine], seconds: float) -> None:
    counts = {status: sum(1 for r in session.results if r.status is status) for status in Status}
    fetched = sum(result.bytes for result in session.results)
    stopped = f", stopped with {total - len(session.results)} not done" if session.interrupted else ""
    print(f"warm: {total + len(bad)} source(s) in {seconds:.1f} s: {counts[Status.WARMED]} warmed, "
          f"{counts[Status.CACHED]} already cached, {counts[Status.FAILED] + len(bad)} failed{stopped}; "
          f"{human_bytes(fetched)} fetched and rendered")
    failures = [(line.line, f"bad source: {line.reason}") for line in bad]
    failures += [(r.item.line, f"{r.item.source}: {reason}") for r in session.results for reason in r.reasons]
    for number, reason in sorted(failures):
        print(f"  failed: line {number}: {reason}")
