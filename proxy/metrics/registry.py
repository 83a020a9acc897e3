"""Every Prometheus family, declared once (prefix `preview_proxy_`). Code calls methods, not names.

With several worker processes, prometheus-client runs in its multiprocess mode. Each worker writes
its values to files in one shared folder (PROMETHEUS_MULTIPROC_DIR, set before prometheus_client is
imported: see proxy.runtime.worker). /metrics then sums every worker's files, whichever worker answers the
scrape. Each gauge declares how its per-process values combine (`multiprocess_mode`). Outside that
mode the argument is ignored.
"""

import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, values
from prometheus_client.multiprocess import MultiProcessCollector

from proxy.build_info import BuildInfo, build_info
from proxy.metrics.event_loop import (
    LoopCollector,
    LoopCounter,
    LoopHistogram,
    PerRequestCounter,
    PerRequestHistogram,
    SharedCounter,
    SharedHistogram,
)
from proxy.metrics.process_figures import ProcessGauges

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class Metrics:
    """Every metric family preview-proxy exports, in a registry of its own.

    `multiprocess_dir`: the shared folder of a multi-worker server. /metrics then reports the sum
    over all the workers, not this process alone.
    """

    def __init__(self, multiprocess_dir: Path | None = None) -> None:
        if multiprocess_dir is not None and not getattr(values.ValueClass, "_multiprocess", False):
            # Values already live in this process's memory: the sum would silently miss them.
            raise RuntimeError("PROMETHEUS_MULTIPROC_DIR must be set before prometheus_client is imported")
        self._multiprocess_dir = multiprocess_dir
        self._before_scrape: list[Callable[[], None]] = []
        self.registry = CollectorRegistry()
        r = self.registry
        # Touched on every request. One process: plain numbers on the event loop, no locks
        # (loop_metrics.py). Several: prometheus_client's shared files, so every worker's counts are summed.
        per_request = _shared_per_request(r) if multiprocess_dir is not None else _loop_per_request(r)
        self._requests, self._request_seconds, self._cache_requests, self._hot_answers = per_request
        # Every worker measures the same shared tier before a scrape: the latest measure is the answer.
        self._cache_size = Gauge("preview_proxy_cache_size_bytes", "Bytes held by a tier.", ["tier"],
                                 registry=r, multiprocess_mode="mostrecent")
        self._cache_entries = Gauge("preview_proxy_cache_entries", "Entries held by a tier.", ["tier"],
                                    registry=r, multiprocess_mode="mostrecent")
        self._cache_capacity = Gauge("preview_proxy_cache_capacity_bytes",
                                     "A tier's size bound (CACHE_*_SIZE), for size against capacity.", ["tier"],
                                     registry=r, multiprocess_mode="mostrecent")
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
        # Each worker has its own breaker; the worst state among the living workers is shown.
        self._circuit_state = Gauge("preview_proxy_upstream_circuit_state",
                                    "A provider's circuit breaker: 0 closed, 1 open, 2 half-open (probing).",
                                    ["provider"], registry=r, multiprocess_mode="livemax")
        self._circuit_opens = Counter("preview_proxy_upstream_circuit_opens_total",
                                      "Times a provider's circuit breaker opened.", ["provider"], registry=r)
        self._purged = Counter("preview_proxy_purges_total", "Entries removed by PURGE requests and "
                               "`cache purge`, by tier.", ["tier"], registry=r)
        self._purge_requests = Counter("preview_proxy_purge_requests_total", "PURGE requests by outcome: purged, "
                                       "unauthorized (401), disabled (403), invalid (4xx).", ["outcome"], registry=r)
        self._revalidations = Counter("preview_proxy_revalidations_total", "Background checks of cached "
                                      "originals: not_modified (304), changed (refetched or gone), failed "
                                      "(the copy kept).", ["tier", "provider", "outcome"], registry=r)
        # Writes through a provider (PUT uploads): how they ended, and what the stored ones carried.
        self._uploads = Counter("preview_proxy_uploads_total", "Writes to providers (uploads) by outcome: stored, "
                                "rejected (the body: a checksum, its size, cut off), aborted (a shutdown), failed "
                                "(the provider).", ["provider", "outcome"], registry=r)
        self._upload_bytes = Counter("preview_proxy_upload_bytes_total", "Bytes of the objects uploads stored.",
                                     ["provider"], registry=r)
        self._upload_parts = Counter("preview_proxy_upload_parts_total", "Parts (S3 parts, Azure blocks) of the "
                                     "multipart uploads that completed.", ["provider"], registry=r)
        self._singleflight_waiters = Counter("preview_proxy_singleflight_waiters_total",
                                             "Requests that joined a fill already in flight.", ["tier"],
                                             registry=r)

        self._render_seconds = Histogram("preview_proxy_render_duration_seconds",
                                         "Time to decode, process and encode one image.", ["operation", "format"],
                                         buckets=LATENCY_BUCKETS, registry=r)
        self._render_host_jobs = Counter("preview_proxy_render_host_jobs_total",
                                         "Large renders handed to the render host, by outcome: done there, "
                                         "lost (the host ended under it: 503), or run here (no host took it).",
                                         ["outcome"], registry=r)
        for outcome in ("done", "lost", "ran_here"):  # from 0, so that the first loss is an increase
            self._render_host_jobs.labels(outcome)
        # Work now, over the living workers: a dead worker's last values must not linger.
        self._renders_running = Gauge("preview_proxy_renders_in_progress", "Renders running on worker threads.",
                                      registry=r, multiprocess_mode="livesum")
        self._render_queue = Gauge("preview_proxy_render_queue_depth", "Renders waiting for a worker thread.",
                                   registry=r, multiprocess_mode="livesum")
        self._render_memory = Gauge("preview_proxy_render_memory_bytes",
                                    "Estimated peak bytes of renders: reserved by those running, asked for by those "
                                    "waiting for room under RENDER_MEMORY_LIMIT.", ["state"],
                                    registry=r, multiprocess_mode="livesum")
        # Answered by the readiness check (as /readyz) each time /metrics is scraped, so an alert needs no
        # prober of its own. The latest check speaks for the whole server: the workers share tiers and provider.
        self._ready = Gauge("preview_proxy_ready", "1 when the caches are open and the storage provider answers "
                            "(as /readyz), checked at each scrape; 0 otherwise.", registry=r,
                            multiprocess_mode="mostrecent")
        # Each process's own memory, CPU and descriptors, listed per process (process_figures.py).
        shared = multiprocess_dir is not None
        self.process = ProcessGauges(r, "worker" if shared else "single", shared)
        self._build_info = Gauge("preview_proxy_build_info", "1, labelled with the version and the pillow-simd "
                                 "build (its version and SIMD level) the server runs.", list(BuildInfo._fields),
                                 registry=r, multiprocess_mode="livemax")
        self._build_info.labels(*build_info()).set(1)
        self._served_bytes = Counter("preview_proxy_served_bytes_total", "Body bytes of answers a tier gave, by "
                                     "tier and result (hit, miss, stale, bypass), hot previews included.",
                                     ["tier", "result"], registry=r)
        # Every worker reads the links file at start and on SIGHUP: the latest attempt, and whether any
        # living worker's last one failed.
        self._links_reload_time = Gauge("preview_proxy_links_reload_timestamp_seconds",
                                        "When the links file was last read (at start or on SIGHUP), epoch seconds.",
                                        registry=r, multiprocess_mode="livemax")
        self._links_reload_ok = Gauge("preview_proxy_links_reload_success",
                                      "1 if the last read of the links file succeeded (in every worker), 0 if it "
                                      "was refused and the previous file stayed in force.",
                                      registry=r, multiprocess_mode="livemin")

    def request_done(self, route: str, status: int, seconds: float) -> None:
        """One answered request (on the event loop)."""
        self._requests.inc((route, str(status)))
        self._request_seconds.observe((route,), seconds)

    def hot_answers(self, route: str, tier: str, by: str, answers: int, body_bytes: int, buckets: list[int],
                    seconds: float) -> None:
        """Hot answers given `by` the lane since its last flush (proxy.metrics.answer_tally): as many 200s
        of `route`, hits of `tier` and hot answers, their body bytes, and their durations per
        LATENCY_BUCKETS bucket (the last above every bound) with their sum."""
        self._requests.inc((route, "200"), answers)
        self._request_seconds.observe_counts((route,), buckets, seconds)
        self._cache_requests.inc((tier, "hit"), answers)
        self._hot_answers.inc((by,), answers)
        if body_bytes:
            self._served_bytes.labels(tier, "hit").inc(body_bytes)

    def before_scrape(self, flush: Callable[[], None]) -> None:
        """Call `flush` before each exposition of this process (a tally adds what it holds)."""
        self._before_scrape.append(flush)

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

    def tier_stats(self, tier: str, size_bytes: int, entries: int, capacity_bytes: int) -> None:
        """A tier's current size and its bound, refreshed before each scrape."""
        self._cache_size.labels(tier).set(size_bytes)
        self._cache_entries.labels(tier).set(entries)
        self._cache_capacity.labels(tier).set(capacity_bytes)

    def readiness(self, ready: bool) -> None:
        """The readiness check's answer, refreshed before each scrape."""
        self._ready.set(1 if ready else 0)

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

    def count_upstream_bytes_moved(self, provider: str, count: int) -> None:
        """`count` body bytes a provider moved without passing them through Python (any thread)."""
        self._upstream_bytes.labels(provider).inc(count)

    def bytes_served(self, tier: str, result: str, count: int) -> None:
        """An answer's body of `count` bytes given by `tier` with `result` (hit, miss, stale, bypass)."""
        self._served_bytes.labels(tier, result).inc(count)

    def links_read(self, succeeded: bool) -> None:
        """The links file was read (at start, or a reload): now, and whether it was taken."""
        self._links_reload_time.set(time.time())
        self._links_reload_ok.set(1 if succeeded else 0)

    def purged(self, tier: str, entries: int) -> None:
        """A purge removed `entries` entries of `tier` (0 too: the series exists from the first purge)."""
        self._purged.labels(tier).inc(entries)

    def revalidated(self, tier: str, provider: str, outcome: str) -> None:
        """A cached original of `tier` from `provider` was checked: not_modified, changed or failed."""
        self._revalidations.labels(tier, provider, outcome).inc()

    def upload_done(self, provider: str, outcome: str, size: int = 0, parts: int = 0) -> None:
        """A write to `provider` ended with `outcome`; a stored one's bytes and parts are counted too."""
        self._uploads.labels(provider, outcome).inc()
        if outcome == "stored":
            self._upload_bytes.labels(provider).inc(size)
            self._upload_parts.labels(provider).inc(parts)

    def purge_request(self, outcome: str) -> None:
        """A PURGE request answered with `outcome`."""
        self._purge_requests.labels(outcome).inc()

    def singleflight_joined(self, tier: str) -> None:
        """A request joined a fill instead of starting one."""
        self._singleflight_waiters.labels(tier).inc()

    def render_done(self, operation: str, output_format: str, seconds: float) -> None:
        """A render that finished (successfully or not) after `seconds` on a worker."""
        self._render_seconds.labels(operation, output_format).observe(seconds)

    def render_host_job(self, outcome: str) -> None:
        """A large render handed to the render host: `done`, `lost` or `ran_here` (proxy.render.file_jobs)."""
        self._render_host_jobs.labels(outcome).inc()

    def render_queue(self, waiting: int, running: int) -> None:
        """The render pool's queue depth and busy workers (RenderObserver)."""
        self._render_queue.set(waiting)
        self._renders_running.set(running)

    def render_memory(self, reserved: int, waiting: int) -> None:
        """The render memory budget's use (RenderObserver)."""
        self._render_memory.labels("reserved").set(reserved)
        self._render_memory.labels("waiting").set(waiting)

    @property
    def shared(self) -> bool:
        """True when the values live in the workers' shared files (reading them is file I/O)."""
        return self._multiprocess_dir is not None

    def exposition(self) -> bytes:
        """The text format for /metrics: this process's registry, or the sum over every worker."""
        for flush in self._before_scrape:
            flush()
        self.process.refresh()
        if self._multiprocess_dir is None:
            return generate_latest(self.registry)
        # A fresh registry per scrape, as prometheus-client's multiprocess docs do: the collector reads
        # the folder's files when collected.
        summed = CollectorRegistry()
        MultiProcessCollector(summed, path=str(self._multiprocess_dir))
        return generate_latest(summed)


