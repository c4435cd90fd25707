"""REST routes under /api/config: the sanitized configuration, reload, export, backup and diff."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Body, Request
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from ..config_backup import backup, backups
from ..config_diff import config_diff
from ..config_export import render
from ..config_state import document_of_state, sanitize
from .schemas import error_responses
from .servers import hangar_of

router = APIRouter(tags=["config"])


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return error_responses(*codes, 413, 422)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ReloadRequest(_Strict):
    graceful: StrictBool = Field(default=True, description=(
        "true: a server that restarts or is removed finishes its running calls first (at most "
        "config_reload.drain_timeout_s) while new calls wait; false: it is stopped at once and its running "
        "calls fail with 503"))


class ExportRequest(_Strict):
    include_secrets: StrictBool = Field(default=False, description="Write literal secrets instead of redacting them")


class ConfigView(BaseModel):
    config: dict[str, Any] = Field(description="The effective configuration, secret values replaced by ***")


class ReloadResponse(BaseModel):
    status: str = Field(description="reloaded")
    result: dict[str, Any] = Field(description="success, config_path, mcp_servers_added/removed/updated/"
                                   "restarted/unchanged, groups_*, discovery_sources_*, auth (changed, "
                                   "role_assignments_added/removed, restart_required with reasons), "
                                   "restart_required, duration_ms")


class ExportResponse(BaseModel):
    yaml: str
    redacted: list[str] = Field(description="Places of literal secrets replaced by ${HANGAR_REDACTED_...}")


class BackupResponse(BaseModel):
    path: str = Field(description="The new backup (.bak1)")
    backups: list[str] = Field(description="Every backup, newest first")


class DiffResponse(BaseModel):
    has_diff: bool
    diff: str = Field(description="Unified diff, on-disk -> in-memory (secrets masked)")
    differences: list[dict[str, Any]] = Field(description="{section, id, change, origin, fields} per difference")
    on_disk: dict[str, Any]
    in_memory: dict[str, Any]
    on_disk_error: str | None = None


@router.get("/api/config", response_model=ConfigView, responses=_errors(),
            summary="Get sanitized current configuration")
async def get_config(request: Request) -> dict[str, Any]:
    return {"config": sanitize(document_of_state(hangar_of(request)))}


@router.post("/api/config/reload", response_model=ReloadResponse, responses=_errors(),
             summary="Trigger hot-reload from disk")
async def reload_config(request: Request, body: Annotated[ReloadRequest | None, Body()] = None) -> dict[str, Any]:
    result = await hangar_of(request).reloader.reload("api", graceful=body.graceful if body else True)
    return {"status": "reloaded", "result": result}


@router.post("/api/config/export", response_model=ExportResponse, responses=_errors(),
             summary="Export current state as YAML")
async def export_config(request: Request, body: Annotated[ExportRequest | None, Body()] = None) -> dict[str, Any]:
    hangar = hangar_of(request)
    exported = render(document_of_state(hangar), hangar.loaded.raw,
                      include_secrets=bool(body and body.include_secrets), source=hangar.loaded.source)
    return {"yaml": exported.yaml, "redacted": exported.redacted}


@router.post("/api/config/backup", response_model=BackupResponse, responses=_errors(404, 503),
             summary="Create a rotating config backup")
async def backup_config(request: Request) -> dict[str, Any]:
    hangar = hangar_of(request)
    path = hangar.loaded.path
    made = await asyncio.to_thread(backup, path, hangar.loaded.config.config_reload.backup_count)
    assert path is not None  # backup() refuses the embedded default
    return {"path": str(made), "backups": [str(p) for p in await asyncio.to_thread(backups, path)]}


@router.get("/api/config/diff", response_model=DiffResponse, responses=_errors(),
            summary="Diff on-disk vs in-memory configuration")
async def diff_config(request: Request) -> dict[str, Any]:
    return config_diff(hangar_of(request))  # reads one small file; the state must be read on the loop
