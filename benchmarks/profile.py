"""Where a warm call's time goes inside Hangar: py-spy samples the Hangar process while a raw client calls.

    .venv/bin/python -m benchmarks.profile [--front stdio|http|wrk] [--calls 20000] [--concurrency 1] [--top 25]

``--front wrk`` loads the modern HTTP front with wrk (32 connections, 10 s) instead of the httpx client,
which shows where Hangar's CPU goes when it is the bottleneck.

Needs ``py-spy`` (PyPI; ``pip install py-spy``) and permission to trace the child (root, or
ptrace_scope 0). Prints the functions with the most samples, inclusive and self, as shares of all
samples of the Hangar process (idle waiting in the event loop's selector is reported separately)."""

from __future__ import annotations

import argparse
import asyncio
import collections
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from . import procs, wrk
from .cells import Cell, measure_cell
from .clients import HttpClient, StdioClient

IDLE = ("select (selectors.py", "run_forever", "_run_once", "poll (selectors.py", "uv_run")


def summarize(raw: str, top: int) -> dict[str, Any]:
    """Collapsed stacks (``frame;frame;... count``) -> top frames by inclusive and self samples."""
    inclusive: collections.Counter[str] = collections.Counter()
    self_: collections.Counter[str] = collections.Counter()
    total = idle = 0
    for line in raw.splitlines():
        stack, _, count_s = line.rpartition(" ")
        if not stack or not count_s.isdigit():
            continue
        count = int(count_s)
        frames = [f.split(" (")[0] + " (" + f.split(" (")[1].split(":")[0] + ")" if " (" in f else f
                  for f in stack.split(";")]
        frames = [f.split(" (")[0] + " (" + Path(f.split(" (")[1].rstrip(")")).name + ")" if " (" in f else f
                  for f in frames]
        total += count
        if frames and any(mark in frames[-1] for mark in IDLE):
            idle += count
            continue
        for f in set(frames):
            inclusive[f] += count
        self_[frames[-1]] += count
    busy = max(total - idle, 1)
    return {"samples": total, "idle_samples": idle, "busy_share_of_samples": round(busy / max(total, 1), 3),
            "inclusive": [(f, round(c / busy * 100, 1)) for f, c in inclusive.most_common(top)],
            "self": [(f, round(c / busy * 100, 1)) for f, c in self_.most_common(top)]}


async def _drive(front: str, folder: Path, calls: int, concurrency: int, out: Path) -> None:
    cfg = procs.fast_config(folder)
    client: Any
    if front == "stdio":
        client = StdioClient([procs.CLI, "serve", "-c", str(cfg), "--data-dir", str(folder / "data"),
                              "--log-level", "WARNING"], folder / "hangar.log", "fast__echo")
        await client.start()
        pid = client.pid
        proc = None
    else:
        ctx = procs.hangar_http(folder, cfg, "hangar")
        proc, _ = ctx.__enter__()
        pid = proc.pid
        client = HttpClient(f"http://127.0.0.1:{procs.port_of(proc)}", "modern", "fast__echo")
        await client.start()
    try:
        await measure_cell(client.call, Cell("warm", concurrency), 500, 200, 0)  # warm
        if front == "wrk":
            spy = _spy(pid, out)
            await asyncio.sleep(1.0)
            url = str(client.client.base_url).rstrip("/") + "/mcp"
            tp = await asyncio.to_thread(wrk.throughput, url, 10.0, 32, folder)
            spy.send_signal(2)
            spy.wait(30)
            print(f"wrk: {tp['throughput_per_s']:,.0f} calls/s, {tp['errors']} errors, p50 {tp['p50_ms']:.2f} ms")
            return
        spy = _spy(pid, out)
        await asyncio.sleep(1.0)  # py-spy attaches
        cell = Cell("profiled", concurrency)
        await measure_cell(client.call, cell, calls, 0, 10_000)
        spy.send_signal(2)  # SIGINT: py-spy writes its output and exits
        spy.wait(30)
        samples = sorted(cell.samples_ms)
        print(f"{front}: {calls} calls at concurrency {concurrency}, p50 {samples[len(samples) // 2]:.3f} ms")
    finally:
        await client.close()
        if proc is not None:
            ctx.__exit__(None, None, None)


def _spy(pid: int, out: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(["py-spy", "record", "--pid", str(pid), "--rate", "2000", "--format", "raw",
                             "--output", str(out), "--nonblocking"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--front", choices=("stdio", "http", "wrk"), default="stdio")
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    if shutil.which("py-spy") is None:
        raise SystemExit("py-spy is not installed (pip install py-spy)")
    with tempfile.TemporaryDirectory(prefix="hangar-profile-") as tmp:
        out = Path(tmp) / "stacks.txt"
        asyncio.run(_drive(args.front, Path(tmp), args.calls, args.concurrency, out))
        result = summarize(out.read_text(), args.top)
    print(f"samples {result['samples']} (idle polling of the asyncio loop excluded; under uvloop the loop's "
          "polling and its own C work show as Runner.run self time)")
    for kind in ("self", "inclusive"):
        print(f"\n{kind}:")
        for frame, share in result[kind]:
            print(f"  {share:5.1f}%  {frame}")


if __name__ == "__main__":
    main()
