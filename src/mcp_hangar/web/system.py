"""System info, health probes and Prometheus metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from . import probes
from .schemas import ProbeStatus, ReadyStatus, StartupStatus, SystemResponse
from .servers import hangar_of

router = APIRouter()


@router.get("/api/system", response_model=SystemResponse, tags=["system"],
            summary="System info (uptime, version, metrics summary)")
async def system(request: Request) -> dict[str, Any]:
    return {"system": hangar_of(request).system_info()}


@router.get("/health/live", response_model=ProbeStatus, tags=["health"], summary="Liveness probe")
async def live() -> JSONResponse:
    return _answer(probes.live())


@router.get("/health/ready", response_model=ReadyStatus, tags=["health"],
            responses={503: {"model": ReadyStatus}}, summary="Readiness probe")
async def ready(request: Request) -> JSONResponse:
    return _answer(await probes.ready(hangar_of(request)))


@router.get("/health/startup", response_model=StartupStatus, tags=["health"],
            responses={503: {"model": StartupStatus}}, summary="Startup probe")
async def startup(request: Request) -> JSONResponse:
    return _answer(probes.startup(hangar_of(request)))


def _answer(probe: probes.Probe) -> JSONResponse:
    status, body = probe
    return JSONResponse(body, status_code=status)


@router.get("/metrics", tags=["metrics"], summary="Prometheus metrics",
            response_class=Response,
            responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}},
                             "description": "Prometheus text exposition format"}})
async def metrics(request: Request) -> Response:
    return Response(request.app.state.metrics.render(), media_type=CONTENT_TYPE_LATEST)
