"""Request and response models of the REST API; they are what ``/openapi.json`` documents."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator, model_validator

from ..config import ServerSpec


class ErrorEnvelope(BaseModel):
    error: str = Field(description="The exception class name, e.g. McpServerNotFoundError")
    message: str
    status_code: int


ERROR_SCHEMA_REF = "#/components/schemas/ErrorEnvelope"


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` documenting the error envelope for ``codes``, by reference.

    A ``{"model": ErrorEnvelope}`` entry makes FastAPI build a pydantic field per route and status code,
    twice (at the decorator and again at ``include_router``): hundreds of them, a large part of the
    REST routers' import time at boot. The document is the same either way once ``add_error_envelope``
    has put the schema under ``components``."""
    return {code: {"content": {"application/json": {"schema": {"$ref": ERROR_SCHEMA_REF}}}} for code in codes}


def add_error_envelope(document: dict[str, Any]) -> dict[str, Any]:
    """Put ``ErrorEnvelope`` under ``components.schemas`` as FastAPI writes a component: through its
    OpenAPI ``Schema`` model (which orders the keys), with the components sorted by name."""
    from fastapi.encoders import jsonable_encoder
    from fastapi.openapi.models import Schema

    schemas: dict[str, Any] = document.setdefault("components", {}).setdefault("schemas", {})
    if "ErrorEnvelope" not in schemas:
        definition = ErrorEnvelope.model_json_schema(ref_template="#/components/schemas/{model}", mode="serialization")
        schemas["ErrorEnvelope"] = jsonable_encoder(Schema(**definition), by_alias=True, exclude_none=True)
        document["components"]["schemas"] = {name: schemas[name] for name in sorted(schemas)}
    return document


_INT_MIN, _INT_MAX = -(2**63), 2**63 - 1


def _check_json(value: Any, where: str) -> None:
    """Refuse what JSON parsing lets through but nothing downstream can carry: text that is not valid
    Unicode or holds NUL (process arguments, the JSON encoder), integers beyond 64 bits and
    non-finite numbers."""
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError(f"{where}: text may not contain NUL characters")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(f"{where}: text is not valid Unicode (lone surrogate)") from None
    elif isinstance(value, bool):
        return
    elif isinstance(value, int):
        if not _INT_MIN <= value <= _INT_MAX:
            raise ValueError(f"{where}: integer out of the 64-bit range")
    elif isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"{where}: number must be finite")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_json(key, f"{where}.{key!s}" if where else "key")
            _check_json(item, f"{where}.{key}" if where else str(key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_json(item, f"{where}[{i}]")


def _check_spec_input(data: Any) -> Any:
    _check_json(data, "")
    if isinstance(data, dict) and isinstance(data.get("env"), dict):
        for name in data["env"]:
            if not isinstance(name, str) or not name or "=" in name:
                raise ValueError(f"env: {name!r} is not a valid environment variable name")
    return data


class CreateServerRequest(ServerSpec):
    """A server spec plus its id."""

    # Built at once (the config's models defer theirs): the REST layer wraps request bodies in a
    # TypeAdapter, which expects a model's schema to exist (else it builds one inline, with a warning).
    model_config = ConfigDict(defer_build=False)
    mcp_server_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]{1,64}$")

    @model_validator(mode="before")
    @classmethod
    def _check_input(cls, data: Any) -> Any:
        return _check_spec_input(data)


class _CheckedInput(BaseModel):
    """Base of the other request bodies: unknown fields refused, input checked like a spec."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _check_input(cls, data: Any) -> Any:
        return _check_spec_input(data)


def _optional_fields() -> dict[str, Any]:
    """Every spec field, optional, with its constraints kept (so the OpenAPI schema shows them)."""
    fields: dict[str, Any] = {}
    for name, info in ServerSpec.model_fields.items():
        annotation: Any = info.annotation
        if info.metadata:
            annotation = Annotated[(annotation, *info.metadata)]
        fields[name] = (annotation | None, Field(default=None, description=info.description))
    return fields


def _spec_validators() -> dict[str, Any]:
    """The spec's input coercions (a command string is split, env values become strings)."""
    validators: dict[str, Any] = {}
    for name, decorator in ServerSpec.__pydantic_decorators__.field_validators.items():
        if decorator.info.mode != "before":
            continue

        def run(cls: Any, value: Any, _fn: Any = decorator.func) -> Any:
            return value if value is None else _fn(value)

        validators[name] = field_validator(*decorator.info.fields, mode="before")(classmethod(run))
    return validators


UpdateServerRequest: type[BaseModel] = create_model(
    "UpdateServerRequest",
    __base__=_CheckedInput,
    __doc__="Fields to change; omitted fields keep their value, and null resets a field to its default.",
    __validators__=_spec_validators(),
    **_optional_fields(),
)


class StopRequest(_CheckedInput):
    reason: str = Field(default="user_request", min_length=1, max_length=200)


class DeadInfo(BaseModel):
    reason: str | None
    since: float | None
    retry_allowed_at: float | None
    message: str | None


class ServerSummary(BaseModel):
    mcp_server_id: str
    state: str
    mode: str
    source: Literal["config", "api", "discovery"]
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
    container: str | None = Field(default=None, description="docker mode: the running container's name")
    image: str | None = Field(default=None, description="docker mode: the image")


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
    status: Literal["healthy"]


class ReadyStatus(BaseModel):
    status: Literal["healthy", "starting", "stopping", "unhealthy"]
    startup_complete: bool
    ready_mcp_servers: int
    total_mcp_servers: int
    reason: str | None = Field(default=None, description="Why the instance is not ready, when it is not")


class StartupStatus(BaseModel):
    status: Literal["healthy", "starting"]
    startup_complete: bool
    uptime_seconds: float
