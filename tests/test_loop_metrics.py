"""The loop-thread counters and histograms expose exactly what prometheus_client's would."""

from __future__ import annotations

import re

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from mcp_hangar.loop_metrics import LoopCounter, LoopHistogram
from mcp_hangar.metrics import LATENCY_BUCKETS


def _without_created_values(text: bytes) -> str:
    # _created carries each series' creation time: the same lines, different clocks.
    return re.sub(r"(_created\{[^}]*\}) \S+", r"\1 T", text.decode())


def test_same_exposition_as_prometheus_client() -> None:
    theirs, ours = CollectorRegistry(), CollectorRegistry()
    c1 = Counter("x_calls", "Calls by outcome", ["server", "outcome"], registry=theirs)
    h1 = Histogram("x_duration_seconds", "Duration", ["server"], buckets=LATENCY_BUCKETS, registry=theirs)
    c2 = LoopCounter("x_calls", "Calls by outcome", ["server", "outcome"], ours)
    h2 = LoopHistogram("x_duration_seconds", "Duration", ["server"], ours, LATENCY_BUCKETS)
    # On the bounds, between them, below the first and beyond the last.
    samples = [0.0, 0.0001, 0.0005, 0.0007, 0.001, 0.003, 0.01, 0.5, 1.0, 2.0, 60.0, 61.0, 1e9]
    for i, value in enumerate(samples):
        server = f"s{i % 3}"
        for c in (c1, c2):
            c.labels(server, "success" if i % 2 else "error").inc()
        c1.labels(server, "success").inc(2.5)
        c2.labels(server, "success").inc(2.5)
        h1.labels(server).observe(value)
        h2.labels(server).observe(value)
    expected = _without_created_values(generate_latest(theirs))
    assert _without_created_values(generate_latest(ours)) == expected
    assert "_created" in expected and 'le="+Inf"' in expected and 'le="0.0005"' in expected


def test_an_empty_family_exposes_only_its_header() -> None:
    theirs, ours = CollectorRegistry(), CollectorRegistry()
    Counter("y", "Y", ["a"], registry=theirs)
    Histogram("z_seconds", "Z", ["a"], registry=theirs)
    LoopCounter("y", "Y", ["a"], ours)
    LoopHistogram("z_seconds", "Z", ["a"], ours, Histogram.DEFAULT_BUCKETS[:-1])
    assert generate_latest(ours) == generate_latest(theirs)
