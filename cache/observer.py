"""What a tier reports about itself; the proxy's metrics module implements it."""

from typing import Protocol


class TierObserver(Protocol):
    """Receives a tier's events. Calls come from executor threads, so implementations must be thread-safe."""

    def cache_error(self, tier: str, operation: str, error: BaseException) -> None:
        """A cache I/O error that was turned into a miss or a skipped store."""

    def cache_evicted(self, tier: str) -> None:
        """One entry left the tier (size bound, idle expiry or replacement)."""
