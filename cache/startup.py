"""Clearing what dead processes left in the tiers: once before serving, and after each worker that dies.

With several worker processes on one set of tiers (proxy.runtime.supervisor), no worker may clear
leftovers itself. A worker that starts late (or is restarted) would delete the part files of fills
that other workers are writing right now. So the supervisor does it once, before it starts any
worker; a single process does it before it builds its app. While the server runs, the supervisor
removes the part files of each worker that exits (their names start with the writer's pid).
"""

import contextlib
import logging

from cache.config import TierConfig
from cache.disk_tier import DiskTier
from cache.key_lock import LOCKS_FOLDER

log = logging.getLogger(__name__)


class _LogOnly:
    """A TierObserver for start-up: DiskTier logs errors itself, and no metrics exist yet."""

    def cache_error(self, tier: str, operation: str, error: BaseException) -> None:
        """Logged by the tier already."""

    def cache_evicted(self, tier: str) -> None:
        """Nothing to count before serving."""


def prepare_tiers(configs: tuple[TierConfig, ...]) -> None:
    """Open each tier once, then delete leftover part files and old lock files. Blocks.

    Opening a tier here also does its one-time work in one process: it creates a new database, or
    recovers an unreadable one, before several workers open it at once.
    """
    for config in configs:
        tier = DiskTier(config, _LogOnly())
        try:
            tier.remove_leftovers()
        finally:
            tier.close()
        # Lock files of the layout before the keys file (cache.key_lock), one per key: such a file outlived
        # its holder only when the holder crashed. The keys file itself stays: it holds no lock once its
        # holders' descriptors are closed.
        for stale in (config.path / LOCKS_FOLDER).glob("*.lock"):
            with contextlib.suppress(OSError):
                stale.unlink()


def remove_parts_of(configs: tuple[TierConfig, ...], pid: int) -> int:
    """Delete the part files that process `pid`, now dead, was writing. Blocks. Returns how many.

    Nobody else reads them. Readers in other processes never tail a fill: they wait for the key's
    lock (cache.key_lock), which the kernel released when the writer died.
    """
    removed = 0
    for config in configs:
        for part in (config.path / "partial").glob(f"{pid}-*.part"):
            with contextlib.suppress(OSError):
                part.unlink()
                removed += 1
    if removed:
        log.info("removed %d unfinished part file(s) of worker %d", removed, pid)
    return removed
