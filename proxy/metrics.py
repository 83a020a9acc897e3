"""Every Prometheus family, declared once (prefix `preview_proxy_`). Code calls methods, not names."""

import time
from collections.abc import AsyncIterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from proxy.loop_metrics import LoopCollector, LoopCounter, LoopHistogram

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class Metrics:
    """The families in shared/DESIGN.md that apply so far, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        # Touched on every request, always on the event loop: plain numbers, no locks (loop_metrics.py).
        self._requests = LoopCounter("preview_proxy_requests_total", "HTTP requests answered.", ["route", "status"])
        self._request_seconds = LoopHistogram("preview_proxy_request_duration_seconds",
                                              "Time from request to response end.", ["route"], LATENCY_BUCKETS)
        self._cache_requests = LoopCounter("preview_proxy_cache_requests_total", "Cache lookups by result.",
                                           ["tier", "result"])
        self._hot_answers = LoopCounter("preview_proxy_hot_answers_total",
                                        "Preview hits answered from the hot-previews map, without parsing the URL "
                                        "again, by the handler or by the hot lane (before aiohttp).", ["by"])
        r.register(LoopCollector(self._requests, self._request_seconds, self._cache_requests, self._hot_answers))
        self._cache_size = Gauge("preview_proxy_cache_size_bytes", "Bytes held by a tier.", ["tier"],
                                 registry=r)
        self._cache_entries = Gauge("preview_proxy_cache_entries", "Entries held by a tier.", ["tier"],
                                    registry=r)
        self._cache_evictions = Counter("preview_proxy_cache_evictions_total",
                                        "Entries removed by the size bound, idle expiry or replacement.",
                                        ["tier"], registry=r)
        self._cache_errors = Counter("preview_proxy_cache_errors_total",
                                     "Cache I/O errors, each served as a miss.", ["tier"], registry=r)
        self._upstream_requests = Counter("preview_proxy_upstream_requests_total",
                                          "Requests to storage providers by outcome.",
                                          ["provider", "outcome"], registry=r)
        self._upstream_seconds = Histogram("preview_proxy_upstream_duration_seconds",
                                           "Time to a provider's response headers.", ["provider"],
                                           buckets=LATENCY_BUCKETS, registry=r)
        self._upstream_bytes = Counter("preview_proxy_upstream_bytes_total",
                                       "Body bytes received from providers.", ["provider"], registry=r)
        self._circuit_state = Gauge("preview_proxy_upstream_circuit_state",
                                    "A provider's circuit breaker: 0 closed, 1 open, 2 half-open (probing).",
                                    ["provider"], registry=r)
        self._circuit_opens = Counter("preview_proxy_upstream_circuit_opens_total",
                                      "Times a provider's circuit breaker opened.", ["provider"], registry=r)
        self._singleflight_waiters = Counter("preview_proxy_singleflight_waiters_total",
                                             "Requests that joined a fill already in flight.", ["tier"],
                                             registry=r)

        self._render_seconds = Histogram("preview_proxy_render_duration_seconds",
                                         "Time to decode, process and encode one image.", ["operation", "format"],
                                         buckets=LATENCY_BUCKETS, registry=r)
        self._renders_running = Gauge("preview_proxy_renders_in_progress", "Renders running on worker threads.",
                                      registry=r)
        self._render_queue = Gauge("preview_proxy_render_queue_depth", "Renders waiting for a worker thread.",
                                   registry=r)

    def request_done(self, route: str, status: int, seconds: float) -> None:
        """One answered request (on the event loop)."""
        self._requests.inc((route, str(status)))
        self._request_seconds.observe((route,), seconds)

    def cache_result(self, tier: str, result: str) -> None:
        """A lookup: hit, miss or stale (on the event loop)."""
        self._cache_requests.inc((tier, result))

    def hot_answer(self, by: str) -> None:
        """A preview hit answered from the hot-previews map by "handler" or "lane" (also a previews-tier hit)."""
        self._hot_answers.inc((by,))

    def cache_error(self, tier: str, operation: str, error: BaseException) -> None:
        """A cache I/O error served as a miss (TierObserver)."""
        self._cache_errors.labels(tier).inc()

    def cache_evicted(self, tier: str) -> None:
        """An entry left a tier (TierObserver)."""
        self._cache_evictions.labels(tier).inc()

    def tier_stats(self, tier: str, size_bytes: int, entries: int) -> None:
        """A tier's current size, refreshed before each scrape."""
        self._cache_size.labels(tier).set(size_bytes)
        self._cache_entries.labels(tier).set(entries)

    def upstream_call(self, provider: str, outcome: str, started: float) -> None:
        """A provider call that ended (headers received, or failed) with `outcome`."""
        self._upstream_requests.labels(provider, outcome).inc()
        self._upstream_seconds.labels(provider).observe(time.monotonic() - started)

    def circuit_changed(self, provider: str, state: int, opened: bool) -> None:
        """A provider's breaker changed state (BreakerObserver); short circuits count as an outcome."""
        self._circuit_state.labels(provider).set(state)
        if opened:
            self._circuit_opens.labels(provider).inc()

    async def count_upstream_bytes(self, provider: str, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """Pass a body through, counting its bytes."""
        counter = self._upstream_bytes.labels(provider)
        async for chunk in chunks:
            counter.inc(len(chunk))
            yield chunk

    def singleflight_joined(self, tier: str) -> None:
        """A request joined a fill instead of starting one."""
        self._singleflight_waiters.labels(tier).inc()

    def render_done(self, operation: str, output_format: str, seconds: float) -> None:
        """A render that finished (successfully or not) after `seconds` on a worker."""
        self._render_seconds.labels(operation, output_format).observe(seconds)

    def render_queue(self, waiting: int, running: int) -> None:
        """The render pool's queue depth and busy workers (RenderObserver)."""
        self._render_queue.set(waiting)
        self._renders_running.set(running)

    def exposition(self) -> bytes:
        """The text format for /metrics."""
        return generate_latest(self.registry)
