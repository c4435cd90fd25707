"""HTTP throughput with ``wrk`` (Debian package ``wrk``) and a Lua script: stateless modern tools/call
requests with distinct arguments, one wrk thread, N keep-alive connections;
every answer is checked (HTTP 200, a JSON-RPC result, not isError). Skipped when wrk is absent."""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
from pathlib import Path
from typing import Any

SCRIPT = r"""
local n = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
wrk.headers["MCP-Protocol-Version"] = "2026-07-28"
wrk.headers["Mcp-Method"] = "tools/call"
wrk.headers["Mcp-Name"] = "fast__echo"
request = function()
  n = n + 1
  local body = '{"jsonrpc":"2.0","id":' .. n .. ',"method":"tools/call","params":{"name":"fast__echo",'
    .. '"arguments":{"text":"wrk-' .. n .. '"},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28",'
    .. '"io.modelcontextprotocol/clientCapabilities":{}}}}'
  return wrk.format(nil, nil, nil, body)
end
bad = 0  -- a global of each thread's Lua state, summed in done() through thread:get
local threads = {}
setup = function(thread)
  table.insert(threads, thread)
end
response = function(status, headers, body)
  if status ~= 200 or not string.find(body, '"result"', 1, true) or string.find(body, '"isError":true', 1, true) then
    bad = bad + 1
  end
end
done = function(summary, latency, requests)
  local e = summary.errors
  local bad_bodies = 0
  for _, t in ipairs(threads) do
    bad_bodies = bad_bodies + (t:get("bad") or 0)
  end
  io.write(string.format('WRKJSON {"requests":%d,"duration_us":%d,"status_errors":%d,"connect":%d,"read":%d,'
    .. '"write":%d,"timeout":%d,"p50_us":%d,"p99_us":%d,"bad_bodies":%d}\n', summary.requests, summary.duration,
    e.status, e.connect, e.read, e.write, e.timeout, latency:percentile(50), latency:percentile(99), bad_bodies))
end
"""


def available() -> bool:
    return shutil.which("wrk") is not None


def throughput(url: str, seconds: float, connections: int, folder: Path, tool: str = "fast__echo") -> dict[str, Any]:
    script = folder / "mcp_call.lua"
    script.write_text(SCRIPT.replace("fast__echo", tool))
    proc = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency",
                           "-s", str(script), url], capture_output=True, text=True, timeout=seconds + 60)
    line = next(x for x in proc.stdout.splitlines() if x.startswith("WRKJSON "))
    raw = json.loads(line.removeprefix("WRKJSON "))
    errors = sum(raw.get(k, 0) for k in ("status_errors", "connect", "read", "write", "timeout", "bad_bodies"))
    return {"calls": raw["requests"], "errors": errors, "seconds": round(raw["duration_us"] / 1e6, 3),
            "concurrency": connections, "throughput_per_s": round(raw["requests"] / (raw["duration_us"] / 1e6), 1),
            "p50_ms": raw["p50_us"] / 1000, "p99_ms": raw["p99_us"] / 1000, "raw": raw}


def rounds(targets: list[tuple[str, str, str]], count: int, seconds: float, folder: Path,
           connections: int = 32) -> dict[str, Any]:
    """wrk against each ``(name, url, tool)`` in turn, ``count`` times, the order reversed every other round.

    A shared machine's speed drifts within minutes (the bare endpoint's calls/s moved between 13,000 and
    21,000 within one hour here), so a figure is compared with the others of its own round. Each target
    gets its median round, with every round's calls/s (``rounds_per_s``) and the errors of all rounds."""
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name, _, _ in targets}
    for r in range(count):
        for name, url, tool in targets if r % 2 == 0 else list(reversed(targets)):
            runs[name].append(throughput(url, seconds, connections, folder, tool))
    out: dict[str, Any] = {}
    for name, done in runs.items():
        median = sorted(done, key=lambda x: x["throughput_per_s"])[len(done) // 2]
        out[name] = {**median, "errors": sum(x["errors"] for x in done),
                     "rounds_per_s": [x["throughput_per_s"] for x in done]}
    return out


def share(results: dict[str, Any], name: str, baseline: str) -> float:
    """``name``'s calls/s as a share of ``baseline``'s: the median of the rounds' shares (each round's
    figures measured minutes apart at most), or of the single figures of a result without rounds."""
    ours, theirs = results[name], results[baseline]
    if "rounds_per_s" not in ours or "rounds_per_s" not in theirs:
        return float(ours["throughput_per_s"] / theirs["throughput_per_s"])
    return statistics.median(a / b for a, b in zip(ours["rounds_per_s"], theirs["rounds_per_s"], strict=True))
