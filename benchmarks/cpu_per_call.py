"""CPU per call of the modern HTTP front, A/B: this checkout against another source tree, alternated.

    .venv/bin/python -m benchmarks.cpu_per_call [--other-src ../main/src] [--rounds 3] [--seconds 5]

Starts the bare ASGI endpoint, Hangar from this checkout (``this``) and, with ``--other-src``, Hangar with
that ``src`` folder first on ``PYTHONPATH`` (``other``), each serving the fast upstream. Every round runs,
for each target in turn: 2,000 httpx calls at concurrency 1 (p50), then wrk at 32 connections; Hangar's
CPU (user + system of the process and its threads, from /proc) is read before wrk and after its
background writers have settled, so the figure per call includes the event log and history writes; the
event loop's thread is reported on its own too (it is what bounds the throughput of one process). On a
shared machine calls/s moves with the neighbours; CPU per call moves much less."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import psutil

from . import procs, wrk
from .cells import Cell, measure_cell
from .clients import HttpClient

HERE = Path(__file__).resolve().parent
BARE_ASGI = HERE / "bare_asgi.py"


def _cpu(pid: int) -> tuple[float, float]:
    """CPU seconds of the whole process and of its main thread (the event loop's: the bottleneck)."""
    proc = psutil.Process(pid)
    t = proc.cpu_times()
    main = next((x for x in proc.threads() if x.id == pid), None)
    return float(t.user + t.system), float(main.user_time + main.system_time) if main else 0.0


async def _round(name: str, base: str, pid: int, folder: Path, seconds: float, base_n: int) -> dict[str, Any]:
    client = HttpClient(base, "modern", "fast__echo")
    try:
        cell = Cell(name, 1)
        await measure_cell(client.call, cell, 2000, 200, base_n)
    finally:
        await client.close()
    await asyncio.to_thread(procs.settle, pid)
    before = _cpu(pid)
    tp = await asyncio.to_thread(wrk.throughput, base + "/mcp", seconds, 32, folder)
    await asyncio.to_thread(procs.settle, pid)
    after = _cpu(pid)
    calls = max(tp["calls"], 1)
    return {"p50_ms": statistics.median(cell.samples_ms), "errors": cell.errors + tp["errors"],
            "wrk_per_s": tp["throughput_per_s"], "cpu_us_per_call": (after[0] - before[0]) / calls * 1e6,
            "loop_us_per_call": (after[1] - before[1]) / calls * 1e6}


async def _main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="hangar-cpu-") as tmp, contextlib.ExitStack() as stack:
        folder = Path(tmp)
        cfg = procs.fast_config(folder)
        targets: dict[str, tuple[str, int]] = {}
        port = procs.free_port()
        proc, _ = stack.enter_context(procs.http_process([procs.PYTHON, str(BARE_ASGI), "--port", str(port)],
                                                         folder, port, folder / "bare.log"))
        targets["bare"] = (f"http://127.0.0.1:{port}", proc.pid)
        trees = [("this", None)] + ([("other", str(Path(args.other_src).resolve()))] if args.other_src else [])
        for name, src in trees:
            env = procs.clean_env(folder)
            env.pop("PYTHONPATH", None)
            if src is not None:
                env["PYTHONPATH"] = src
            port = procs.free_port()
            argv = [procs.CLI, "serve", "--http", "--port", str(port), "--data-dir", str(folder / f"data-{name}"),
                    "--log-level", "WARNING", "-c", str(cfg)]
            proc, _ = stack.enter_context(procs.http_process(argv, folder, port, folder / f"{name}.log", env))
            targets[name] = (f"http://127.0.0.1:{port}", proc.pid)
        results: dict[str, list[dict[str, Any]]] = {name: [] for name in targets}
        for r in range(args.rounds):
            order = list(targets) if r % 2 == 0 else list(reversed(targets))
            for name in order:
                base, pid = targets[name]
                res = await _round(name, base, pid, folder, args.seconds, 100_000 * (r + 1))
                results[name].append(res)
                print(f"round {r + 1} {name:6s} p50 {res['p50_ms']:.3f} ms  wrk {res['wrk_per_s']:8,.0f}/s  "
                      f"cpu {res['cpu_us_per_call']:6.1f} us/call (loop thread {res['loop_us_per_call']:6.1f})  "
                      f"errors {res['errors']}", flush=True)
        print(f"\nload average {os.getloadavg()}")
        bare_p50 = statistics.median(x["p50_ms"] for x in results["bare"])
        bare_tp = statistics.median(x["wrk_per_s"] for x in results["bare"])
        for name, rows in results.items():
            p50 = statistics.median(x["p50_ms"] for x in rows)
            tp = statistics.median(x["wrk_per_s"] for x in rows)
            cpu = statistics.median(x["cpu_us_per_call"] for x in rows)
            loop = statistics.median(x["loop_us_per_call"] for x in rows)
            print(f"{name:6s} median p50 {p50:.3f} ms ({p50 / bare_p50:.2f}x bare)  wrk {tp:,.0f}/s "
                  f"({tp / bare_tp:.0%} of bare)  cpu {cpu:.1f} us/call (loop thread {loop:.1f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--other-src", help="a src folder (another checkout) to compare with")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    if not wrk.available():
        sys.exit("wrk is not installed")
    asyncio.run(_main(args))


if __name__ == "__main__":
    main()
