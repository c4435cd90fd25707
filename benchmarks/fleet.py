"""Fleet-sized scenarios: cold start with concurrent first calls, memory with many servers, and scale.

- cold start: one lazy server, N concurrent first calls through the modern HTTP front, each on its own raw
  keep-alive connection opened beforehand (the lone first call too), so the client costs the same per call
  in both; spawns are counted from the processes themselves (each fast upstream appends its PID to a file
  at start) and from Hangar's own ``mcp_hangar_mcp_server_starts_total``; the total is compared with one
  lone first call;
- memory: RSS of Hangar with 1,000 registered cold servers, then with 20 of them running;
- scale: ``GET /api/mcp_servers`` with those 1,000 servers; the aggregated ``tools/list`` (every page)
  over 100 ready servers with 20 tools each.
"""

from __future__ import annotations

import asyncio
import json
import re
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from . import procs
from .clients import ACCEPT, META, MODERN, RawHttpConnection, raw_modern_call

FAST_SERVER = Path(__file__).resolve().parent / "fast_server.py"


def _server_yaml(name: str, *extra: str, lines: list[str]) -> None:
    argv = ", ".join(procs.yaml_str(a) for a in (procs.PYTHON, str(FAST_SERVER), *extra))
    lines += [f"  {name}:", "    mode: subprocess", f"    command: [{argv}]", "    protocol: legacy"]


def write_fleet_config(path: Path, count: int, *extra: str, prefix: str = "s") -> list[str]:
    """A config of ``count`` lazy fast upstreams named ``<prefix>0000``...; returns the names."""
    names = [f"{prefix}{i:04d}" for i in range(count)]
    lines = ["mcp_servers:"]
    for name in names:
        _server_yaml(name, *extra, lines=lines)
    path.write_text("\n".join(lines) + "\n")
    return names


def _stats(samples_s: list[float]) -> dict[str, Any]:
    ms = sorted(s * 1000 for s in samples_s)
    k = len(ms) - 1
    return {"n": len(ms), "p50_ms": round(statistics.median(ms), 3), "p90_ms": round(ms[int(k * 0.9)], 3),
            "min_ms": round(ms[0], 3), "max_ms": round(ms[-1], 3), "samples_ms": [round(x, 3) for x in ms]}


async def _modern_call(client: httpx.AsyncClient, tool: str, args: dict[str, Any], rid: int) -> bool:
    body = {"jsonrpc": "2.0", "id": rid, "method": "tools/call",
            "params": {"name": tool, "arguments": args, "_meta": META}}
    r = await client.post("/mcp", json=body, headers={"accept": ACCEPT, "mcp-protocol-version": MODERN,
                                                      "mcp-method": "tools/call", "mcp-name": tool})
    result = r.json().get("result") if r.status_code == 200 else None
    return isinstance(result, dict) and not result.get("isError")


def _starts_metric(text: str, server: str) -> float:
    match = re.search(r'^mcp_hangar_mcp_server_starts_total\{mcp_server="' + re.escape(server) + r'"\} (\S+)$',
                      text, re.M)
    return float(match.group(1)) if match else 0.0


async def cold_start(folder: Path, concurrent: int) -> dict[str, Any]:
    """``concurrent`` first calls at once on one lazy server, against one lone first call on its twin."""
    spawn_log = folder / "spawns.txt"
    lines = ["mcp_servers:"]
    for name in ("lazy", "lazy_ref"):
        _server_yaml(name, "--spawn-log", str(spawn_log.with_suffix(f".{name}")), lines=lines)
    cfg = folder / "cold.yaml"
    cfg.write_text("\n".join(lines) + "\n")
    with procs.hangar_http(folder, cfg, "cold") as (proc, _):
        port = procs.port_of(proc)
        # Raw keep-alive connections, all opened before the first call: each caller costs the client the
        # same small amount whether it is alone or one of fifty (through one httpx pool the fifty cost the
        # client about 3x more CPU each than a lone call, which the total then counted as Hangar's).
        conns = [RawHttpConnection("127.0.0.1", port) for _ in range(concurrent + 1)]
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60.0) as client:
            try:
                await asyncio.gather(*(c.open() for c in conns))
                # The front's own first-request costs are paid on a management tool, not on a measured call.
                await asyncio.gather(*(raw_modern_call(c, "hangar_list", {}, 0) for c in conns))
                began = time.perf_counter()
                lone_ok = await raw_modern_call(conns[0], "lazy_ref__echo", {"text": "first"}, 1)
                lone = time.perf_counter() - began
                began = time.perf_counter()

                async def one(i: int) -> tuple[bool, float]:
                    ok = await raw_modern_call(conns[i + 1], "lazy__echo", {"text": f"cold-{i}"}, 100 + i)
                    return ok, time.perf_counter() - began

                outcomes = await asyncio.gather(*(one(i) for i in range(concurrent)))
                total = time.perf_counter() - began
            finally:
                for c in conns:
                    await c.close()
            metrics = (await client.get("/metrics")).text
    spawns = spawn_log.with_suffix(".lazy").read_text().split() if spawn_log.with_suffix(".lazy").exists() else []
    return {"concurrent_calls": concurrent, "ok": sum(ok for ok, _ in outcomes), "lone_ok": lone_ok,
            "spawns_counted_by_process": len(spawns), "spawns_counted_by_hangar": _starts_metric(metrics, "lazy"),
            "total_ms": round(total * 1000, 2), "lone_first_call_ms": round(lone * 1000, 2),
            "total_over_lone": round(total / lone, 2),
            "per_call_ms": _stats([t for _, t in outcomes])}


