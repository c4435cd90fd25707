"""REST routes under /api/discovery.

Every route answers 404 ``DiscoveryNotConfigured`` (in the envelope) when the config file has no
``discovery:`` block, before anything else about the request is looked at.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Request
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic import ValidationError as PydanticValidationError
from starlette.responses import Response

from ..config import DiscoverySourceSpec
from ..discovery.base import format_pydantic
from ..discovery.manager import DiscoveryManager
from ..errors import DiscoveryNotConfigured, ValidationError
from .schemas import _check_json, error_responses

# ----------------------------------------------------------------------------- models


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _carriable(cls, data: Any) -> Any:
        _check_json(data, "")  # NUL, lone surrogates, huge integers: refused here, not by the store
        return data


class RegisterSourceRequest(_Body):
    source_type: str = Field(min_length=1, max_length=64, description="docker, filesystem, entrypoint or a "
                             "plug-in type")
    mode: Literal["additive", "authoritative"]
    enabled: bool = True
    config: dict[str, Any] = Field(default_factory=dict)
    id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="default: generated")


class UpdateSourceRequest(_Body):
    source_type: str | None = Field(default=None, min_length=1, max_length=64)
    mode: Literal["additive", "authoritative"] | None = None
    enabled: bool | None = None
    config: dict[str, Any] | None = None


class EnableRequest(_Body):
    enabled: bool


class DiscoveredServer(BaseModel):
    mcp_server_id: str
    name: str
    status: str
    source_id: str
    source_type: str
    mode: str | None
    group: str | None
    origin: str
    fingerprint: str
    reason: str | None
    discovered_at: float
    last_seen: float
    decided_at: float | None
    present: bool
    lost_at: float | None
    registered: bool
    update: bool
    spec: dict[str, Any] | None
    tools: list[str | None]


class SourceServer(BaseModel):
    name: str
    status: str
    present: bool
    registered: bool


class SourceInfo(BaseModel):
    id: str
    source_id: str
    source_type: str
    mode: str
    is_healthy: bool
    is_enabled: bool
    is_watching: bool
    last_discovery: float | None
    mcp_servers_count: int
    error_message: str | None
    origin: str
    config: dict[str, Any]
    cycles: int
    errors: int
    last_cycle_duration_ms: float | None
    mcp_servers: list[SourceServer]


class SourceList(BaseModel):
    sources: list[SourceInfo]


class SourceRegistered(BaseModel):
    source_id: str
    registered: bool


class SourceUpdated(BaseModel):
    source_id: str
    updated: bool
    source: SourceInfo


class SourceRemoved(BaseModel):
    source_id: str
    deregistered: bool


class SourceEnabled(BaseModel):
    source_id: str
    enabled: bool


class ScanResult(BaseModel):
    source_id: str
    scan_triggered: bool
    mcp_servers_found: int
    discovered: list[str]
    pending: list[str]
    quarantined: list[str]
    approved: list[str]
    refused: dict[str, str]


class PendingList(BaseModel):
    pending: list[DiscoveredServer]
    total: int


class QuarantinedList(BaseModel):
    quarantined: dict[str, DiscoveredServer]
    total: int


class Decision(BaseModel):
    mcp_server_id: str
    approved: bool = False
    rejected: bool = False
    status: str
    source_id: str
    state: str | None = None


# ----------------------------------------------------------------------------- routes


class DiscoveryRoute(APIRoute):
    """Answers 404 ``DiscoveryNotConfigured`` before validating anything when discovery is off."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            if request.app.state.hangar.discovery is None:
                raise DiscoveryNotConfigured()
            return await handler(request)

        return guarded


def manager_of(request: Request) -> DiscoveryManager:
    manager: DiscoveryManager | None = request.app.state.hangar.discovery
    if manager is None:
        raise DiscoveryNotConfigured()
    return manager


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return error_responses(404, 413, 422, 500, *codes)


