"""Settings of the three disk tiers as frozen values; proxy.settings.tiers reads the CACHE_* variables."""

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class TierConfig:
    """One tier: where it lives, how big it may grow, and how long an unread entry survives."""

    name: str
    path: Path
    size_limit: int
    idle_seconds: float
    # How long an entry idle past `idle_seconds` stays on disk as a stale copy, served only when
    # the provider fails (stale-if-error). 0: it goes at idle expiry.
    stale_seconds: float = 0.0


@dataclass(frozen=True)
class CacheConfig:
    """The three tiers, under CACHE_PATH (default DATA_PATH/cache)."""

    previews: TierConfig
    storage: TierConfig
    image_converter: TierConfig
    stale_if_error: bool = True

    def tiers(self) -> tuple[TierConfig, ...]:
        """All tiers, in request order."""
        return (self.previews, self.storage, self.image_converter)
