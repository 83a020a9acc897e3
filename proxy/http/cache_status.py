"""How a cache answered: `X-Cache`, the standard `Cache-Status` (RFC 9211) and `Age` (RFC 9111).

`X-Cache` stays as it was (HIT, MISS, STALE, BYPASS) for the dashboards and scripts that read it;
`Cache-Status` says the same in the standard's terms, one member named after this cache:

| X-Cache | Cache-Status | Age |
|---|---|---|
| HIT, read from an entry | `preview-proxy; hit` | seconds since the entry was stored |
| HIT, served by a fill or render another request started | `preview-proxy; fwd=miss; collapsed` | (none) |
| MISS | `preview-proxy; fwd=miss; stored` (no `stored` when the answer is not kept) | (none) |
| STALE (the provider failed) | `preview-proxy; fwd=stale; detail=stale-if-error` | seconds since stored |
| BYPASS (local disk, read in place) | `preview-proxy; fwd=bypass` | (none) |

`hit` means the request went no further than the cache (RFC 9211 section 2.1); `fwd` says why it went
on (2.2): `miss` rather than `uri-miss`, since a preview's key holds more than its URL (the source's
version, the negotiated format). `collapsed` (2.6) marks a request that joined another's fill. No `ttl`
(2.4): entries have no freshness lifetime, they live until idle, and `Cache-Control` is what clients read.
"""

import math
import time
from dataclasses import dataclass

CACHE_NAME = "preview-proxy"
X_CACHE = "X-Cache"
CACHE_STATUS = "Cache-Status"


@dataclass(frozen=True, slots=True)
class CacheAnswer:
    """What a tier did for one answer: its X-Cache, when the entry served was stored, and whether a
    miss's answer is kept."""

    tier: str  # the tier that answered (the `tier` label of served bytes)
    x_cache: str  # HIT, MISS, STALE or BYPASS
    stored_at: float | None = None  # epoch seconds the entry served was written; None when none was read
    stored: bool = False  # a MISS whose answer the tier keeps

    @property
    def result(self) -> str:
        """The `result` label of served bytes: hit, miss, stale or bypass."""
        return self.x_cache.lower()

    def headers(self) -> dict[str, str]:
        """X-Cache and Cache-Status, which hold for every answer given with this outcome."""
        return {X_CACHE: self.x_cache, CACHE_STATUS: cache_status(self.x_cache, self.stored_at is not None,
                                                                  self.stored)}

    def age(self) -> str | None:
        """The Age header's value now, for an answer read from an entry; None otherwise."""
        return None if self.stored_at is None else age_seconds(self.stored_at)


def cache_status(x_cache: str, from_entry: bool, stored: bool) -> str:
    """The Cache-Status value for an X-Cache status (`from_entry`: a stored entry was read)."""
    if x_cache == "HIT":
        return f"{CACHE_NAME}; hit" if from_entry else f"{CACHE_NAME}; fwd=miss; collapsed"
    if x_cache == "STALE":
        return f"{CACHE_NAME}; fwd=stale; detail=stale-if-error"
    if x_cache == "BYPASS":
        return f"{CACHE_NAME}; fwd=bypass"
    return f"{CACHE_NAME}; fwd=miss; stored" if stored else f"{CACHE_NAME}; fwd=miss"


def age_seconds(stored_at: float, now: float | None = None) -> str:
    """Whole seconds since `stored_at`, never negative (RFC 9111 section 5.1: a non-negative integer)."""
    elapsed = (time.time() if now is None else now) - stored_at
    return str(max(0, math.floor(elapsed)))

