"""Where the wall time of a warm stdio call goes, inside Hangar and around it (concurrency 1).

    .venv/bin/python -m benchmarks.timeline [--calls 3000] [--rounds 3] [--src SRC]
        [--hangar-cpu N] [--upstream-cpu N] [--client-cpu N] [--json]

Each round starts the direct call's upstream (the raw client straight to the fast upstream) and a Hangar
on the stdio front (``benchmarks/timeline_probe.py``: timestamps at each point a call passes), makes
``--calls`` sequential calls to each, and prints the medians of the phases of a call inside Hangar:
reading the client's line to the handler, the handler to the upstream request, the write to the
upstream's pipe, the upstream's turn (from that write's return to the answer's arrival), the answer to the
handler's return, and the write to the client, beside the client's p50 of both paths. The ``--*-cpu``
options pin a process to one CPU (``taskset``; the client is this process): on a small VM a wake-up
of a process on the other CPU costs far more than one on the same CPU, and the phases show where.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import tempfile
from pathlib import Path
from typing import Any

from . import procs
from .cells import Cell, measure_cell
from .clients import StdioClient

PROBE = Path(__file__).resolve().parent / "timeline_probe.py"
# (label, from point, to point) in the order a call passes them
PHASES = (
    ("client's line read -> handler", "line_read", "handle"),
    ("handler -> upstream request", "handle", "upstream_request"),
    ("upstream request -> pipe write", "upstream_request", "upstream_write"),
    ("pipe write to the upstream (system call)", "upstream_write", "upstream_written"),
    ("the upstream's turn (write returned -> answer read)", "upstream_written", "answer_read"),
    ("answer read -> handler returns", "answer_read", "handled"),
    ("handler returns -> write to the client", "handled", "client_write"),
    ("write to the client (system call)", "client_write", "client_written"),
    ("inside Hangar, in all", "line_read", "client_written"),
)


def _taskset(cpu: int | None) -> list[str]:
    return [] if cpu is None else ["taskset", "-c", str(cpu)]


async def _cell(client: StdioClient, calls: int, base: int, probed: bool = False) -> dict[str, Any]:
    await client.start()
    try:
        await measure_cell(client.call, Cell("warm", 1), 0, 500, base)
        if probed:
            os.kill(client.pid, signal.SIGUSR1)  # the probe's recording starts
        cell = Cell("timed", 1)
        await measure_cell(client.call, cell, calls, 0, base + 1000)
        if probed:
            os.kill(client.pid, signal.SIGUSR2)  # ... and stops; its file is written as Hangar exits
        return cell.summary()
    finally:
        await client.close()  # waits for the process to exit


def _phases(path: Path) -> dict[str, float]:
    records = [r for r in json.loads(path.read_text()) if all(p in r for _, a, b in PHASES for p in (a, b))]
    out: dict[str, float] = {"calls_timed": len(records)}
    for label, start, end in PHASES:
        out[label] = round(statistics.median(r[end] - r[start] for r in records) / 1000, 1) if records else 0.0
    return out


async def run(*, calls: int = 3000, rounds: int = 3, src: str | None = None, hangar_cpu: int | None = None,
              upstream_cpu: int | None = None, client_cpu: int | None = None) -> dict[str, Any]:
    if client_cpu is not None:
        os.sched_setaffinity(0, {client_cpu})
    procs.compile_bytecode()
    results: dict[str, Any] = {"rounds": []}
    with tempfile.TemporaryDirectory(prefix="hangar-timeline-") as tmp:
        folder = Path(tmp)
        cfg = procs.fast_config(folder, _taskset(upstream_cpu))
        env = procs.clean_env(folder)
        if src is not None:
            env["PYTHONPATH"] = str(Path(src).resolve())
        for r in range(rounds):
            base = 100_000 * (r + 1)
            direct = StdioClient([*_taskset(upstream_cpu), procs.PYTHON, str(procs.FAST_SERVER)],
                                 folder / "direct.log", "echo")
            out = folder / f"timeline-{r}.json"
            hangar = StdioClient([*_taskset(hangar_cpu), "env", "-i", *(f"{k}={v}" for k, v in env.items()),
                                  procs.PYTHON, str(PROBE), str(out), "--", "serve", "-c", str(cfg),
                                  "--data-dir", str(folder / f"data-{r}"), "--log-level", "WARNING"],
                                 folder / f"hangar-{r}.log", "fast__echo")
            direct_cell = await _cell(direct, calls, base)
            hangar_cell = await _cell(hangar, calls, base + 10_000, probed=True)
            row = {"direct_p50_ms": direct_cell["p50_ms"], "hangar_p50_ms": hangar_cell["p50_ms"],
                   "errors": direct_cell["errors"] + hangar_cell["errors"], "phases_us": _phases(out)}
            results["rounds"].append(row)
    rows = results["rounds"]
    results["direct_p50_ms"] = statistics.median(r["direct_p50_ms"] for r in rows)
    results["hangar_p50_ms"] = statistics.median(r["hangar_p50_ms"] for r in rows)
    results["phases_us"] = {label: statistics.median(r["phases_us"][label] for r in rows) for label, _, _ in PHASES}
    return results


def _print(results: dict[str, Any]) -> None:
    for i, row in enumerate(results["rounds"], 1):
        print(f"round {i}: direct p50 {row['direct_p50_ms']:.3f} ms, through Hangar {row['hangar_p50_ms']:.3f} ms, "
              f"inside Hangar {row['phases_us']['inside Hangar, in all']:.1f} us, errors {row['errors']}")
    direct, hangar = results["direct_p50_ms"], results["hangar_p50_ms"]
    print(f"\nmedians over rounds: direct {direct:.3f} ms, through Hangar {hangar:.3f} ms ({hangar / direct:.2f}x)")
    for label, value in results["phases_us"].items():
        print(f"  {label:52s} {value:7.1f} us")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--src", help="a src folder (another checkout) to run instead of this one")
    parser.add_argument("--hangar-cpu", type=int)
    parser.add_argument("--upstream-cpu", type=int)
    parser.add_argument("--client-cpu", type=int)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = asyncio.run(run(calls=args.calls, rounds=args.rounds, src=args.src, hangar_cpu=args.hangar_cpu,
                              upstream_cpu=args.upstream_cpu, client_cpu=args.client_cpu))
    print(json.dumps(results, indent=2)) if args.json else _print(results)


if __name__ == "__main__":
    main()