async def _timed_gets(client: httpx.AsyncClient, path: str, n: int) -> tuple[list[float], Any]:
    samples: list[float] = []
    body: Any = None
    for _ in range(n):
        began = time.perf_counter()
        r = await client.get(path)
        samples.append(time.perf_counter() - began)
        r.raise_for_status()
        body = r.json()
    return samples, body


async def many_servers(folder: Path, count: int, running: int, gets: int) -> dict[str, Any]:
    """RSS with ``count`` registered cold servers and with ``running`` of them started; the REST list."""
    cfg = folder / "many.yaml"
    names = write_fleet_config(cfg, count)
    with procs.hangar_http(folder, cfg, "many") as (proc, boot_s):
        await asyncio.sleep(1.0)  # let boot-time background work settle before reading RSS
        rss_cold = procs.rss_mib(proc.pid)
        base = f"http://127.0.0.1:{procs.port_of(proc)}"
        async with httpx.AsyncClient(base_url=base, timeout=120.0) as client:
            await _timed_gets(client, "/api/mcp_servers", 3)  # warm-up
            samples, body = await _timed_gets(client, "/api/mcp_servers", gets)
            listed = len(body["mcp_servers"])
            for name in names[:running]:
                (await client.post(f"/api/mcp_servers/{name}/start")).raise_for_status()
        rss_running = procs.rss_mib(proc.pid)
        children = procs.children_rss_mib(proc.pid)
    return {"servers": count, "listed": listed, "boot_to_ready_ms": round(boot_s * 1000, 1),
            "rss_cold_mib": rss_cold, "running": running, "rss_running_mib": rss_running,
            "children_rss_mib": children, "list_servers": _stats(samples)}


async def tools_list(folder: Path, servers: int, tools_each: int, lists: int) -> dict[str, Any]:
    """The whole aggregated catalogue (every page) over ``servers`` ready servers of ``tools_each`` tools.

    Timed with the lean raw keep-alive client (the figure for the target: httpx spends more time parsing
    ~50 KB pages with h11 than Hangar spends serving them) and, alternately, with httpx (a realistic client)."""
    cfg = folder / "catalogue.yaml"
    names = write_fleet_config(cfg, servers, "--tools", str(tools_each - 2), prefix="t")
    headers = {"accept": ACCEPT, "mcp-protocol-version": MODERN, "mcp-method": "tools/list"}
    with procs.hangar_http(folder, cfg, "catalogue") as (proc, _):
        port = procs.port_of(proc)
        raw = RawHttpConnection("127.0.0.1", port)
        await raw.open()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=120.0) as client:
            for i in range(0, len(names), 10):  # start them ten at a time: two CPUs
                batch = names[i:i + 10]
                for r in await asyncio.gather(*(client.post(f"/api/mcp_servers/{n}/start") for n in batch)):
                    r.raise_for_status()

            async def page_raw(body: dict[str, Any]) -> dict[str, Any]:
                status, data = await raw.post("/mcp", {**headers, "content-type": "application/json"},
                                              json.dumps(body).encode())
                if status != 200:
                    raise RuntimeError(f"tools/list answered {status}")
                result: dict[str, Any] = json.loads(data)["result"]
                return result

            async def page_httpx(body: dict[str, Any]) -> dict[str, Any]:
                r = await client.post("/mcp", headers=headers, json=body)
                r.raise_for_status()
                result: dict[str, Any] = r.json()["result"]
                return result

            async def full_list(page: Callable[[dict[str, Any]], Awaitable[dict[str, Any]]],
                                rid: int) -> tuple[int, int]:
                cursor, count, pages = None, 0, 0
                while True:
                    params: dict[str, Any] = {"_meta": META}
                    if cursor:
                        params["cursor"] = cursor
                    result = await page({"jsonrpc": "2.0", "id": rid, "method": "tools/list", "params": params})
                    count, pages = count + len(result["tools"]), pages + 1
                    cursor = result.get("nextCursor")
                    if not cursor:
                        return count, pages

            await full_list(page_raw, 0)  # warm-up
            await full_list(page_httpx, 0)
            samples: list[float] = []
            samples_httpx: list[float] = []
            for i in range(lists):
                for page, into in ((page_raw, samples), (page_httpx, samples_httpx)):
                    began = time.perf_counter()
                    count, pages = await full_list(page, i + 1)
                    into.append(time.perf_counter() - began)
        await raw.close()
    upstream_tools = servers * tools_each
    return {"servers": servers, "tools_each": tools_each, "upstream_tools": upstream_tools, "listed_tools": count,
            "pages": pages, "full_list": _stats(samples), "full_list_httpx": _stats(samples_httpx)}
