"""A minimal, fast MCP server for benchmarks: JSON lines on stdio, legacy era, stdlib only.

Single-threaded on purpose: it answers each request as soon as it is read, so the upstream is never the
bottleneck of a measurement. Tools: ``echo {text}`` and ``add {a, b}`` (with structured output), plus
``--tools N`` extra no-op tools for catalogue-size scenarios. ``--spawn-log FILE`` appends the process id to
FILE at start, so a benchmark counts real spawns from the processes themselves."""

from __future__ import annotations

import json
import os
import sys


def main() -> None:
    extra = int(sys.argv[sys.argv.index("--tools") + 1]) if "--tools" in sys.argv else 0
    if "--spawn-log" in sys.argv:
        with open(sys.argv[sys.argv.index("--spawn-log") + 1], "a") as f:
            f.write(f"{os.getpid()}\n")
    tools = [
        {"name": "echo", "description": "Echo text", "inputSchema": {"type": "object",
         "properties": {"text": {"type": "string"}}, "required": ["text"]}},
        {"name": "add", "description": "Add two numbers", "inputSchema": {"type": "object",
         "properties": {"a": {"type": "number"}, "b": {"type": "number"}}, "required": ["a", "b"]}},
    ] + [{"name": f"tool_{i}", "description": f"No-op tool {i}", "inputSchema": {"type": "object"}}
         for i in range(extra)]
    out = sys.stdout
    dumps, loads = json.dumps, json.loads
    for line in sys.stdin:
        msg = loads(line)
        rid = msg.get("id")
        if rid is None:
            continue
        method = msg.get("method")
        if method == "tools/call":
            params = msg["params"]
            args = params.get("arguments") or {}
            if params["name"] == "add":
                total = args["a"] + args["b"]
                result = {"content": [{"type": "text", "text": str(total)}], "structuredContent": {"result": total},
                          "isError": False}
            else:
                result = {"content": [{"type": "text", "text": str(args.get("text", ""))}], "isError": False}
            reply = {"jsonrpc": "2.0", "id": rid, "result": result}
        elif method == "initialize":
            reply = {"jsonrpc": "2.0", "id": rid, "result": {
                "protocolVersion": "2025-11-25", "capabilities": {"tools": {}},
                "serverInfo": {"name": "bench-fast", "version": "1"}}}
        elif method == "tools/list":
            reply = {"jsonrpc": "2.0", "id": rid, "result": {"tools": tools}}
        elif method == "ping":
            reply = {"jsonrpc": "2.0", "id": rid, "result": {}}
        else:
            reply = {"jsonrpc": "2.0", "id": rid, "error": {"code": -32601, "message": "Method not found"}}
        out.write(dumps(reply) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
