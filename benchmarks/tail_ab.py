"""The concurrency-1 tail of the stdio group cell, A/B: source trees alternated, each in a fresh Hangar.

    .venv/bin/python -m benchmarks.tail_ab SRC [SRC ...] [--rounds 4] [--calls 4000] [--tool pool__echo]
        [--prewarm 0]

Each ``SRC`` is a ``src`` folder put first on ``PYTHONPATH`` of ``mcp-hangar serve`` (stdio front, the
harness's config: ``fast`` and the group ``pool`` of four). Every round runs, for each tree in turn, a new
Hangar, 500 warm-up calls and then ``--calls`` sequential calls with distinct arguments from the raw
client, and prints p50, p99, p99.9, the slowest call and the calls over 1 ms. The tail at concurrency 1
is set by what holds up the event loop now and then (the persistence writers' flushes, collections), so
compare trees by the median over rounds of p99 / p50, never by one round."""

from __future__ import annotations

import argparse
import asyncio
import compileall
import os
import statistics
import tempfile
from pathlib import Path
from typing import Any

from . import procs
from .cells import Cell, measure_cell
from .clients import StdioClient
from .run import _write_config


async def _one(src: str, folder: Path, cfg: Path, tool: str, calls: int, base: int, prewarm: int) -> dict[str, Any]:
    env_before = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = str(Path(src).resolve())  # the child inherits it
    client = StdioClient([procs.CLI, "serve", "-c", str(cfg), "--log-level", "WARNING",
                          "--data-dir", str(folder / f"data{base}")], folder / f"hangar{base}.log", tool)
    try:
        await client.start()
        if prewarm:  # a log past its retention, as in the harness's later cells: every flush may prune
            await measure_cell(client.call, Cell("prewarm", 32), prewarm, 0, base + calls + 1000)
        cell = Cell(src, 1)
        await measure_cell(client.call, cell, calls, 500, base)
    finally:
        await client.close()
        if env_before is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = env_before
    s = sorted(cell.samples_ms)
    p50 = statistics.median(s)
    p99 = s[int(len(s) * 0.99)]
    return {"p50": p50, "p99": p99, "p999": s[int(len(s) * 0.999)], "max": s[-1],
            "over_1ms": sum(x > 1.0 for x in s), "ratio": p99 / p50, "errors": cell.errors}


async def _main(srcs: list[str], rounds: int, calls: int, tool: str, prewarm: int) -> None:
    results: dict[str, list[dict[str, Any]]] = {s: [] for s in srcs}
    with tempfile.TemporaryDirectory(prefix="hangar-bench-tail-") as tmp:
        folder = Path(tmp)
        cfg = _write_config(folder)
        base = 0
        for r in range(1, rounds + 1):
            for src in srcs:
                base += 1_000_000
                out = await _one(src, folder, cfg, tool, calls, base, prewarm)
                results[src].append(out)
                print(f"round {r} {src}: p50 {out['p50']:.3f} p99 {out['p99']:.3f} p99.9 {out['p999']:.3f} "
                      f"max {out['max']:.3f} ms, {out['over_1ms']} over 1 ms, p99/p50 {out['ratio']:.2f}, "
                      f"errors {out['errors']}", flush=True)
    print()
    for src, runs in results.items():
        print(f"{src}: p99/p50 per round {[round(x['ratio'], 2) for x in runs]}, median "
              f"{statistics.median(x['ratio'] for x in runs):.2f}; median p50 "
              f"{statistics.median(x['p50'] for x in runs):.3f} ms, median calls over 1 ms "
              f"{statistics.median(x['over_1ms'] for x in runs):.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("srcs", nargs="+", help="src folders to compare (put first on PYTHONPATH)")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--calls", type=int, default=4000)
    parser.add_argument("--tool", default="pool__echo")
    parser.add_argument("--prewarm", type=int, default=0,
                        help="calls at concurrency 32 before the measured ones (110000: past the log's retention)")
    args = parser.parse_args()
    for src in args.srcs:  # bytecode once, as the harness does, even with PYTHONDONTWRITEBYTECODE set
        compileall.compile_dir(src, quiet=1)
    asyncio.run(_main(args.srcs, args.rounds, args.calls, args.tool, args.prewarm))


if __name__ == "__main__":
    main()
