"""How long the event loop is held up while the event log and the history write a batch.

    .venv/bin/python -m benchmarks.flush_pause [--other-src ../base/src] [--rounds 3] [--calls 1500]

Publishes the events of ``--calls`` tool calls (what 0.25 s of a busy stdio front produces), then flushes
both writers while a coroutine does small steps of Python work on the loop and records the gaps between
its steps: every gap beyond a step's own few microseconds is time the loop could not run, because a
writer thread held the GIL or the loop itself freed or built a batch. Reports the median over flushes of
the longest pause, of the number of pauses over 0.5 ms and their sum, and the publisher's CPU per call. With
``--other-src`` the same runs for that ``src`` folder in a child process, alternated with this
checkout's. Pauses are what a call at concurrency 1 waits on, so they drive p99 / p50."""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

FLUSHES = 10  # measured per run, after two warm-up flushes
ROOT = Path(__file__).resolve().parent.parent


async def _steps(gaps: list[float], stop: asyncio.Event) -> None:
    """Small steps of Python work on the loop until ``stop``, recording the time between steps."""
    perf = time.perf_counter
    last = perf()
    while not stop.is_set():
        total = 0
        for k in range(200):  # a few microseconds of Python
            total += k
        now = perf()
        gaps.append(now - last)
        last = now
        await asyncio.sleep(0)


async def _measure(calls: int) -> dict[str, Any]:
    from mcp_hangar.cli import YOUNG_GC_THRESHOLD
    from mcp_hangar.event_log_sqlite import SqliteEventLog
    from mcp_hangar.events import EventBus, ToolInvocationCompleted, ToolInvocationRequested
    from mcp_hangar.store import HistoryWriter, Store

    gc.set_threshold(YOUNG_GC_THRESHOLD, *gc.get_threshold()[1:])  # as ``mcp-hangar serve`` sets it
    with tempfile.TemporaryDirectory(prefix="hangar-pause-") as tmp:
        bus = EventBus()
        log = SqliteEventLog(Path(tmp) / "events.db", bus)
        store = Store(Path(tmp) / "hangar.db")
        await log.open()
        await store.open()
        history = HistoryWriter(store, bus)
        longest, summed, counted, publish = [], [], [], []
        try:
            for flush in range(FLUSHES + 2):
                began = time.thread_time()
                for i in range(calls):
                    bus.publish(ToolInvocationRequested(mcp_server_id="fast", tool_name="echo", correlation_id=f"c{i}"))
                    bus.publish(ToolInvocationCompleted(mcp_server_id="fast", tool_name="echo", correlation_id=f"c{i}",
                                                        duration_ms=0.1, result_size_bytes=40))
                cpu = (time.thread_time() - began) / calls * 1e6
                gaps: list[float] = []
                stop = asyncio.Event()
                stepper = asyncio.create_task(_steps(gaps, stop))
                await asyncio.gather(log.flush(), history.flush())
                stop.set()
                await stepper
                if flush >= 2:
                    longest.append(max(gaps) * 1e3)
                    summed.append(sum(g for g in gaps if g > 0.0005) * 1e3)
                    counted.append(sum(1 for g in gaps if g > 0.0005))
                    publish.append(cpu)
        finally:
            await history.close()
            await log.close()
            await store.close()
    return {"longest_pause_ms": statistics.median(longest), "worst_pause_ms": max(longest),
            "pauses_over_half_ms_ms": statistics.median(summed), "pauses_over_half_ms": statistics.median(counted),
            "publish_us_per_call": statistics.median(publish)}


def _run_other(src: str, calls: int) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": src}
    out = subprocess.run([sys.executable, "-m", "benchmarks.flush_pause", "--child", "--calls", str(calls)],
                         env=env, capture_output=True, text=True, check=True, cwd=ROOT)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--other-src", default=None)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=1500)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(asyncio.run(_measure(args.calls))))
        return
    this_src = str(ROOT / "src")
    for r in range(args.rounds):
        for name, src in [("this", this_src)] + ([("other", args.other_src)] if args.other_src else []):
            res = _run_other(src, args.calls)
            print(f"round {r + 1} {name:5s}  longest pause {res['longest_pause_ms']:5.2f} ms (worst "
                  f"{res['worst_pause_ms']:5.2f})  pauses > 0.5 ms: {res['pauses_over_half_ms']:4.1f}, "
                  f"{res['pauses_over_half_ms_ms']:6.2f} ms per flush  "
                  f"publisher {res['publish_us_per_call']:5.2f} us per call")


if __name__ == "__main__":
    main()