PerRequest = tuple[PerRequestCounter, PerRequestHistogram, PerRequestCounter, PerRequestCounter]
_REQUESTS = ("preview_proxy_requests_total", "HTTP requests answered.", ["route", "status"])
_REQUEST_SECONDS = ("preview_proxy_request_duration_seconds", "Time from request to response end.", ["route"])
_CACHE_REQUESTS = ("preview_proxy_cache_requests_total", "Cache lookups by result.", ["tier", "result"])
_HOT_ANSWERS = ("preview_proxy_hot_answers_total",
                "Preview hits answered from the hot-previews map, without parsing the URL again, by the handler "
                "or by the hot lane (before aiohttp).", ["by"])


def _loop_per_request(registry: CollectorRegistry) -> PerRequest:
    """The per-request families as lock-free loop metrics (one process)."""
    requests, cache_requests, hot_answers = (LoopCounter(*spec) for spec in (_REQUESTS, _CACHE_REQUESTS, _HOT_ANSWERS))
    request_seconds = LoopHistogram(*_REQUEST_SECONDS, LATENCY_BUCKETS)
    registry.register(LoopCollector(requests, request_seconds, cache_requests, hot_answers))
    return requests, request_seconds, cache_requests, hot_answers


def _shared_per_request(registry: CollectorRegistry) -> PerRequest:
    """The per-request families in prometheus_client's multiprocess files (several workers)."""
    requests, cache_requests, hot_answers = (
        SharedCounter(Counter(*spec, registry=registry)) for spec in (_REQUESTS, _CACHE_REQUESTS, _HOT_ANSWERS))
    request_seconds = SharedHistogram(Histogram(*_REQUEST_SECONDS, buckets=LATENCY_BUCKETS, registry=registry))
    return requests, request_seconds, cache_requests, hot_answers
