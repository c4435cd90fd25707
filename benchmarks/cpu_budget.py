"""Where the CPU goes under wrk: each thread of the server, its upstream, wrk and the machine's idle time.

    .venv/bin/python -m benchmarks.cpu_budget [--seconds 10] [--warmup 2] [--json]

wrk (32 connections, modern ``tools/call`` requests) runs against three servers in turn: Hangar's HTTP
front serving the fast upstream, the same Hangar with its event log and history discarding their rows
instead of writing them (``benchmarks/discard_writes_probe.py``: not a setting of the product, a
measure of what the writes cost), and the bare endpoint. For each, psutil (``/proc``) gives the CPU time of every
thread of the server (the event loop's split into user and system), of the upstream and of wrk, and the
machine's idle time, all per call. The bare endpoint's loop thread is busy nearly all the time (it is
the bottleneck); Hangar's loop thread is busy less of the time when another thread holds the
interpreter lock it needs."""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import psutil

from . import procs, wrk

BARE_ASGI = Path(__file__).resolve().parent / "bare_asgi.py"
DISCARD_PROBE = Path(__file__).resolve().parent / "discard_writes_probe.py"


def _threads(proc: psutil.Process) -> dict[int, tuple[float, float]]:
    """(user, system) CPU seconds of each thread of ``proc``."""
    return {t.id: (t.user_time, t.system_time) for t in proc.threads()}


def _cpu(processes: list[psutil.Process]) -> float:
    """User + system CPU seconds of ``processes``, together."""
    return sum(float(p.cpu_times().user + p.cpu_times().system) for p in processes)


def _idle() -> float:
    times = psutil.cpu_times()  # every CPU
    return float(times.idle + getattr(times, "iowait", 0.0))


def _budget(name: str, argv: list[str], folder: Path, seconds: float, warmup: float) -> dict[str, Any]:
    port = procs.free_port()
    argv = [part.replace("{port}", str(port)) for part in argv]
    with procs.http_process(argv, folder, port, folder / f"{name}.log", procs.clean_env(folder)) as (proc, _):
        url = f"http://127.0.0.1:{port}/mcp"
        wrk.throughput(url, warmup, 32, folder)  # starts the lazy upstream too
        server = psutil.Process(proc.pid)
        kids = server.children(recursive=True)  # the upstream (and the reaper, which is idle)
        threads0, kids0, idle0 = _threads(server), _cpu(kids), _idle()
        before = os.times()
        result = wrk.throughput(url, seconds, 32, folder)
        after = os.times()
        threads1, kids1, idle1 = _threads(server), _cpu(kids), _idle()
    calls = result["calls"]
    per_call = 1e6 / max(calls, 1)
    (user0, system0), (user1, system1) = threads0[proc.pid], threads1[proc.pid]  # the event loop's thread
    loop_user, loop_system = user1 - user0, system1 - system0
    others = sum(sum(t) - sum(threads0.get(tid, (0.0, 0.0))) for tid, t in threads1.items() if tid != proc.pid)
    wrk_cpu = (after.children_user + after.children_system) - (before.children_user + before.children_system)
    return {
        "server": name, "calls": calls, "errors": result["errors"], "calls_per_s": result["throughput_per_s"],
        "seconds": result["seconds"],
        "loop_busy": round((loop_user + loop_system) / result["seconds"], 3),
        "loop_user_us_per_call": round(loop_user * per_call, 1),
        "loop_system_us_per_call": round(loop_system * per_call, 1),
        "other_threads_us_per_call": round(others * per_call, 1),
        "upstream_us_per_call": round((kids1 - kids0) * per_call, 1),
        "wrk_us_per_call": round(wrk_cpu * per_call, 1),
        "machine_idle_cpu_s": round(idle1 - idle0, 2),
    }


def run(seconds: float = 10.0, warmup: float = 2.0) -> list[dict[str, Any]]:
    procs.compile_bytecode()
    with tempfile.TemporaryDirectory(prefix="hangar-budget-") as tmp:
        folder = Path(tmp)
        cfg = procs.fast_config(folder)
        serve = ["serve", "--http", "--port", "{port}", "--log-level", "WARNING", "-c", str(cfg)]
        servers = [
            ("hangar", [procs.PYTHON, procs.CLI, *serve, "--data-dir", str(folder / "data")]),
            ("hangar_rows_discarded", [procs.PYTHON, str(DISCARD_PROBE), *serve, "--data-dir", str(folder / "data2")]),
            ("bare_asgi", [procs.PYTHON, str(BARE_ASGI), "--port", "{port}"]),
        ]
        return [_budget(name, argv, folder, seconds, warmup) for name, argv in servers]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = run(args.seconds, args.warmup)
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    bare = next(r for r in rows if r["server"] == "bare_asgi")["calls_per_s"]
    for r in rows:
        print(f"{r['server']:22s} {r['calls_per_s']:9,.0f} calls/s ({r['calls_per_s'] / bare:4.0%} of bare), "
              f"errors {r['errors']}, loop busy {r['loop_busy']:.0%}, loop {r['loop_user_us_per_call']:.1f} + "
              f"{r['loop_system_us_per_call']:.1f} us/call (user + system), other threads "
              f"{r['other_threads_us_per_call']:.1f}, upstream {r['upstream_us_per_call']:.1f}, wrk "
              f"{r['wrk_us_per_call']:.1f} us/call, machine idle {r['machine_idle_cpu_s']:.1f} CPU-s")


if __name__ == "__main__":
    main()
