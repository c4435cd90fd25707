"""The added latency of auth plus a tool access policy on a warm ``tools/call``.

Two real ``mcp-hangar serve --http`` processes run the same upstream (``fast_server.py``): one with auth
off, one with auth on, an admin key (made with ``auth bootstrap-admin``) and a policy on the server.
One HTTP client sends the same legacy-session ``tools/call`` (``echo``) to both, with the same headers,
in interleaved blocks (the order flips every round, so drift hits both alike), sequentially, and reports
the latency distribution of each and the difference.

    .venv/bin/python -m benchmarks.auth_overhead [--calls 2000] [--block 100] [--out FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import yaml

from benchmarks.procs import clean_env, free_port, stop, wait_ready

HERE = Path(__file__).resolve().parent
CLI = str(Path(sys.executable).with_name("mcp-hangar"))
FAST_SERVER = HERE / "fast_server.py"
LEGACY = "2025-06-18"
ACCEPT = "application/json, text/event-stream"
UPSTREAM = {"fast": {"mode": "subprocess", "command": [sys.executable, str(FAST_SERVER)]}}
POLICY = {"allow_list": ["echo", "add"], "deny_list": ["tool_*", "admin_*"]}
RAISED_LIMITS = {"tool_calls": {"rps": 1_000_000, "burst": 10_000_000}}


@contextlib.contextmanager
def serve(folder: Path, config: dict[str, Any]) -> Iterator[str]:
    """``mcp-hangar serve --http`` on a free loopback port with ``config``; yields its base URL."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "hangar.yaml"
    path.write_text(yaml.safe_dump(config), "utf-8")
    port = free_port()
    proc = subprocess.Popen([CLI, "serve", "--http", "--port", str(port), "-c", str(path), "--data-dir",
                             str(folder / "data"), "--log-level", "WARNING"], cwd=folder, env=clean_env(folder),
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_ready(proc, port, time.perf_counter(), "mcp-hangar")
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc)


def bootstrap(folder: Path) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    out = subprocess.run([CLI, "auth", "bootstrap-admin", "--principal", "user:bench", "--data-dir",
                          str(folder / "data")], env=clean_env(folder), cwd=folder, capture_output=True, text=True,
                         check=True, timeout=60)
    return out.stdout.strip()


