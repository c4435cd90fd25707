"""REST routes under /api/mcp_servers."""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Body, Path, Query, Request

from ..config import ServerSpec
from ..errors import ValidationError
from ..hangar import Hangar, parse_spec
from ..models import State
from ..views import server_detail, server_summary
from .log_follow import log_entry
from .schemas import (
    CreateResult,
    CreateServerRequest,
    DeleteResult,
    HealthInfo,
    HistoryPage,
    LogList,
    ServerDetail,
    ServerList,
    StartResult,
    StopRequest,
    StopResult,
    ToolList,
    UpdateResult,
    UpdateServerRequest,
    error_responses,
)

if TYPE_CHECKING:
    from pydantic import BaseModel as UpdateBody
else:
    UpdateBody = UpdateServerRequest  # built at import time; FastAPI validates with the real model

ServerId = Annotated[str, Path(description="MCP server id", max_length=200)]
ERRORS = error_responses(404, 413, 422, 500)
CALL_ERRORS = error_responses(404, 413, 422, 500, 502, 503, 504)


def hangar_of(request: Request) -> Hangar:
    hangar: Hangar = request.app.state.hangar
    return hangar


def _encode_cursor(position: int) -> str:
    return base64.urlsafe_b64encode(f"h:{position}".encode()).decode().rstrip("=")


_MAX_POSITION = 2**63 - 1  # SQLite's INTEGER range


def _decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        kind, _, value = raw.partition(":")
        position = int(value)
        if kind != "h" or not value.isdigit() or not 1 <= position <= _MAX_POSITION:
            raise ValueError
        return position
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ValidationError("cursor: not a cursor returned by this endpoint") from None


router = APIRouter(prefix="/api/mcp_servers", tags=["mcp_servers"])


@router.get("", response_model=ServerList, responses=ERRORS, summary="List all MCP servers")
async def list_servers(request: Request, state: State | None = None) -> dict[str, Any]:
    servers = [server_summary(s) for s in hangar_of(request).list_servers(state)]
    return {"mcp_servers": servers, "total": len(servers)}


@router.post("", status_code=201, response_model=CreateResult, summary="Create a new MCP server",
             responses={**ERRORS, **error_responses(409)})
async def create_server(request: Request, body: CreateServerRequest) -> dict[str, Any]:
    data = body.model_dump(exclude_unset=True)
    server_id = data.pop("mcp_server_id")
    spec = parse_spec(data)
    await hangar_of(request).create_server(server_id, spec)
    return {"mcp_server_id": server_id, "created": True}


@router.get("/{server_id}", response_model=ServerDetail, responses=ERRORS, summary="Get MCP server details")
async def get_server(request: Request, server_id: ServerId) -> dict[str, Any]:
    return server_detail(hangar_of(request).get(server_id))


@router.put("/{server_id}", response_model=UpdateResult, responses=ERRORS,
            summary="Update MCP server configuration")
async def update_server(
    request: Request, server_id: ServerId, body: Annotated[UpdateBody, Body()]
) -> dict[str, Any]:
    # null resets a field to its default
    changes = {k: ServerSpec.model_fields[k].get_default(call_default_factory=True) if v is None else v
               for k, v in body.model_dump(exclude_unset=True).items()}
    hangar = hangar_of(request)
    server, changed, restarted = await hangar.update_server(server_id, changes)
    return {
        "mcp_server_id": server_id,
        "updated": True,
        "changed_fields": changed,
        "restarted": restarted,
        "persisted": server.source == "api",
        "state": server.state.value,
    }


@router.delete("/{server_id}", response_model=DeleteResult, responses=ERRORS,
               summary="Delete a MCP server (stops it first)")
async def delete_server(request: Request, server_id: ServerId) -> dict[str, Any]:
    await hangar_of(request).delete_server(server_id)
    return {"mcp_server_id": server_id, "deleted": True}


@router.post("/{server_id}/start", response_model=StartResult, responses=CALL_ERRORS,
             summary="Start a MCP server; returns when it is ready")
async def start_server(request: Request, server_id: ServerId) -> dict[str, Any]:
    server = await hangar_of(request).start_server(server_id)
    return {"mcp_server": server_id, "state": server.state.value, "tools": [t["name"] for t in server.tools]}


@router.post("/{server_id}/stop", response_model=StopResult, responses=ERRORS, summary="Stop a MCP server")
async def stop_server(
    request: Request, server_id: ServerId, body: Annotated[StopRequest | None, Body()] = None
) -> dict[str, Any]:
    reason = body.reason if body else "user_request"
    hangar = hangar_of(request)
    was_running = await hangar.stop_server(server_id, reason)
    return {"stopped": server_id, "was_running": was_running, "reason": reason,
            "state": hangar.get(server_id).state.value}


@router.get("/{server_id}/tools", response_model=ToolList, responses=ERRORS, summary="List MCP server tools")
async def list_tools(request: Request, server_id: ServerId) -> dict[str, Any]:
    hangar = hangar_of(request)
    server = hangar.get(server_id)
    tools = hangar.auth.permitted_tools(server_id, server.tools)  # the tool access policy hides some
    return {"mcp_server_id": server_id, "tools_origin": server.tools_origin, "tools": tools}


@router.get("/{server_id}/health", response_model=HealthInfo, responses=ERRORS, summary="Get health status")
async def get_health(request: Request, server_id: ServerId) -> dict[str, Any]:
    return hangar_of(request).get(server_id).health()


@router.get("/{server_id}/logs", response_model=LogList, responses=ERRORS,
            summary="Get buffered log lines, newest last",
            description="With `?follow=true` the answer is a Server-Sent Events stream: the newest `lines` "
                        "lines, then every new line as it arrives (see docs/observability.md).")
async def get_logs(
    request: Request, server_id: ServerId, lines: Annotated[int, Query(ge=1, le=1000)] = 100,
    # Not in the OpenAPI document: an endless stream cannot be described (or fuzzed) as a JSON answer.
    follow: Annotated[bool, Query(include_in_schema=False)] = False,
) -> Any:
    server = hangar_of(request).get(server_id)
    if follow:
        return request.app.state.log_followers.response(server, lines, request.scope)
    logs = [log_entry(server_id, ln) for ln in list(server.logs)[-lines:]]
    return {"mcp_server_id": server_id, "logs": logs, "count": len(logs)}


@router.get("/{server_id}/tools/history", response_model=HistoryPage, responses=ERRORS,
            summary="Tool invocation history, newest first")
async def tool_history(
    request: Request,
    server_id: ServerId,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(max_length=100)] = None,
    tool: Annotated[str | None, Query(max_length=200)] = None,
    outcome: Annotated[str | None, Query(pattern="^(success|error|failure)$")] = None,
    since: Annotated[float | None, Query(description="epoch seconds", allow_inf_nan=False)] = None,
    until: Annotated[float | None, Query(description="epoch seconds", allow_inf_nan=False)] = None,
) -> dict[str, Any]:
    hangar = hangar_of(request)
    hangar.get(server_id)
    before = _decode_cursor(cursor) if cursor else None
    await hangar.history.flush()
    # One row more than asked tells whether another page exists.
    rows, total = await hangar.store.history(server_id, limit=limit + 1, before=before, tool=tool,
                                             outcome=outcome, since=since, until=until)
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = _encode_cursor(rows[-1][0]) if more else None
    return {"mcp_server_id": server_id, "history": [r for _, r in rows], "total": total,
            "next_cursor": next_cursor}
