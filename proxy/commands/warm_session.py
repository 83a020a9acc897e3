"""A whole warm run: the app's components built once, `--jobs` sources at a time, Ctrl-C honoured.

Ctrl-C (SIGINT) or SIGTERM stops taking sources and cancels those in flight; closing the components
then cancels their fills, whose part files are removed. What was committed stays; nothing half
written is ever visible, since every tier commits by rename.
"""

import asyncio
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field

from aiohttp import web

from proxy.app import build_app
from proxy.commands.batch_control import cancelled_by_signals, log_progress_every
from proxy.commands.warm_list import WarmSource
from proxy.commands.warm_previews import PreviewSpec
from proxy.commands.warm_progress import Progress
from proxy.commands.warm_run import SourceResult, Warmer
from proxy.config import Config


@dataclass
class Session:
    """What a run came to: every finished source's result, and whether it was stopped early."""

    results: list[SourceResult] = field(default_factory=list)
    interrupted: bool = False


async def warm_all(config: Config, sources: list[WarmSource], specs: list[PreviewSpec], jobs: int,
                   progress: Progress, log_every: float) -> Session:
    """Warm `sources`, at most `jobs` at a time, reporting each to `progress`."""
    session = Session()
    app = build_app(config)
    runner = web.AppRunner(app)  # starts and stops the components; listens nowhere
    await runner.setup()
    try:
        warmer = Warmer(app, specs, config.previews.timeout)
        queue: Iterator[WarmSource] = iter(sources)  # shared by the workers: one event loop, no lock needed

        async def work() -> None:
            for item in queue:
                result = await warmer.warm(item)
                session.results.append(result)
                progress.advance(result)

        workers = [asyncio.create_task(work()) for _ in range(max(1, min(jobs, len(sources))))]
        ticker = asyncio.create_task(log_progress_every(progress, log_every))
        with cancelled_by_signals(workers, session):
            await asyncio.gather(*workers, return_exceptions=True)
        ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticker
    finally:
        await runner.cleanup()
    return session


