"""`preview-proxy migrate --to ENTRY [--bucket SRC[=DST] ...] [--prefix P] [--jobs N] [--dry-run | --verify-only]`.

Copies the main storage (local disk, or a cloud's named buckets) into the provider of a links-file
entry, keeping bucket and key layout; resumable and verified through its journal (docs/migrate.md).
Exit status: 0 all done, 1 something failed (or mismatched, in --verify-only), 2 bad usage or no journal,
130 stopped.
"""

import argparse
import asyncio
import sys
import time

from tqdm.contrib.logging import logging_redirect_tqdm

from proxy.commands.migrate.errors import JournalUnavailable, MigrateUsageError
from proxy.commands.migrate.listing import local_buckets
from proxy.commands.migrate.outcomes import Outcome
from proxy.commands.migrate.progress import Progress
from proxy.commands.migrate.session import Mode, RunOptions, Session, describe, migrate_all
from proxy.commands.migrate.targets import find_entry, is_local, plan_routes
from proxy.commands.warm_progress import human_bytes
from proxy.config import Config
from proxy.storage.local import LocalProvider

EXIT_INTERRUPTED = 130  # as a shell reports a command stopped by SIGINT
# The counts each mode's summary gives, in order.
SUMMARY_OUTCOMES = {
    Mode.COPY: (Outcome.COPIED, Outcome.SKIPPED, Outcome.FAILED),
    Mode.DRY_RUN: (Outcome.WOULD_COPY, Outcome.SKIPPED, Outcome.FAILED),
    Mode.VERIFY: (Outcome.VERIFIED, Outcome.MISMATCH, Outcome.MISSING, Outcome.FAILED),
}


def run_migrate_command(args: argparse.Namespace, config: Config) -> int:
    """Run `migrate`; see the module's docstring for the exit status."""
    try:
        entry = find_entry(config, args.to)
        buckets = local_buckets(LocalProvider(config.storage.root)) if is_local(config) else None
        routes = plan_routes(args.bucket, entry, config, buckets)
    except MigrateUsageError as error:
        print(f"preview-proxy migrate: {error}", file=sys.stderr)
        return 2
    mode = Mode.DRY_RUN if args.dry_run else Mode.VERIFY if args.verify_only else Mode.COPY
    options = RunOptions(routes, args.prefix, mode, args.jobs, args.retries, args.progress_every)
    started = time.monotonic()
    progress = Progress()
    try:
        if progress.is_bar:
            with logging_redirect_tqdm():  # log lines above the bars, not through them
                session = asyncio.run(migrate_all(config, entry, options, progress))
        else:
            session = asyncio.run(migrate_all(config, entry, options, progress))
    except JournalUnavailable as error:
        print(f"preview-proxy migrate: {error}", file=sys.stderr)
        return 2
    finally:
        progress.close()
    _summary(session, mode, progress.done, time.monotonic() - started)
    if session.interrupted:
        return EXIT_INTERRUPTED
    return 1 if session.failed else 0


def _summary(session: Session, mode: Mode, objects: int, seconds: float) -> None:
    flag = {Mode.COPY: "", Mode.DRY_RUN: " --dry-run", Mode.VERIFY: " --verify-only"}[mode]
    counts = ", ".join(f"{session.counts[outcome]} {outcome.value}" for outcome in SUMMARY_OUTCOMES[mode])
    copied = f"; {human_bytes(session.copied_bytes)} copied" if mode is Mode.COPY else ""
    stopped = "; stopped early, a rerun resumes" if session.interrupted else ""
    print(f"migrate{flag}: {objects} object(s) in {seconds:.1f} s: {counts}{copied}{stopped}")
    if session.listing_error is not None:
        print(f"  failed: the listing broke off: {session.listing_error}")
    for result in session.problems:
        print(f"  {describe(result)}")
