"""System info, health probes and Prometheus metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from ..models import State
from .schemas import ProbeStatus, ReadyStatus, StartupStatus, SystemResponse
from .servers import hangar_of

router = APIRouter()


@router.get("/api/system", response_model=SystemResponse, tags=["system"],
            summary="System info (uptime, version, metrics summary)")
async def system(request: Request) -> dict[str, Any]:
    return {"system": hangar_of(request).system_info()}


@router.get("/health/live", response_model=ProbeStatus, tags=["health"], summary="Liveness probe")
async def live() -> dict[str, Any]:
    return {"status": "healthy"}


@router.get("/health/ready", response_model=ReadyStatus, tags=["health"],
            responses={503: {"model": ReadyStatus}}, summary="Readiness probe")
async def ready(request: Request) -> JSONResponse:
    hangar = hangar_of(request)
    servers = list(hangar.servers.values())
    body: dict[str, Any] = {
        "status": "healthy",
        "startup_complete": hangar.startup_complete,
        "ready_mcp_servers": sum(1 for s in servers if s.state == State.READY),
        "total_mcp_servers": len(servers),
    }
    if not hangar.startup_complete or hangar.stopping:
        body["status"] = "starting" if not hangar.stopping else "stopping"
        return JSONResponse(body, status_code=503)
    if not await hangar.store.healthy():
        body["status"] = "unhealthy"
        body["reason"] = "the state database is not usable"
        return JSONResponse(body, status_code=503)
    return JSONResponse(body)


@router.get("/health/startup", response_model=StartupStatus, tags=["health"],
            responses={503: {"model": StartupStatus}}, summary="Startup probe")
async def startup(request: Request) -> JSONResponse:
    hangar = hangar_of(request)
    body = {"status": "healthy" if hangar.startup_complete else "starting",
            "startup_complete": hangar.startup_complete, "uptime_seconds": round(hangar.uptime_s(), 3)}
    return JSONResponse(body, status_code=200 if hangar.startup_complete else 503)


@router.get("/metrics", tags=["metrics"], summary="Prometheus metrics",
            response_class=Response,
            responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}},
                             "description": "Prometheus text exposition format"}})
async def metrics(request: Request) -> Response:
    return Response(request.app.state.metrics.render(), media_type=CONTENT_TYPE_LATEST)
