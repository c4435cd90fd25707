"""A dependency-free MCP server over stdio (newline-delimited JSON-RPC) with one tool, ``greet``."""

from __future__ import annotations

import json
import sys
from typing import Any

TOOL = {"name": "greet", "description": "Greet someone.",
        "inputSchema": {"type": "object", "properties": {"who": {"type": "string"}}, "required": ["who"]}}


def answer(request: dict[str, Any]) -> dict[str, Any] | None:
    method, rid = request.get("method"), request.get("id")
    if rid is None:
        return None  # a notification
    if method == "initialize":
        version = request.get("params", {}).get("protocolVersion", "2025-06-18")
        result: dict[str, Any] = {"protocolVersion": version, "capabilities": {"tools": {}},
                                  "serverInfo": {"name": "ep-demo", "version": "0.1.0"}}
    elif method == "tools/list":
        result = {"tools": [TOOL]}
    elif method == "tools/call":
        who = request.get("params", {}).get("arguments", {}).get("who", "world")
        result = {"content": [{"type": "text", "text": f"hello {who}"}], "isError": False}
    elif method == "ping":
        result = {}
    else:
        return {"jsonrpc": "2.0", "id": rid, "error": {"code": -32601, "message": f"no method {method}"}}
    return {"jsonrpc": "2.0", "id": rid, "result": result}


def main() -> None:
    for line in sys.stdin:
        try:
            request = json.loads(line)
        except ValueError:
            continue
        reply = answer(request) if isinstance(request, dict) else None
        if reply is not None:
            sys.stdout.write(json.dumps(reply) + "\n")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
