"""``python -m benchmarks run [--quick] [--peer] [--out DIR]``: Hangar's performance harness.

Starts what it needs (a fast stdlib upstream, an SDK upstream, Hangar on stdio and on HTTP, a bare ASGI
baseline, with ``--peer`` the older PyPI mcp-hangar) on loopback in a temporary folder, measures warm
``tools/call`` latency at concurrency 1, 8 and 32 with baselines and through-Hangar cells interleaved,
sustained throughput, boot, imports, memory, cold start and scale, then writes ``<out>/<timestamp>.json``,
a PNG chart and the results section of BENCHMARKS.md (only when ``--out`` is the default)."""

from __future__ import annotations

import argparse
import datetime
import os
import signal
import sys
from pathlib import Path

from . import report, run

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="run every scenario and write the results")
    p.add_argument("--quick", action="store_true", help="a smoke run: 100 calls per cell, small fleets, "
                   "1 boot run, 1 s of throughput")
    p.add_argument("--peer", action="store_true", help="also measure the older implementation (PyPI "
                   "mcp-hangar 2.34.4, installed into ~/.cache/mcp-hangar-bench on first use)")
    p.add_argument("--out", type=Path, default=None, help="results folder (default benchmarks/results; "
                   "BENCHMARKS.md is only updated with the default)")
    p.add_argument("--markdown", type=Path, default=None, help="markdown file to update (default: BENCHMARKS.md "
                   "when --out is not given)")
    args = parser.parse_args()
    # SIGTERM unwinds like Ctrl-C, so every process this run started is stopped on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    load_at_start = [round(x, 2) for x in os.getloadavg()]  # the machine is shared: say how busy it was
    results = run.run(args.quick, with_peer=args.peer)
    cells = results.pop("cells")
    results["summary"] = [cell.summary() for cell in cells]
    results["samples_ms"] = {f"{c.scenario}@{c.concurrency}": [round(s, 4) for s in c.samples_ms] for c in cells}
    results["started"] = started
    results["environment"] = report.environment()
    results["environment"]["load_average_at_start"] = load_at_start
    results["ratios"] = report.ratios(results)
    out = args.out or HERE / "results"
    markdown = args.markdown or (HERE.parent / "BENCHMARKS.md" if args.out is None else None)
    path = report.write(results, out, markdown)
    print((out / "summary.md").read_text())
    print(f"results: {path}")


if __name__ == "__main__":
    main()
