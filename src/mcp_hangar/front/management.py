"""The ``hangar_*`` management tools offered to MCP clients beside the upstream tools.

Names and result shapes follow the older public implementation. Every result is JSON text content
plus the same object as ``structuredContent``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson

from ..discovery.tools import DISCOVERY_TOOLS, discovery_handlers
from ..errors import HangarError, ValidationError
from ..events import new_id
from ..models import State
from ..views import server_detail, server_summary

if TYPE_CHECKING:
    from ..auth.guard import Guard
    from ..auth.permissions import Principal
    from ..hangar import Hangar

JsonObject = dict[str, Any]
_SERVER_ARG = {"mcp_server": {"type": "string", "description": "MCP server id"}}


def _tool(name: str, description: str, properties: JsonObject | None = None,
          required: list[str] | None = None, read_only: bool = True) -> JsonObject:
    schema: JsonObject = {"type": "object", "properties": properties or {}}
    if required:
        schema["required"] = required
    return {
        "name": name,
        "description": description,
        "inputSchema": schema,
        "annotations": {"readOnlyHint": read_only, "openWorldHint": False},
    }


MANAGEMENT_TOOLS: list[JsonObject] = [
    _tool("hangar_list", "List the MCP servers Hangar manages, with state and tool counts.",
          {"state_filter": {"type": "string", "enum": [s.value for s in State]}}),
    _tool("hangar_status", "Overview of the fleet: every server's state, health and why it is not ready."),
    _tool("hangar_start", "Start an MCP server and wait until it is ready.", _SERVER_ARG, ["mcp_server"],
          read_only=False),
    _tool("hangar_stop", "Stop a running MCP server.", _SERVER_ARG, ["mcp_server"], read_only=False),
    _tool("hangar_tools", "List the tools of one MCP server with their schemas.", _SERVER_ARG, ["mcp_server"]),
    _tool("hangar_details", "Everything Hangar knows about one MCP server.", _SERVER_ARG, ["mcp_server"]),
    _tool("hangar_health", "Health of every MCP server (consecutive failures, success rate, backoff)."),
    _tool(
        "hangar_call",
        "Call several tools on one or more MCP servers concurrently and return every result with timings.",
        {
            "calls": {
                "type": "array", "minItems": 1, "maxItems": 100,
                "items": {
                    "type": "object",
                    "properties": {
                        "mcp_server": {"type": "string", "description": "MCP server id or group id"},
                        "tool": {"type": "string"},
                        "arguments": {"type": "object"},
                        "timeout": {"type": "number", "minimum": 0.1, "maximum": 300},
                    },
                    "required": ["mcp_server", "tool"],
                },
            },
            "max_concurrency": {"type": "integer", "minimum": 1, "maximum": 50, "default": 10},
            "timeout": {"type": "number", "minimum": 1, "maximum": 300, "default": 60},
            "fail_fast": {"type": "boolean", "default": False},
        },
        ["calls"],
        read_only=False,
    ),
    _tool("hangar_group_list", "List the server groups: state, strategy, circuit and every member's health."),
    _tool("hangar_group_rebalance", "Re-check every member of a group, re-admit the recovered ones and reset its "
          "circuit breaker.", {"group": {"type": "string", "description": "group id"}}, ["group"], read_only=False),
    _tool("hangar_reload_config", "Re-read the config file and apply it: servers added, removed, restarted (launch "
          "settings changed) or updated in place; an invalid file changes nothing and the error names the line.",
          {"graceful": {"type": "boolean", "default": True,
                        "description": "true: servers that restart or go finish their running calls "
                        "first (bounded by config_reload.drain_timeout_s); false: they stop at once"}},
          read_only=False),
    *DISCOVERY_TOOLS,
    _tool("hangar_whoami", "The identity this MCP session acts as."),
]


def json_result(payload: JsonObject, is_error: bool = False) -> JsonObject:
    return {
        "content": [{"type": "text", "text": orjson.dumps(payload).decode()}],
        "structuredContent": payload,
        "isError": is_error,
    }


def _server_arg(args: JsonObject) -> str:
    value = args.get("mcp_server")
    if not isinstance(value, str) or not value:
        raise ValidationError("argument 'mcp_server' (a server id) is required")
    return value


class Management:
    """Runs management tools against the Hangar core."""

    def __init__(self, hangar: Hangar, guard: Guard | None = None) -> None:
        self.hangar = hangar
        self.guard = guard
        self._handlers: dict[str, Callable[[JsonObject], Awaitable[JsonObject]]] = {
            "hangar_list": self._list,
            "hangar_status": self._status,
            "hangar_start": self._start,
            "hangar_stop": self._stop,
            "hangar_tools": self._tools,
            "hangar_details": self._details,
            "hangar_health": self._health,
            "hangar_call": self._call,
            "hangar_group_list": self._group_list,
            "hangar_group_rebalance": self._group_rebalance,
            "hangar_reload_config": self._reload_config,
            "hangar_whoami": self._whoami,
            **discovery_handlers(hangar),
        }

    async def call(self, name: str, arguments: JsonObject, principal: Principal | None = None) -> JsonObject:
        """Run one tool. Hangar errors become ``isError`` results the model can read and act on.

        The two tools that depend on who calls get the caller's ``principal``."""
        handler = self._handlers[name]
        try:
            if name == "hangar_call":
                return json_result(await self._call(arguments, principal))
            if name == "hangar_whoami" and self.guard is not None:
                return json_result(self.guard.whoami(principal))
            return json_result(await handler(arguments))
        except HangarError as exc:
            return json_result({"error": exc.error_name, "message": exc.message}, is_error=True)

    async def _list(self, args: JsonObject) -> JsonObject:
        raw = args.get("state_filter")
        try:
            state = State(raw) if raw else None
        except ValueError:
            raise ValidationError(f"state_filter must be one of {[s.value for s in State]}") from None
        return {"mcp_servers": [server_summary(s) for s in self.hangar.list_servers(state)]}

    async def _status(self, _: JsonObject) -> JsonObject:
        info = self.hangar.system_info()
        servers = []
        for s in self.hangar.list_servers():
            entry: JsonObject = {"mcp_server_id": s.server_id, "state": s.state.value, "tools_count": len(s.tools),
                     "tools_origin": s.tools_origin, "health_status": s.health_status()}
            if s.state == State.DEAD:
                entry["why"] = s.dead_message
                entry["retry_allowed_at"] = s.retry_allowed_at
            elif s.state == State.DEGRADED:
                entry["why"] = f"{s.consecutive_failures} consecutive failures"
            servers.append(entry)
        return {"status": "ok", "summary": info, "mcp_servers": servers}

    async def _start(self, args: JsonObject) -> JsonObject:
        server = await self.hangar.start_server(_server_arg(args))
        return {"mcp_server": server.server_id, "state": server.state.value,
                "tools": [t["name"] for t in server.tools]}

    async def _stop(self, args: JsonObject) -> JsonObject:
        server_id = _server_arg(args)
        was_running = await self.hangar.stop_server(server_id, "user_request")
        return {"stopped": server_id, "was_running": was_running, "reason": "user_request"}

    async def _tools(self, args: JsonObject) -> JsonObject:
        server = self.hangar.get(_server_arg(args))
        tools = self.hangar.auth.permitted_tools(server.server_id, server.tools)  # as REST: policy applied
        return {"mcp_server": server.server_id, "tools_origin": server.tools_origin, "tools": tools}

    async def _details(self, args: JsonObject) -> JsonObject:
        return server_detail(self.hangar.get(_server_arg(args)))

    async def _health(self, _: JsonObject) -> JsonObject:
        return {"mcp_servers": [s.health() for s in self.hangar.list_servers()]}

    async def _group_list(self, _: JsonObject) -> JsonObject:
        return {"groups": [g.view() for g in self.hangar.groups.all()]}

    async def _group_rebalance(self, args: JsonObject) -> JsonObject:
        group_id = args.get("group")
        if not isinstance(group_id, str) or not group_id:
            raise ValidationError("argument 'group' (a group id) is required")
        group = await self.hangar.groups.rebalance(group_id)
        return {"status": "rebalanced", "group_id": group_id, "group": group.view()}

    async def _reload_config(self, args: JsonObject) -> JsonObject:
        graceful = args.get("graceful", True)
        if not isinstance(graceful, bool):
            raise ValidationError("'graceful' must be a boolean")
        return {"status": "reloaded", "result": await self.hangar.reloader.reload("mcp_tool", graceful=graceful)}

    async def _whoami(self, _: JsonObject) -> JsonObject:
        return {"authenticated": False, "principal": None, "auth_enabled": False}

    async def _call(self, args: JsonObject, principal: Principal | None = None) -> JsonObject:
        calls = args.get("calls")
        if not isinstance(calls, list) or not 1 <= len(calls) <= 100:
            raise ValidationError("'calls' must be a list of 1 to 100 {mcp_server, tool, arguments} objects")
        max_concurrency = args.get("max_concurrency", 10)
        timeout = args.get("timeout", 60)
        fail_fast = bool(args.get("fail_fast", False))
        if not isinstance(max_concurrency, int) or not 1 <= max_concurrency <= 50:
            raise ValidationError("'max_concurrency' must be an integer from 1 to 50")
        if not _seconds(timeout, 1):
            raise ValidationError("'timeout' must be a number of seconds from 1 to 300")
        for i, call in enumerate(calls):
            if not isinstance(call, dict) or not isinstance(call.get("mcp_server"), str) \
                    or not isinstance(call.get("tool"), str):
                raise ValidationError(f"calls[{i}] needs string 'mcp_server' and 'tool'")
            if "arguments" in call and not isinstance(call["arguments"], dict):
                raise ValidationError(f"calls[{i}].arguments must be an object")
            if call.get("timeout") is not None and not _seconds(call["timeout"], 0):  # 0: the batch's
                raise ValidationError(f"calls[{i}].timeout must be a number of seconds up to 300")
        batch_id = new_id()  # 32 hex digits, unique, without a uuid4's system call
        began = time.perf_counter()
        if len(calls) == 1:  # one call: no task, semaphore or failure flag of its own
            done = [await self._one(0, calls[0], batch_id, timeout, principal, began)]
        else:
            slots = asyncio.Semaphore(max_concurrency)
            failed = asyncio.Event()

            async def run(index: int, call: JsonObject) -> JsonObject:
                t0 = time.perf_counter()
                async with slots:
                    if fail_fast and failed.is_set():
                        entry = _entry(index, call, batch_id, False, None, "skipped after an earlier failure",
                                       "Cancelled", t0)
                    else:
                        entry = await self._one(index, call, batch_id, timeout, principal, t0)
                        if not entry["success"]:
                            failed.set()
                return entry

            done = list(await asyncio.gather(*(run(i, c) for i, c in enumerate(calls))))
        succeeded = sum(1 for r in done if r["success"])
        return {
            "batch_id": batch_id,
            "success": succeeded == len(done),
            "total": len(done),
            "succeeded": succeeded,
            "failed": len(done) - succeeded,
            "elapsed_ms": round((time.perf_counter() - began) * 1000, 3),
            "results": done,
        }

    async def _one(self, index: int, call: JsonObject, batch_id: str, timeout: float, principal: Principal | None,
                   t0: float) -> JsonObject:
        """One call of a batch, bounded by its own timeout and the batch's: its entry."""
        server, tool = call["mcp_server"], call["tool"]
        try:
            if self.guard is not None and self.guard.active:  # the checks of a tools/call
                self.guard.check_target(principal, server, tool)
            async with asyncio.timeout(min(float(call.get("timeout") or timeout), float(timeout))):
                result = await self.hangar.call_tool(server, tool, call.get("arguments") or {})
        except TimeoutError:
            return _entry(index, call, batch_id, False, None, "timed out", "TimeoutError", t0)
        except HangarError as exc:
            return _entry(index, call, batch_id, False, None, exc.message, exc.error_name, t0)
        return _entry(index, call, batch_id, not result.get("isError"), result, None, None, t0)


def _seconds(value: Any, low: float) -> bool:
    """Whether ``value`` is a number of seconds from ``low`` to 300 (a boolean is not one)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and low <= value <= 300


def _entry(index: int, call: JsonObject, batch_id: str, success: bool, result: JsonObject | None,
           error: str | None, error_type: str | None, t0: float) -> JsonObject:
    return {"index": index, "call_id": f"{batch_id}:{index}", "mcp_server": call["mcp_server"], "tool": call["tool"],
            "success": success, "result": result, "error": error, "error_type": error_type,
            "elapsed_ms": round((time.perf_counter() - t0) * 1000, 3)}
