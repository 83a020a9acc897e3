"""A whole migration: the source listed while `--jobs` workers copy (or check) what it finds, Ctrl-C honoured.

The listing feeds a bounded queue, so memory stays flat however many objects there are. Ctrl-C
(SIGINT) or SIGTERM stops the listing and cancels the objects in flight: a multipart upload is aborted
(proxy.storage.writes.write_or_abort), a local part file removed, and nothing half-written becomes
visible. The journal keeps every object finished before the stop, so a rerun picks up from there.
"""

import asyncio
import contextlib
import enum
import sys
from dataclasses import dataclass, field

from tqdm import tqdm

from proxy.commands.batch_control import cancelled_by_signals, log_progress_every
from proxy.commands.migrate.journal import Journal, journal_path
from proxy.commands.migrate.listing import SourceObject, holds_nothing, list_objects
from proxy.commands.migrate.objects import Migrator
from proxy.commands.migrate.outcomes import BAD, ObjectResult, Outcome
from proxy.commands.migrate.progress import Progress
from proxy.commands.migrate.targets import Route, destination_provider
from proxy.config import Config
from proxy.storage.links.entry import LinkEntry
from proxy.storage.provider import StorageProvider
from proxy.storage.registry import build_provider

QUEUED_PER_JOB = 8  # listed objects waiting per worker: enough to never starve one, few enough to stay small
MAX_KEPT_PROBLEMS = 1000  # failures kept for the summary; the counts go on beyond


class Mode(enum.Enum):
    """What the run does to each object."""

    COPY = "copy"
    DRY_RUN = "dry run"
    VERIFY = "verify"


@dataclass(frozen=True)
class RunOptions:
    """The command line's choices, checked."""

    routes: list[Route]
    prefix: str
    mode: Mode
    jobs: int
    retries: int
    log_every: float


@dataclass
class Session:
    """What a run came to: counts by outcome, bytes copied, the problems, and whether it was cut short."""

    counts: dict[Outcome, int] = field(default_factory=lambda: dict.fromkeys(Outcome, 0))
    copied_bytes: int = 0
    problems: list[ObjectResult] = field(default_factory=list)
    listing_error: str | None = None
    interrupted: bool = False

    def add(self, result: ObjectResult) -> None:
        """Count one object's result (and keep it, if it is a problem)."""
        self.counts[result.outcome] += 1
        self.copied_bytes += result.copied
        if result.outcome in BAD and len(self.problems) < MAX_KEPT_PROBLEMS:
            self.problems.append(result)

    @property
    def failed(self) -> bool:
        """Whether anything failed, mismatched or was missing, or the listing broke off."""
        return self.listing_error is not None or any(self.counts[outcome] for outcome in BAD)


async def migrate_all(config: Config, entry: LinkEntry, options: RunOptions, progress: Progress) -> Session:
    """Run the migration `options` describe into `entry`'s provider."""
    session = Session()
    source, destination = build_provider(config.storage), destination_provider(entry)
    journal = Journal(journal_path(config.data_path, entry.name))
    try:
        await journal.open(read_only=options.mode is Mode.DRY_RUN)
        empty = await _empty_destinations(destination, options) if options.mode is not Mode.VERIFY else frozenset()
        migrator = Migrator(source, destination, journal, config.uploads, options.retries, progress, empty)
        queue: asyncio.Queue[tuple[SourceObject, str] | None] = asyncio.Queue(options.jobs * QUEUED_PER_JOB)
        lister = asyncio.create_task(_list(source, options, queue, progress, session))
        workers = [asyncio.create_task(_work(migrator, options.mode, queue, session)) for _ in range(options.jobs)]
        ticker = asyncio.create_task(log_progress_every(progress, options.log_every))
        with cancelled_by_signals([lister, *workers], session):
            await asyncio.gather(lister, *workers, return_exceptions=True)
        ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticker
    finally:
        await journal.close()
        await source.close()
        await destination.close()
    return session


async def _empty_destinations(destination: StorageProvider, options: RunOptions) -> frozenset[str]:
    """The destination buckets with nothing under the prefix yet (a listing error counts as "not known empty")."""
    empty = set()
    for route in options.routes:
        try:
            if await holds_nothing(destination, route.dest, options.prefix):
                empty.add(route.dest)
        except Exception:  # the HEADs decide instead, as they always did, and report any error per object
            continue
    return frozenset(empty)


async def _list(source: StorageProvider, options: RunOptions, queue: "asyncio.Queue[tuple[SourceObject, str] | None]",
                progress: Progress, session: Session) -> None:
    try:
        for route in options.routes:
            async for batch in list_objects(source, route.source, options.prefix):
                progress.listed(len(batch), sum(item.size for item in batch))
                for item in batch:
                    await queue.put((item, route.dest))
    except Exception as error:  # the workers still get their end marks below, so the run ends and says why
        session.listing_error = getattr(error, "reason", None) or str(error) or type(error).__name__
    if not session.interrupted:  # stopped: the workers are cancelled too, and wait for nothing
        for _ in range(options.jobs):  # one end mark per worker
            await queue.put(None)


async def _work(migrator: Migrator, mode: Mode, queue: "asyncio.Queue[tuple[SourceObject, str] | None]",
                session: Session) -> None:
    while (job := await queue.get()) is not None:
        item, dest = job
        if mode is Mode.VERIFY:
            result = await migrator.verify(item, dest)
        else:
            result = await migrator.migrate(item, dest, dry_run=mode is Mode.DRY_RUN)
        session.add(result)
        if mode is Mode.DRY_RUN:
            tqdm.write(describe(result), file=sys.stdout)


def describe(result: ObjectResult) -> str:
    """One object's line: `would copy a/b.jpg -> c/b.jpg (1.2 KiB): not at the destination`."""
    item = result.item
    where = f"{item.bucket}/{item.key}" + (f" -> {result.dest_bucket}/{item.key}"
                                          if result.dest_bucket != item.bucket else "")
    return f"{result.outcome.value} {where} ({item.size} bytes): {result.why}"


