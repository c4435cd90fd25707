"""Boot time, cold start and idle memory of the real CLI on its embedded default config.

    .venv/bin/python benchmarks/boot.py [--runs 5] [--json]

- boot: ``mcp-hangar serve --http`` spawned until /health/ready answers 200 (median of N fresh runs),
  and the CPU time the process had used by then (steadier than wall time on a shared machine);
- cold start: the round trip of ``POST /api/mcp_servers/math/start`` on a cold ``math`` (median of N,
  with a stop in between);
- idle RSS: resident memory of the Hangar process after boot with ``math`` cold (and of its reaper);
  then the first REST request (which loads the REST API) and the RSS after it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

if __package__ in (None, ""):  # run as a script: benchmarks/boot.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from benchmarks import procs
else:
    from . import procs


@dataclass
class Booted:
    proc: subprocess.Popen[bytes]
    client: httpx.Client
    boot_s: float
    boot_cpu_s: float  # user + system time of the Hangar process when it answered ready: steadier on a busy machine


@contextlib.contextmanager
def hangar(folder: Path) -> Iterator[Booted]:
    """Start the CLI with no config file in reach (cwd and HOME = ``folder``), wait for readiness."""
    port = procs.free_port()
    began = time.perf_counter()
    proc = subprocess.Popen([procs.CLI, "serve", "--http", "--port", str(port), "--data-dir", str(folder / "data")],
                            cwd=folder, env=procs.clean_env(folder), stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30.0)
    try:
        boot_s = procs.wait_ready(proc, port, began, "mcp-hangar")
        cpu = psutil.Process(proc.pid).cpu_times()
        yield Booted(proc, client, boot_s, cpu.user + cpu.system)
    finally:
        client.close()
        procs.stop(proc)


def measure(runs: int) -> dict[str, float]:
    boots: list[float] = []
    cpus: list[float] = []
    with tempfile.TemporaryDirectory(prefix="hangar-bench-") as tmp:
        for i in range(runs):
            folder = Path(tmp) / f"boot{i}"
            folder.mkdir()
            with hangar(folder) as booted:
                boots.append(booted.boot_s)
                cpus.append(booted.boot_cpu_s)
        folder = Path(tmp) / "main"
        folder.mkdir()
        with hangar(folder) as booted:
            time.sleep(1.0)  # idle: after start-up work in the background (preloads) has settled
            me = psutil.Process(booted.proc.pid)
            rss = me.memory_info().rss
            reaper_rss = sum(c.memory_info().rss for c in me.children())
            began = time.perf_counter()  # the first REST request loads the REST API (lazily, by default)
            booted.client.get("/api/mcp_servers").raise_for_status()
            first_rest_s = time.perf_counter() - began
            rss_api = me.memory_info().rss
            starts: list[float] = []
            for _ in range(runs):
                began = time.perf_counter()
                r = booted.client.post("/api/mcp_servers/math/start")
                starts.append(time.perf_counter() - began)
                r.raise_for_status()
                booted.client.post("/api/mcp_servers/math/stop").raise_for_status()
    return {
        "boot_to_ready_ms_median": round(statistics.median(boots) * 1000, 1),
        "boot_to_ready_ms_min": round(min(boots) * 1000, 1),
        "boot_cpu_ms_median": round(statistics.median(cpus) * 1000, 1),
        "math_cold_start_ms_median": round(statistics.median(starts) * 1000, 1),
        "math_cold_start_ms_min": round(min(starts) * 1000, 1),
        "idle_rss_mib": round(rss / 2**20, 1),
        "first_rest_request_ms": round(first_rest_s * 1000, 1),
        "rss_after_rest_mib": round(rss_api / 2**20, 1),
        "reaper_rss_mib": round(reaper_rss / 2**20, 1),
        "runs": runs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    procs.compile_bytecode()
    results = measure(args.runs)
    if args.json:
        print(json.dumps(results))
        return
    width = max(map(len, results))
    for key, value in results.items():
        print(f"{key:<{width}}  {value}")


if __name__ == "__main__":
    main()
