"""The benchmark run: start every process needed, measure each scenario, stop what was started, report."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from . import boot, fleet, importtime, instructions, peer, procs, wrk
from .cells import Cell, measure_cell, sustained
from .clients import HttpClient, RawHttpClient, RoundRobinStdio, SdkClient, StdioClient, batch_arguments

HERE = Path(__file__).resolve().parent
PYTHON = procs.PYTHON
FAST_SERVER = HERE / "fast_server.py"
SDK_SERVER = HERE / "sdk_server.py"
BARE_ASGI = HERE / "bare_asgi.py"
CONCURRENCY = (1, 8, 32)
GROUP_MEMBERS = 4
# Scenario -> its baseline (None for a baseline). At each concurrency the cells run in this order, so
# baselines and through-Hangar runs are interleaved.
SCENARIOS: dict[str, str | None] = {
    "direct_stdio": None, "hangar_stdio": "direct_stdio",
    "direct_stdio_rr": None, "hangar_stdio_group": "direct_stdio_rr",
    "bare_asgi": None, "hangar_http_modern": "bare_asgi", "hangar_http_legacy": "bare_asgi",
    "hangar_http_group": "bare_asgi",
    "sdk_direct": None, "sdk_hangar_stdio": "sdk_direct", "sdk_hangar_http": "sdk_direct",
}
# The older implementation, reached through its ``hangar_call`` tool by two clients: the raw one (the
# figure of record: the least client cost, so the two servers' own costs compare) and httpx (beside it).
PEER_SCENARIOS: dict[str, str | None] = {"hangar_http_batch": None, "peer_http_batch": "hangar_http_batch",
                                         "hangar_http_batch_raw": None, "peer_http_batch_raw": "hangar_http_batch_raw"}


class Client(Protocol):
    async def start(self) -> None: ...
    async def call(self, i: int) -> bool: ...
    async def close(self) -> None: ...


@dataclass
class Sizes:
    """How much of everything a run does (full or quick)."""

    calls: int
    warmup: int
    rounds: int
    boot_runs: int
    throughput_s: float
    wrk_rounds: int  # wrk runs per target, alternated; the share of record is the median of the rounds'
    growth_calls: int
    growth_warmup: int  # past the event log's retention (100,000 events = 50,000 calls): caches at their caps
    cold_concurrent: int
    many_servers: int
    running: int
    catalogue_servers: int
    samples: int
    instruction_calls: int  # calls counted by callgrind (the same count whatever the host does)

    @classmethod
    def of(cls, quick: bool) -> Sizes:
        if quick:
            return cls(100, 20, 2, 1, 1.0, 1, 2_000, 1_000, 10, 100, 5, 10, 5, 40)
        return cls(2000, 200, 4, 5, 10.0, 3, 100_000, 60_000, 50, 1000, 20, 100, 50, 2000)


class _Tool:
    """Another tool over an already connected raw client (one Hangar process, several routes)."""

    def __init__(self, client: StdioClient, tool: str) -> None:
        self.client, self.tool = client, tool

    async def start(self) -> None:
        pass

    async def call(self, i: int) -> bool:
        msg = await self.client.request("tools/call", {"name": self.tool, "arguments": {"text": f"bench-{i}"}})
        result = msg.get("result")
        return isinstance(result, dict) and not result.get("isError")

    async def close(self) -> None:
        pass


def _write_config(folder: Path) -> Path:
    fast = f"[{procs.yaml_str(PYTHON)}, {procs.yaml_str(str(FAST_SERVER))}]"
    lines = ["mcp_servers:",
             f"  fast: {{mode: subprocess, command: {fast}, protocol: legacy, max_concurrency: {procs.FAST_LIMIT}}}",
             f"  fast_default: {{mode: subprocess, command: {fast}, protocol: legacy}}",  # max_concurrency 10
             f"  sdk: {{mode: subprocess, command: [{procs.yaml_str(PYTHON)}, {procs.yaml_str(str(SDK_SERVER))}]}}"]
    members = [f"pool-{i}" for i in range(1, GROUP_MEMBERS + 1)]
    lines += [f"  {m}: {{mode: subprocess, command: {fast}, protocol: legacy}}" for m in members]
    lines += ["groups:", "  pool:", "    strategy: round_robin", f"    members: [{', '.join(members)}]"]
    cfg = folder / "config.yaml"
    cfg.write_text("\n".join(lines) + "\n")
    return cfg


def _clients(folder: Path, cfg: Path, http_base: str, bare_base: str, peer_base: str | None) -> dict[str, Client]:
    stdio_argv = [procs.CLI, "serve", "-c", str(cfg), "--log-level", "WARNING"]
    hangar_stdio = StdioClient([*stdio_argv, "--data-dir", str(folder / "data-stdio")],
                               folder / "hangar-stdio.log", "fast__echo")
    clients: dict[str, Client] = {
        "direct_stdio": StdioClient([PYTHON, str(FAST_SERVER)], folder / "direct.log", "echo"),
        "direct_stdio_rr": RoundRobinStdio([StdioClient([PYTHON, str(FAST_SERVER)], folder / f"direct-rr{i}.log",
                                                        "echo") for i in range(GROUP_MEMBERS)]),
        "hangar_stdio": hangar_stdio,
        "hangar_stdio_group": _Tool(hangar_stdio, "pool__echo"),
        "bare_asgi": HttpClient(bare_base, "modern", "fast__echo"),
        "hangar_http_modern": HttpClient(http_base, "modern", "fast__echo"),
        "hangar_http_legacy": HttpClient(http_base, "legacy", "fast__echo"),
        "hangar_http_group": HttpClient(http_base, "modern", "pool__echo"),
        "sdk_direct": SdkClient("echo", argv=[PYTHON, str(SDK_SERVER)]),
        "sdk_hangar_stdio": SdkClient("sdk__echo", argv=[*stdio_argv, "--data-dir", str(folder / "data-sdk")]),
        "sdk_hangar_http": SdkClient("sdk__echo", url=f"{http_base}/mcp", mode="2026-07-28"),
    }
    if peer_base is not None:
        clients["hangar_http_batch"] = HttpClient(http_base, "modern", "hangar_call", batch_arguments("fast", "echo"))
        clients["peer_http_batch"] = HttpClient(peer_base, "modern", "hangar_call", batch_arguments("fast", "echo"))
        clients["hangar_http_batch_raw"] = RawHttpClient(http_base, "hangar_call", batch_arguments("fast", "echo"))
        clients["peer_http_batch_raw"] = RawHttpClient(peer_base, "hangar_call", batch_arguments("fast", "echo"))
    return clients


async def _latency_cells(clients: dict[str, Client], scenarios: list[str], sizes: Sizes) -> list[Cell]:
    cells = {(name, c): Cell(name, c) for c in CONCURRENCY for name in scenarios}
    counter = 0
    # Interleaved in rounds: each round runs every cell once (baseline, through Hangar, ...), so drift on
    # a shared machine spreads evenly over all scenarios.
    for r in range(sizes.rounds):
        share = sizes.calls // sizes.rounds + (1 if r < sizes.calls % sizes.rounds else 0)
        for concurrency in CONCURRENCY:
            for name in scenarios:
                warmup = sizes.warmup if r == 0 else 0
                await measure_cell(clients[name].call, cells[name, concurrency], share, warmup, counter)
                counter += share + warmup
    return list(cells.values())


async def _growth(client: StdioClient, calls: int, warmup: int) -> dict[str, Any]:
    """RSS of the stdio Hangar over ``calls`` calls at concurrency 32, after ``warmup`` calls that fill its
    bounded stores (the event log keeps its newest 100,000 events, the history its newest records per
    server) and batch buffers; sampled in five steps, so a plateau and a slope (a leak) differ."""
    await measure_cell(client.call, Cell("growth-warmup", 32), warmup, 0, 10**10)
    # RSS is read once Hangar is idle again: what it keeps, not the batches its writers still hold.
    settled = [await asyncio.to_thread(procs.settle, client.pid)]
    before = procs.rss_mib(client.pid)
    steps: list[float] = []
    errors, seconds = 0, 0.0
    for k in range(5):
        cell = Cell("growth", 32)
        await measure_cell(client.call, cell, calls // 5, 0, 10**10 + warmup + k * calls)
        errors, seconds = errors + cell.errors, seconds + cell.wall_s
        settled.append(await asyncio.to_thread(procs.settle, client.pid))
        steps.append(procs.rss_mib(client.pid))
    after = steps[-1]
    return {"calls": calls, "warmup_calls": warmup, "errors": errors, "rss_before_mib": before,
            "rss_after_mib": after, "rss_steps_mib": steps, "growth_pct": round((after - before) / before * 100, 2),
            "second_half_growth_pct": round((after - steps[1]) / steps[1] * 100, 2), "seconds": round(seconds, 2),
            "settle_s": [round(x, 2) for x in settled]}


async def run_latency(folder: Path, sizes: Sizes, with_peer: bool) -> dict[str, Any]:
    cfg = _write_config(folder)
    out: dict[str, Any] = {}
    with contextlib.ExitStack() as stack:
        hangar_http, hangar_boot = stack.enter_context(procs.hangar_http(folder, cfg, "hangar-http"))
        out["hangar_http_boot_to_ready_ms"] = round(hangar_boot * 1000, 1)
        out["hangar_http_rss_idle_mib"] = procs.rss_mib(hangar_http.pid)
        http_base = f"http://127.0.0.1:{procs.port_of(hangar_http)}"
        bare_port = procs.free_port()
        stack.enter_context(procs.http_process([PYTHON, str(BARE_ASGI), "--port", str(bare_port)], folder,
                                               bare_port, folder / "bare.log"))
        bare_base = f"http://127.0.0.1:{bare_port}"
        peer_base = None
        if with_peer:
            peer_port = procs.free_port()
            peer_cfg = peer.write_config(folder / "peer.yaml", [PYTHON, str(FAST_SERVER)])
            peer_proc, peer_boot = stack.enter_context(procs.http_process(
                peer.argv(peer_cfg, peer_port), folder, peer_port, folder / "peer.log"))
            peer_base = f"http://127.0.0.1:{peer_port}"
            out["peer_http_boot_to_ready_ms"] = round(peer_boot * 1000, 1)
            out["peer_http_rss_idle_mib"] = procs.rss_mib(peer_proc.pid)
        clients = _clients(folder, cfg, http_base, bare_base, peer_base)
        scenarios = list(SCENARIOS) + (list(PEER_SCENARIOS) if with_peer else [])
        try:
            for client in clients.values():
                await client.start()
            out["cells"] = await _latency_cells(clients, scenarios, sizes)
            out["rounds"] = sizes.rounds
            out["hangar_http_rss_after_calls_mib"] = procs.rss_mib(hangar_http.pid)
            if with_peer:
                out["peer_http_rss_after_calls_mib"] = procs.rss_mib(peer_proc.pid)
            stdio = clients["hangar_stdio"]
            assert isinstance(stdio, StdioClient)
            out["hangar_stdio_rss_after_calls_mib"] = procs.rss_mib(stdio.pid)
            out["growth"] = await _growth(stdio, sizes.growth_calls, sizes.growth_warmup)
            out["throughput"] = {}
            for name in ("bare_asgi", "hangar_http_modern"):
                out["throughput"][name] = await sustained(clients[name].call, sizes.throughput_s, 32, 10**11)
            if wrk.available():
                wrk.throughput(f"{http_base}/mcp", 1, 32, folder, "fast_default__echo")  # starts that server
                out["throughput_wrk"] = wrk.rounds(
                    [("bare_asgi", f"{bare_base}/mcp", "fast__echo"),
                     ("hangar_http_modern", f"{http_base}/mcp", "fast__echo"),
                     # the same through a server at the default max_concurrency (10 of the 32 calls at once)
                     ("hangar_http_modern_default_limit", f"{http_base}/mcp", "fast_default__echo")],
                    sizes.wrk_rounds, sizes.throughput_s, folder)
        finally:
            for client in reversed(list(clients.values())):
                with contextlib.suppress(Exception):
                    await client.close()
    return out


async def run_fleet(folder: Path, sizes: Sizes) -> dict[str, Any]:
    return {"cold_start": await fleet.cold_start(folder, sizes.cold_concurrent),
            "many_servers": await fleet.many_servers(folder, sizes.many_servers, sizes.running, sizes.samples),
            "catalogue": await fleet.tools_list(folder, sizes.catalogue_servers, 20, sizes.samples)}


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def run(quick: bool, with_peer: bool = False) -> dict[str, Any]:
    sizes = Sizes.of(quick)
    out: dict[str, Any] = {"quick": quick, "calls_per_cell": sizes.calls, "warmup_per_cell": sizes.warmup,
                           "sizes": sizes.__dict__, "baselines": {**SCENARIOS, **PEER_SCENARIOS}}
    if with_peer:
        out["peer"] = peer.install()
    procs.compile_bytecode()  # the peer's bytecode was written by pip when it was installed
    with tempfile.TemporaryDirectory(prefix="hangar-bench-") as tmp:
        folder = Path(tmp)
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:  # the clients' own cost kept low
            out.update(runner.run(run_latency(folder, sizes, with_peer)))
            out["fleet"] = runner.run(run_fleet(folder, sizes))
        out["boot"] = boot.measure(sizes.boot_runs)
        out["imports"] = importtime.measure()
        out["instructions"] = instructions.measure(sizes.instruction_calls)
        if with_peer:
            peer_cfg = peer.write_config(folder / "peer-boot.yaml", [PYTHON, str(FAST_SERVER)])
            out["peer"]["boot"] = peer.measure_boot(folder, peer_cfg, sizes.boot_runs)
    return out