SourceId = Annotated[str, Path(description="discovery source id", max_length=200)]
Name = Annotated[str, Path(description="the discovered MCP server's name", max_length=200)]
router = APIRouter(prefix="/api/discovery", tags=["discovery"], route_class=DiscoveryRoute)


def _source_row(manager: DiscoveryManager, source_id: str) -> dict[str, Any]:
    return manager.get_source(source_id).row(manager.all_records())


@router.get("/sources", response_model=SourceList, responses=_errors(), summary="List discovery sources")
async def list_sources(request: Request) -> dict[str, Any]:
    manager = manager_of(request)
    records = manager.all_records()
    return {"sources": [s.row(records) for s in manager.sources.values()]}


@router.post("/sources", status_code=201, response_model=SourceRegistered, responses=_errors(409, 503),
             summary="Register a new source")
async def register_source(request: Request, body: RegisterSourceRequest) -> dict[str, Any]:
    manager = manager_of(request)
    try:
        spec = DiscoverySourceSpec.model_validate(body.model_dump(exclude_none=True))
    except PydanticValidationError as exc:
        raise ValidationError(format_pydantic(exc)) from None
    source_id = await manager.add_source(spec)
    return {"source_id": source_id, "registered": True}


@router.put("/sources/{source_id}", response_model=SourceUpdated, responses=_errors(503),
            summary="Update a source")
async def update_source(request: Request, source_id: SourceId, body: UpdateSourceRequest) -> dict[str, Any]:
    manager = manager_of(request)
    await manager.update_source(source_id, body.model_dump(exclude_none=True))
    return {"source_id": source_id, "updated": True, "source": _source_row(manager, source_id)}


@router.delete("/sources/{source_id}", response_model=SourceRemoved, responses=_errors(503),
               summary="Remove a source")
async def remove_source(request: Request, source_id: SourceId) -> dict[str, Any]:
    await manager_of(request).remove_source(source_id)
    return {"source_id": source_id, "deregistered": True}


@router.post("/sources/{source_id}/scan", response_model=ScanResult, responses=_errors(503),
             summary="Trigger immediate scan; answers what it found")
async def scan_source(request: Request, source_id: SourceId) -> dict[str, Any]:
    return await manager_of(request).scan(source_id, "request")


@router.put("/sources/{source_id}/enable", response_model=SourceEnabled, responses=_errors(503),
            summary="Enable/disable a source")
async def enable_source(request: Request, source_id: SourceId, body: EnableRequest) -> dict[str, Any]:
    await manager_of(request).update_source(source_id, {"enabled": body.enabled})
    return {"source_id": source_id, "enabled": body.enabled}


@router.get("/pending", response_model=PendingList, responses=_errors(),
            summary="List MCP servers pending approval")
async def list_pending(request: Request) -> dict[str, Any]:
    rows = [r.row() for r in manager_of(request).pending()]
    return {"pending": rows, "total": len(rows)}


@router.get("/quarantined", response_model=QuarantinedList, responses=_errors(),
            summary="List quarantined MCP servers, with the reason of each")
async def list_quarantined(request: Request) -> dict[str, Any]:
    rows = {r.name: r.row() for r in manager_of(request).quarantined()}
    return {"quarantined": rows, "total": len(rows)}


@router.post("/approve/{name}", response_model=Decision, responses=_errors(409, 503),
             summary="Approve a pending MCP server")
async def approve(request: Request, name: Name) -> dict[str, Any]:
    manager = manager_of(request)
    record = await manager.approve(name)
    server = manager.hangar.servers.get(name)
    return {"mcp_server_id": name, "approved": True, "status": record.status, "source_id": record.source_id,
            "state": server.state.value if server else None}


@router.post("/reject/{name}", response_model=Decision, responses=_errors(503),
             summary="Reject a pending MCP server")
async def reject(request: Request, name: Name) -> dict[str, Any]:
    record = await manager_of(request).reject(name)
    return {"mcp_server_id": name, "rejected": True, "status": record.status, "source_id": record.source_id}
