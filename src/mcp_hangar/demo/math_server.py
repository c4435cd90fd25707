"""The bundled demo MCP server ``math``: arithmetic tools over stdio, in both protocol eras.

It uses the standard library only, so it starts in a few tens of milliseconds (a server built on the
SDK spends most of a second importing it), which is what a first call through Hangar feels.
- legacy era: ``initialize`` then requests;
- 2026-07-28 era: ``server/discover`` and the per-request ``_meta`` envelope, results with
  ``resultType`` (and ``ttlMs``/``cacheScope`` on lists).
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable
from typing import Any

NAME, VERSION = "math", "1.1.0"
LEGACY = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")
MODERN = "2026-07-28"
META_VERSION = "io.modelcontextprotocol/protocolVersion"
SERVER_INFO = {"name": NAME, "version": VERSION}
NUMBER = {"type": "number"}


def _divide(a: float, b: float) -> float:
    if b == 0:
        raise ArithmeticError("division by zero")
    return a / b


def _power(a: float, b: float) -> float:
    try:
        return float(math.pow(a, b))
    except (OverflowError, ValueError) as exc:
        raise ArithmeticError(str(exc)) from None


OPERATIONS: dict[str, tuple[str, tuple[str, str], Callable[[float, float], float]]] = {
    "add": ("Add two numbers.", ("a", "b"), lambda a, b: a + b),
    "subtract": ("Subtract b from a.", ("a", "b"), lambda a, b: a - b),
    "multiply": ("Multiply two numbers.", ("a", "b"), lambda a, b: a * b),
    "divide": ("Divide a by b. Dividing by zero is an error.", ("a", "b"), _divide),
    "power": ("Raise base to the power of exponent.", ("base", "exponent"), _power),
}

TOOLS = [
    {
        "name": name,
        "description": description,
        "inputSchema": {"type": "object", "properties": {p: NUMBER for p in params}, "required": list(params)},
        "outputSchema": {"type": "object", "properties": {"result": NUMBER}, "required": ["result"]},
        "annotations": {"readOnlyHint": True, "idempotentHint": True, "openWorldHint": False},
    }
    for name, (description, params, _) in OPERATIONS.items()
]


class RpcError(Exception):
    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code, self.message, self.data = code, message, data


def _number(args: dict[str, Any], key: str) -> float:
    value = args.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RpcError(-32602, f"argument {key!r} must be a number")
    return value


def call_tool(params: dict[str, Any]) -> dict[str, Any]:
    name = params.get("name")
    if name not in OPERATIONS:
        raise RpcError(-32602, f"Unknown tool: {name}")
    arguments = params.get("arguments") or {}
    if not isinstance(arguments, dict):
        raise RpcError(-32602, "arguments must be an object")
    _, (first, second), operation = OPERATIONS[name]
    try:
        value = operation(_number(arguments, first), _number(arguments, second))
    except ArithmeticError as exc:
        return {"content": [{"type": "text", "text": f"Error: {exc}"}], "isError": True}
    integers = all(isinstance(arguments[k], int) for k in (first, second))
    if integers and float(value).is_integer() and abs(value) < 2**53:
        value = int(value)  # 2 + 3 is 5, not 5.0
    return {"content": [{"type": "text", "text": json.dumps(value)}], "structuredContent": {"result": value},
            "isError": False}


def handle(message: dict[str, Any]) -> dict[str, Any] | None:
    method, params = message.get("method"), message.get("params") or {}
    if "id" not in message or not isinstance(method, str):
        return None  # notifications (initialized, cancelled) and responses need no answer
    meta = params.get("_meta") if isinstance(params, dict) else None
    modern = isinstance(meta, dict) and META_VERSION in meta
    try:
        if not isinstance(params, dict):
            raise RpcError(-32602, "params must be an object")
        if modern and meta is not None and meta.get(META_VERSION) != MODERN:
            raise RpcError(-32022, "Unsupported protocol version",
                           {"supported": [MODERN], "requested": meta.get(META_VERSION)})
        if method == "initialize" and not modern:
            requested = params.get("protocolVersion")
            result: dict[str, Any] = {
                "protocolVersion": requested if requested in LEGACY else LEGACY[-1],
                "capabilities": {"tools": {"listChanged": False}}, "serverInfo": SERVER_INFO,
                "instructions": "Basic arithmetic on two numbers."}
        elif method == "server/discover":
            result = {"supportedVersions": [MODERN], "capabilities": {"tools": {"listChanged": False}},
                      "instructions": "Basic arithmetic on two numbers.", "ttlMs": 3600000, "cacheScope": "public"}
        elif method == "ping" and not modern:
            result = {}
        elif method == "tools/list":
            result = {"tools": TOOLS}
            if modern:
                result.update(ttlMs=3600000, cacheScope="public")
        elif method == "tools/call":
            result = call_tool(params)
        else:
            raise RpcError(-32601, f"Method not found: {method}")
    except RpcError as exc:
        error: dict[str, Any] = {"code": exc.code, "message": exc.message}
        if exc.data is not None:
            error["data"] = exc.data
        return {"jsonrpc": "2.0", "id": message["id"], "error": error}
    if modern or method == "server/discover":
        result["resultType"] = "complete"
        result["_meta"] = {"io.modelcontextprotocol/serverInfo": SERVER_INFO}
    return {"jsonrpc": "2.0", "id": message["id"], "result": result}


def main() -> None:
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            message = json.loads(line)
        except ValueError:
            reply: dict[str, Any] | None = {"jsonrpc": "2.0", "id": None,
                                            "error": {"code": -32700, "message": "Parse error"}}
        else:
            reply = handle(message) if isinstance(message, dict) else {
                "jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "Invalid request"}}
        if reply is not None:
            sys.stdout.write(json.dumps(reply) + "\n")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
