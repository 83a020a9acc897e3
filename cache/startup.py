"""Once per server, before any process serves: open each tier, and clear what dead processes left.

With several worker processes on one set of tiers (proxy.supervisor), no worker may do this itself.
A worker that starts late (or is restarted) would delete the part files of fills that other workers
are writing right now. So the supervisor does it once, before it starts any worker; a single
process does it before it builds its app.
"""

import logging
import shutil

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
    """Open each tier once, then delete leftover part files and lock files. Blocks.

    Opening a tier here also does its one-time work in one process: it creates a new database, or
    recovers an unreadable one, before several workers open it at once.
    """
    for config in configs:
        tier = DiskTier(config, _LogOnly())
        try:
            tier.remove_leftovers()
        finally:
            tier.close()
        # A lock file outlives its holder only when the holder crashed; nobody holds one now.
        shutil.rmtree(config.path / LOCKS_FOLDER, ignore_errors=True)
