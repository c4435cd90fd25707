"""Request and response models of the REST API; they are what ``/openapi.json`` documents."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from ..config import ServerSpec


class ErrorEnvelope(BaseModel):
    error: str = Field(description="The exception class name, e.g. McpServerNotFoundError")
    message: str
    status_code: int


class CreateServerRequest(ServerSpec):
    """A server spec plus its id."""

    mcp_server_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]{1,64}$")


def _optional_fields() -> dict[str, Any]:
    return {name: (info.annotation | None, None) for name, info in ServerSpec.model_fields.items()}


UpdateServerRequest: type[BaseModel] = create_model(  # type: ignore[call-overload]
    "UpdateServerRequest",
    __config__=ConfigDict(extra="forbid"),
    __doc__="Fields to change; omitted fields keep their value.",
    **_optional_fields(),
)


class StopRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(default="user_request", max_length=200)


class DeadInfo(BaseModel):
    reason: str | None
    since: float | None
    retry_allowed_at: float | None
    message: str | None


class ServerSummary(BaseModel):
    mcp_server_id: str
    state: str
    mode: str
    source: Literal["config", "api"]
    alive: bool
    description: str
    tools_count: int
    tools_origin: str
    health_status: str
    dead: DeadInfo | None
    pid: int | None


class ServerList(BaseModel):
    mcp_servers: list[ServerSummary]
    total: int


class HealthInfo(BaseModel):
    mcp_server_id: str
    state: str
    status: str
    consecutive_failures: int
    total_invocations: int
    total_failures: int
    success_rate: float | None
    can_retry: bool
    retry_allowed_at: float | None
    last_success_ago: float | None
    last_failure_ago: float | None
    dead: DeadInfo | None


class ServerDetail(ServerSummary):
    spec: dict[str, Any]
    tools: list[dict[str, Any]]
    health: HealthInfo
    idle_time_s: float | None
    started_at: float | None
    in_flight: int
    protocol_version: str | None
    server_info: dict[str, Any] | None


class CreateResult(BaseModel):
    mcp_server_id: str
    created: bool


class UpdateResult(BaseModel):
    mcp_server_id: str
    updated: bool
    changed_fields: list[str]
    restarted: bool
    persisted: bool
    state: str


class DeleteResult(BaseModel):
    mcp_server_id: str
    deleted: bool


class StartResult(BaseModel):
    mcp_server: str
    state: str
    tools: list[str]


class StopResult(BaseModel):
    stopped: str
    was_running: bool
    reason: str
    state: str


class ToolList(BaseModel):
    mcp_server_id: str
    tools_origin: str
    tools: list[dict[str, Any]]


class LogEntry(BaseModel):
    mcp_server_id: str
    stream: str
    content: str
    recorded_at: float


class LogList(BaseModel):
    mcp_server_id: str
    logs: list[LogEntry]
    count: int


class HistoryPage(BaseModel):
    mcp_server_id: str
    history: list[dict[str, Any]]
    total: int
    next_cursor: str | None


class SystemInfo(BaseModel):
    version: str
    uptime_seconds: float
    instance_id: str
    pid: int
    config_source: str
    data_dir: str
    total_mcp_servers: int
    mcp_servers_by_state: dict[str, int]
    total_tools: int
    total_invocations: int
    total_failures: int
    overall_success_rate: float | None


class SystemResponse(BaseModel):
    system: SystemInfo


class ProbeStatus(BaseModel):
    model_config = ConfigDict(extra="allow")
    status: str
