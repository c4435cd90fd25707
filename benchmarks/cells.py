"""Measurement cells: warm-up, N calls over C workers with distinct arguments, percentiles, throughput."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Cell:
    scenario: str
    concurrency: int
    samples_ms: list[float] = field(default_factory=list)
    errors: int = 0
    wall_s: float = 0.0

    def summary(self) -> dict[str, Any]:
        s = sorted(self.samples_ms)
        return {"scenario": self.scenario, "concurrency": self.concurrency, "calls": len(s), "errors": self.errors,
                "p50_ms": round(_pct(s, 50), 4), "p90_ms": round(_pct(s, 90), 4), "p99_ms": round(_pct(s, 99), 4),
                "mean_ms": round(statistics.fmean(s), 4) if s else None,
                "throughput_per_s": round(len(s) / self.wall_s, 1) if self.wall_s else None}


def _pct(sorted_samples: list[float], p: float) -> float:
    if not sorted_samples:
        return float("nan")
    k = (len(sorted_samples) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(sorted_samples) - 1)
    return sorted_samples[lo] + (sorted_samples[hi] - sorted_samples[lo]) * (k - lo)


async def measure_cell(call: Callable[[int], Awaitable[bool]], cell: Cell, n: int, warmup: int, base: int) -> None:
    """``warmup`` calls, then ``n`` calls spread over ``cell.concurrency`` workers; arguments all distinct."""
    numbers_w = iter(range(base, base + warmup))

    async def warm() -> None:
        for i in numbers_w:
            await call(i)

    await asyncio.gather(*(warm() for _ in range(cell.concurrency)))
    numbers = iter(range(base + warmup, base + warmup + n))
    perf = time.perf_counter

    async def worker() -> None:
        for i in numbers:  # one shared iterator: each call number is taken once
            began = perf()
            try:
                ok = await call(i)
            except Exception:
                ok = False
            cell.samples_ms.append((perf() - began) * 1000)
            if not ok:
                cell.errors += 1

    began = perf()
    await asyncio.gather(*(worker() for _ in range(cell.concurrency)))
    cell.wall_s += perf() - began


async def sustained(call: Callable[[int], Awaitable[bool]], seconds: float, concurrency: int,
                    base: int) -> dict[str, Any]:
    """Calls as fast as ``concurrency`` workers go for ``seconds``: throughput and errors."""
    stop = time.perf_counter() + seconds
    counts = {"calls": 0, "errors": 0}
    numbers = iter(range(base, base + 10**9))

    async def worker() -> None:
        while time.perf_counter() < stop:
            i = next(numbers)
            try:
                ok = await call(i)
            except Exception:
                ok = False
            counts["calls"] += 1
            counts["errors"] += not ok

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = time.perf_counter() - began
    return {**counts, "seconds": round(wall, 3), "concurrency": concurrency,
            "throughput_per_s": round(counts["calls"] / wall, 1)}
