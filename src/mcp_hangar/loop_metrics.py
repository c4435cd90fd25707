"""Counters and histograms updated on every call, for the event loop's thread only.

prometheus_client's own take a lock and run three checks in Python per update; on the call path (two
counters and two histograms per tool call) that was a tenth of Hangar's Python. These keep plain numbers
per label set, updated without a lock (only the event loop's thread updates them, and ``/metrics`` is
rendered there too), and are exported by a collector in the same shape: ``_total`` and ``_created``
for a counter; ``_bucket`` (cumulative, ``le`` as prometheus_client writes it), ``_count``, ``_sum``
and ``_created`` for a histogram.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

_go_float: Callable[[float], str] = floatToGoString  # how prometheus_client writes ``le`` (untyped there)


class CounterChild:
    __slots__ = ("created", "value")

    def __init__(self) -> None:
        self.value = 0.0
        self.created = time.time()

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount


class HistogramChild:
    __slots__ = ("_bounds", "counts", "created", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self._bounds = bounds
        self.counts = [0] * len(bounds)  # per bucket, not cumulative
        self.sum = 0.0
        self.created = time.time()

    def observe(self, amount: float) -> None:
        self.counts[bisect_left(self._bounds, amount)] += 1  # the first bound >= amount, as prometheus_client
        self.sum += amount


class _Family(Collector):
    def __init__(self, name: str, documentation: str, labelnames: Sequence[str], registry: CollectorRegistry) -> None:
        self.name, self.documentation, self.labelnames = name, documentation, list(labelnames)
        registry.register(self)


class LoopCounter(_Family):
    """A labelled counter (``name`` without ``_total``, as prometheus_client's ``Counter`` takes it)."""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str], registry: CollectorRegistry) -> None:
        self._children: dict[tuple[str, ...], CounterChild] = {}
        super().__init__(name, documentation, labelnames, registry)

    def labels(self, *values: str) -> CounterChild:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = CounterChild()
        return child

    def collect(self) -> Iterator[Any]:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for values, child in tuple(self._children.items()):  # a copy: a scrape never trips on a new series
            family.add_metric(list(values), child.value, created=child.created)
        yield family


class LoopHistogram(_Family):
    """A labelled histogram with fixed ``buckets`` (``+Inf`` added)."""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str], registry: CollectorRegistry,
                 buckets: Sequence[float]) -> None:
        self._bounds = (*sorted(float(b) for b in buckets), float("inf"))
        self._le = [_go_float(b) for b in self._bounds]
        self._children: dict[tuple[str, ...], HistogramChild] = {}
        super().__init__(name, documentation, labelnames, registry)

    def labels(self, *values: str) -> HistogramChild:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = HistogramChild(self._bounds)
        return child

    def collect(self) -> Iterator[Any]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for values, child in tuple(self._children.items()):  # a copy: a scrape never trips on a new series
            total, buckets = 0, []
            for le, count in zip(self._le, child.counts, strict=True):
                total += count
                buckets.append((le, float(total)))
            family.add_metric(list(values), buckets, child.sum)
            family.samples.append(Sample(self.name + "_created", dict(zip(self.labelnames, values, strict=True)),
                                         child.created))
        yield family
