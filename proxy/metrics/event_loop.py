"""Per-request counters and histograms kept as plain numbers, for series touched on every request.

They are updated only on the event loop (request accounting, cache lookups) and read there too (the
/metrics handler), so they need no lock. prometheus_client's Counter takes a lock for each inc(), and
its Histogram one for the bucket and one for the sum: at 30k hot answers a second on one core those
were a sixth of each answer's time (py-spy, W1). A collector exposes them under the usual names,
types and labels.
"""

from bisect import bisect_left
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

from prometheus_client import Counter, Histogram
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

Labels = tuple[str, ...]


class LoopCounter:
    """A labelled counter. Call from the event loop only."""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str]) -> None:
        self._name = name.removesuffix("_total")  # the exposition adds it back
        self._documentation = documentation
        self._labelnames = list(labelnames)
        self._values: dict[Labels, float] = {}

    def inc(self, labels: Labels, amount: float = 1.0) -> None:
        """Add `amount` to the series named by `labels` (values in labelnames' order)."""
        self._values[labels] = self._values.get(labels, 0.0) + amount

    def family(self) -> Metric:
        """The current values, for a scrape."""
        family = CounterMetricFamily(self._name, self._documentation, labels=self._labelnames)
        for labels, value in self._values.items():
            family.add_metric(list(labels), value)
        return family


class LoopHistogram:
    """A labelled histogram with fixed buckets. Call from the event loop only."""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str], buckets: Sequence[float]) -> None:
        self._name = name
        self._documentation = documentation
        self._labelnames = list(labelnames)
        self._bounds = tuple(sorted(buckets))
        # Per series: the count of each bucket (not cumulative; the last one is +Inf), then the sum.
        self._series: dict[Labels, list[float]] = {}

    def observe(self, labels: Labels, value: float) -> None:
        """Record one observation in the series named by `labels`."""
        series = self._series.get(labels)
        if series is None:
            series = self._series[labels] = [0.0] * (len(self._bounds) + 2)
        series[bisect_left(self._bounds, value)] += 1  # the first bucket whose bound is >= value (`le`)
        series[-1] += value

    def observe_counts(self, labels: Labels, counts: Sequence[int], total: float) -> None:
        """Record many observations at once: `counts` per bucket (the last above every bound), `total` their sum."""
        series = self._series.get(labels)
        if series is None:
            series = self._series[labels] = [0.0] * (len(self._bounds) + 2)
        for index, count in enumerate(counts):
            series[index] += count
        series[-1] += total

    def family(self) -> Metric:
        """The current values, with cumulative buckets, for a scrape."""
        family = HistogramMetricFamily(self._name, self._documentation, labels=self._labelnames)
        names = [floatToGoString(bound) for bound in self._bounds] + ["+Inf"]
        for labels, series in self._series.items():
            cumulative, buckets = 0.0, []
            for name, count in zip(names, series[:-1], strict=True):
                cumulative += count
                buckets.append((name, cumulative))
            family.add_metric(list(labels), buckets, series[-1])
        return family


class LoopCollector(Collector):
    """Exposes loop counters and histograms through a prometheus_client registry."""

    def __init__(self, *metrics: LoopCounter | LoopHistogram) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        for metric in self._metrics:
            yield metric.family()


class PerRequestCounter(Protocol):
    """What Metrics needs of a per-request counter: LoopCounter, or SharedCounter across workers."""

    def inc(self, labels: Labels, amount: float = 1.0) -> None:
        """Add `amount` to the series named by `labels`."""
        ...


class PerRequestHistogram(Protocol):
    """What Metrics needs of a per-request histogram: LoopHistogram, or SharedHistogram across workers."""

    def observe(self, labels: Labels, value: float) -> None:
        """Record one observation in the series named by `labels`."""
        ...

    def observe_counts(self, labels: Labels, counts: Sequence[int], total: float) -> None:
        """Record many observations at once: `counts` per bucket (the last above every bound), `total` their sum."""
        ...


class SharedCounter:
    """A prometheus_client Counter behind LoopCounter's interface, its label children kept (multiprocess mode)."""

    def __init__(self, counter: Counter) -> None:
        self._counter = counter
        self._children: dict[Labels, Any] = {}

    def inc(self, labels: Labels, amount: float = 1.0) -> None:
        """Add `amount` to the series named by `labels`."""
        child = self._children.get(labels)
        if child is None:
            child = self._children[labels] = self._counter.labels(*labels)
        child.inc(amount)


class SharedHistogram:
    """A prometheus_client Histogram behind LoopHistogram's interface (multiprocess mode)."""

    def __init__(self, histogram: Histogram) -> None:
        self._histogram = histogram
        self._children: dict[Labels, Any] = {}

    def observe(self, labels: Labels, value: float) -> None:
        """Record one observation in the series named by `labels`."""
        child = self._children.get(labels)
        if child is None:
            child = self._children[labels] = self._histogram.labels(*labels)
        child.observe(value)

    def observe_counts(self, labels: Labels, counts: Sequence[int], total: float) -> None:
        """Record many observations at once: `counts` per bucket (the last above every bound), `total` their sum.

        Through the child's bucket and sum values, which observe() increments one at a time: prometheus_client
        has no public call for a batch (tests/test_metrics_figures.py checks the exposition it gives)."""
        child = self._children.get(labels)
        if child is None:
            child = self._children[labels] = self._histogram.labels(*labels)
        buckets = child._buckets
        if len(buckets) != len(counts):
            raise ValueError(f"{len(counts)} bucket counts for a histogram of {len(buckets)} buckets")
        child._sum.inc(total)
        for bucket, count in zip(buckets, counts, strict=True):
            if count:
                bucket.inc(count)
