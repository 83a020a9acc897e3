"""The lock-free per-request series expose exactly what prometheus_client's own Counter and Histogram
would for the same observations (the reference here), under the same names and labels."""

import random

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from proxy.metrics.event_loop import LoopCollector, LoopCounter, LoopHistogram
from proxy.metrics.registry import LATENCY_BUCKETS

Sample = tuple[str, tuple[tuple[str, str], ...], float]


def samples(registry: CollectorRegistry) -> set[Sample]:
    """Every sample of a registry's exposition but the `_created` timestamps."""
    text = generate_latest(registry).decode()
    return {(sample.name, tuple(sorted(sample.labels.items())), round(sample.value, 9))
            for family in text_string_to_metric_families(text) for sample in family.samples
            if not sample.name.endswith("_created")}


def test_loop_series_expose_what_prometheus_client_would() -> None:
    reference, ours = CollectorRegistry(), CollectorRegistry()
    counter = Counter("x_requests_total", "Requests.", ["route", "status"], registry=reference)
    histogram = Histogram("x_seconds", "Time.", ["route"], buckets=LATENCY_BUCKETS, registry=reference)
    loop_counter = LoopCounter("x_requests_total", "Requests.", ["route", "status"])
    loop_histogram = LoopHistogram("x_seconds", "Time.", ["route"], LATENCY_BUCKETS)
    ours.register(LoopCollector(loop_counter, loop_histogram))
    generator = random.Random(7)
    # Values on the bucket bounds themselves (`le` includes them), between them, and past the last.
    values = [*LATENCY_BUCKETS, 0.0, 75.0, *(generator.uniform(0, 70) for _ in range(300)),
              *(generator.uniform(0, 0.01) for _ in range(300))]

    for index, value in enumerate(values):
        route, status = ("preview", "200") if index % 3 else ("original", "304")
        counter.labels(route, status).inc()
        loop_counter.inc((route, status))
        histogram.labels(route).observe(value)
        loop_histogram.observe((route,), value)

    expected = samples(reference)
    assert len(expected) > 30
    assert samples(ours) == expected
