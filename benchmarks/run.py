"""The benchmark run: start every process needed, measure each cell, stop what was started, report."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx
import psutil

from . import boot, wrk
from .clients import HttpClient, StdioClient

HERE = Path(__file__).resolve().parent
PYTHON = sys.executable
FAST_SERVER = HERE / "fast_server.py"
BARE_ASGI = HERE / "bare_asgi.py"
CONCURRENCY = (1, 8, 32)
# The order of cells at each concurrency: baselines and through-Hangar runs interleaved.
SCENARIOS = ("direct_stdio", "hangar_stdio", "bare_asgi", "hangar_http_modern", "hangar_http_legacy")


class Client(Protocol):
    async def call(self, i: int) -> bool: ...
    async def close(self) -> None: ...


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


def _write_config(folder: Path) -> Path:
    cfg = folder / "config.yaml"
    cfg.write_text(
        "mcp_servers:\n"
        "  fast:\n"
        "    mode: subprocess\n"
        f"    command: [{_yaml_str(PYTHON)}, {_yaml_str(str(FAST_SERVER))}]\n"
        "    protocol: legacy\n")
    return cfg


def _yaml_str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _env(folder: Path) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("MCP_")} | {"HOME": str(folder)}


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop one process this harness started, by its PID: SIGTERM, then SIGKILL after 10 s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def http_process(argv: list[str], folder: Path, port: int,
                 log: Path) -> Iterator[tuple[subprocess.Popen[bytes], float]]:
    """Start an HTTP server process and wait for /health/ready; yields it and its boot time (s)."""
    began = time.perf_counter()
    with log.open("wb") as err:
        proc = subprocess.Popen(argv, cwd=folder, env=_env(folder), stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=err)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5.0) as client:
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"{argv[0]} exited with {proc.returncode}; see {log}")
                with contextlib.suppress(httpx.TransportError):
                    if client.get("/health/ready").status_code == 200:
                        break
                if time.perf_counter() - began > boot.READY_TIMEOUT_S:
                    raise TimeoutError(f"{argv} did not become ready")
                time.sleep(0.005)
        yield proc, time.perf_counter() - began
    finally:
        _stop(proc)


def _rss_mib(pid: int) -> float:
    return round(psutil.Process(pid).memory_info().rss / 2**20, 1)


async def run_latency(folder: Path, calls: int, warmup: int, rounds: int, throughput_s: float) -> dict[str, Any]:
    cfg = _write_config(folder)
    cli = boot.CLI
    hangar_port, bare_port = boot._free_port(), boot._free_port()
    out: dict[str, Any] = {}
    with contextlib.ExitStack() as stack:
        hangar_http, hangar_boot = stack.enter_context(http_process(
            [cli, "serve", "--http", "--port", str(hangar_port), "-c", str(cfg),
             "--data-dir", str(folder / "data-http"), "--log-level", "WARNING"],
            folder, hangar_port, folder / "hangar-http.log"))
        out["hangar_http_boot_to_ready_ms"] = round(hangar_boot * 1000, 1)
        out["hangar_http_rss_idle_mib"] = _rss_mib(hangar_http.pid)
        bare, _ = stack.enter_context(http_process([PYTHON, str(BARE_ASGI), "--port", str(bare_port)], folder,
                                                   bare_port, folder / "bare.log"))
        base = f"http://127.0.0.1:{hangar_port}"
        clients: dict[str, Client] = {}
        direct = StdioClient([PYTHON, str(FAST_SERVER)], folder / "direct.log", "echo")
        hangar_stdio = StdioClient([cli, "serve", "-c", str(cfg), "--data-dir", str(folder / "data-stdio"),
                                    "--log-level", "WARNING"], folder / "hangar-stdio.log", "fast__echo")
        clients["direct_stdio"] = direct
        clients["hangar_stdio"] = hangar_stdio
        clients["bare_asgi"] = HttpClient(f"http://127.0.0.1:{bare_port}", "modern", "fast__echo")
        clients["hangar_http_modern"] = HttpClient(base, "modern", "fast__echo")
        clients["hangar_http_legacy"] = HttpClient(base, "legacy", "fast__echo")
        try:
            for client in clients.values():
                await client.start()  # type: ignore[attr-defined]
            cells = {(name, c): Cell(name, c) for c in CONCURRENCY for name in SCENARIOS}
            counter = 0
            # Interleaved in rounds: each round runs every cell once (baseline, through Hangar, baseline,
            # through Hangar, ...), so drift on a shared machine spreads evenly over all scenarios.
            for r in range(rounds):
                share = calls // rounds + (1 if r < calls % rounds else 0)
                for concurrency in CONCURRENCY:
                    for name in SCENARIOS:
                        await measure_cell(clients[name].call, cells[name, concurrency], share,
                                           warmup if r == 0 else 0, counter)
                        counter += share + warmup
            out["cells"] = list(cells.values())
            out["rounds"] = rounds
            out["hangar_http_rss_after_calls_mib"] = _rss_mib(hangar_http.pid)
            out["hangar_stdio_rss_after_calls_mib"] = _rss_mib(hangar_stdio.pid)
            out["throughput"] = {}
            for name in ("bare_asgi", "hangar_http_modern"):
                out["throughput"][name] = await sustained(clients[name].call, throughput_s, 32, counter)
                counter += 10**9
            if wrk.available():
                out["throughput_wrk"] = {
                    name: wrk.throughput(f"{url}/mcp", throughput_s, 32, folder)
                    for name, url in (("bare_asgi", f"http://127.0.0.1:{bare_port}"), ("hangar_http_modern", base))}
        finally:
            for client in clients.values():
                with contextlib.suppress(Exception):
                    await client.close()
        del bare
    return out


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def run(quick: bool) -> dict[str, Any]:
    calls, warmup, rounds, runs, throughput_s = (100, 20, 2, 1, 1.0) if quick else (2000, 200, 4, 5, 5.0)
    with tempfile.TemporaryDirectory(prefix="hangar-bench-") as tmp:
        folder = Path(tmp)
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:  # the clients' own cost kept low
            latency = runner.run(run_latency(folder, calls, warmup, rounds, throughput_s))
        boot_results = boot.measure(runs)
    return {"quick": quick, "calls_per_cell": calls, "warmup_per_cell": warmup, "boot": boot_results, **latency}