class Session:
    """A legacy MCP session on one server, through the shared client."""

    def __init__(self, client: httpx.AsyncClient, base: str, headers: dict[str, str]) -> None:
        self.client, self.url = client, f"{base}/mcp"
        self.headers = {"accept": ACCEPT, "content-type": "application/json", **headers}

    async def open(self) -> None:
        r = await self.client.post(self.url, headers=self.headers, json={
            "jsonrpc": "2.0", "id": 0, "method": "initialize",
            "params": {"protocolVersion": LEGACY, "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}}})
        r.raise_for_status()
        self.headers |= {"mcp-session-id": r.headers["mcp-session-id"], "mcp-protocol-version": LEGACY}
        await self.client.post(self.url, headers=self.headers, json={"jsonrpc": "2.0",
                                                                     "method": "notifications/initialized"})

    async def call(self, i: int) -> float:
        body = json.dumps({"jsonrpc": "2.0", "id": i, "method": "tools/call",
                           "params": {"name": "fast__echo", "arguments": {"text": f"bench-{i}"}}}).encode()
        began = time.perf_counter()
        r = await self.client.post(self.url, headers=self.headers, content=body)
        elapsed = (time.perf_counter() - began) * 1000
        answer = r.json()
        if r.status_code != 200 or "result" not in answer or answer["result"].get("isError"):
            raise RuntimeError(f"call failed: {r.status_code} {r.text[:200]}")
        return elapsed


def _summary(samples: list[float]) -> dict[str, float]:
    s = sorted(samples)

    def pct(p: float) -> float:
        return s[min(len(s) - 1, round((len(s) - 1) * p / 100))]

    return {"calls": len(s), "p50_ms": round(pct(50), 4), "p90_ms": round(pct(90), 4), "p99_ms": round(pct(99), 4),
            "mean_ms": round(statistics.fmean(s), 4)}


async def measure(off: str, on: str, key: str, calls: int, block: int) -> dict[str, Any]:
    headers = {"x-api-key": key}  # sent to both, so the requests are byte-identical
    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_keepalive_connections=4)) as client:
        sessions = {"auth_off": Session(client, off, headers), "auth_on_policy": Session(client, on, headers)}
        for session in sessions.values():
            await session.open()
            for i in range(200):  # warm: upstream started, caches filled, connections open
                await session.call(i)
        samples: dict[str, list[float]] = {name: [] for name in sessions}
        order = list(sessions)
        i = 0
        while min(len(v) for v in samples.values()) < calls:
            for name in order:
                for _ in range(min(block, calls - len(samples[name]))):
                    i += 1
                    samples[name].append(await sessions[name].call(i))
            order.reverse()
    off_s, on_s = _summary(samples["auth_off"]), _summary(samples["auth_on_policy"])
    return {"auth_off": off_s, "auth_on_policy": on_s,
            "added_ms": {k: round(on_s[k] - off_s[k], 4) for k in ("p50_ms", "p90_ms", "p99_ms", "mean_ms")}}


async def micro(folder: Path, n: int = 20_000) -> dict[str, float]:
    """The in-process cost of the auth and policy checks of one call (no network): authenticate the
    key, check the /mcp route, then the tool's permission, policy and rate limit."""
    from mcp_hangar.config import LoadedConfig, parse_config_text
    from mcp_hangar.front.session import Front
    from mcp_hangar.hangar import Hangar
    from mcp_hangar.web.security import RouteTable

    text = yaml.safe_dump({"mcp_servers": {"fast": {**UPSTREAM["fast"], "tools": POLICY}},
                           "auth": {"enabled": True, "rate_limit": RAISED_LIMITS}})
    config, raw, warnings = parse_config_text(text, "<bench>")
    hangar = Hangar(LoadedConfig(config, None, raw, warnings), folder)
    await hangar.start()
    try:
        await hangar.auth.assign("user:bench", "admin", "global", None)
        key, _ = await hangar.auth.create_key("user:bench", "bench", None, None)
        front = Front(hangar)
        table = RouteTable()
        route = front.catalog.route("fast__echo")
        assert route is not None
        began = time.perf_counter()
        for _ in range(n):
            principal = await hangar.auth.authenticate(key, "127.0.0.1", "mcp")
            table.match("POST", "/mcp")
            front.guard.check_method(principal, "tools/call")
            front.guard.check_call(principal, "fast__echo", route.server_id, route.tool, {})
        per_call_us = (time.perf_counter() - began) / n * 1e6
        front.close()
    finally:
        await hangar.aclose()
    return {"iterations": n, "per_call_us": round(per_call_us, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000, help="calls per configuration")
    parser.add_argument("--block", type=int, default=100, help="calls per interleaved block")
    parser.add_argument("--out", type=Path, help="also write the JSON result here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hangar-auth-bench-") as scratch:
        root = Path(scratch)
        key = bootstrap(root / "on")
        on_config = {"mcp_servers": {"fast": {**UPSTREAM["fast"], "tools": POLICY}},
                     "auth": {"enabled": True, "rate_limit": RAISED_LIMITS}}
        with serve(root / "off", {"mcp_servers": UPSTREAM}) as off, serve(root / "on", on_config) as on:
            result = asyncio.run(measure(off, on, key, args.calls, args.block))
        result["in_process_checks"] = asyncio.run(micro(root / "micro"))
    result["setup"] = {"calls_each": args.calls, "block": args.block, "concurrency": 1, "transport": "http legacy",
                       "tool": "fast__echo", "policy": POLICY, "cpu_count": os.cpu_count()}
    text = json.dumps(result, indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n", "utf-8")


if __name__ == "__main__":
    main()
