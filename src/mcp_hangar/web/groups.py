"""REST routes under /api/groups, with their request and response models."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Path, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.config import JsonDict

from ..group_config import CircuitBreakerSettings, GroupHealthSettings, GroupMemberSpec, GroupRetrySettings, GroupSpec
from ..group_manager import GroupManager
from ..strategies import STRATEGY_NAMES, check_strategy
from .schemas import error_responses

GroupId = Annotated[str, Path(description="Group id", max_length=200)]
MemberId = Annotated[str, Path(description="MCP server id of the member", max_length=200)]
_ID = r"^[A-Za-z0-9_-]{1,64}$"
_STRATEGY_DOC: JsonDict = {"enum": list(STRATEGY_NAMES)}
ERRORS = error_responses(404, 413, 422, 500)
CHANGE_ERRORS = error_responses(404, 409, 413, 422, 500)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CreateGroupRequest(_Body):
    group_id: str = Field(min_length=1, max_length=64, pattern=_ID)
    strategy: str = Field(default="round_robin", json_schema_extra=_STRATEGY_DOC)
    min_healthy: int = Field(default=1, ge=1, le=1000)
    description: str = Field(default="", max_length=4096)
    auto_start: bool = True
    health: GroupHealthSettings | None = None
    circuit_breaker: CircuitBreakerSettings | None = None
    retry: GroupRetrySettings | None = None

    @field_validator("strategy")
    @classmethod
    def _strategy(cls, value: str) -> str:
        return check_strategy(value)


class UpdateGroupRequest(_Body):
    """Fields to change; omitted fields keep their value, null resets one to its default."""

    strategy: str | None = Field(default=None, json_schema_extra=_STRATEGY_DOC)
    min_healthy: int | None = Field(default=None, ge=1, le=1000)
    description: str | None = Field(default=None, max_length=4096)
    auto_start: bool | None = None
    health: GroupHealthSettings | None = None
    circuit_breaker: CircuitBreakerSettings | None = None
    retry: GroupRetrySettings | None = None

    @field_validator("strategy")
    @classmethod
    def _strategy(cls, value: str | None) -> str | None:
        return value if value is None else check_strategy(value)


class AddMemberRequest(_Body):
    member_id: str = Field(min_length=1, max_length=64, pattern=_ID, description="an existing MCP server id")
    weight: int = Field(default=1, ge=1, le=1000)
    priority: int = Field(default=1, ge=0, le=1000)


class MemberView(BaseModel):
    member_id: str
    state: str
    in_rotation: bool
    weight: int
    priority: int
    consecutive_failures: int
    in_flight: int
    calls: int
    failures: int


class GroupView(BaseModel):
    group_id: str
    description: str
    source: Literal["config", "api"]
    state: Literal["inactive", "partial", "healthy", "degraded"]
    strategy: str
    min_healthy: int
    auto_start: bool
    healthy_count: int
    members_in_rotation_count: int
    total_members: int
    circuit_open: bool
    circuit_state: Literal["closed", "open", "half_open"]
    health: GroupHealthSettings
    circuit_breaker: CircuitBreakerSettings
    retry: GroupRetrySettings
    members: list[MemberView]


class GroupList(BaseModel):
    groups: list[GroupView]
    total: int


class GroupCreateResult(BaseModel):
    group_id: str
    created: bool


class GroupUpdateResult(BaseModel):
    group_id: str
    updated: bool
    changed_fields: list[str]
    persisted: bool


class GroupDeleteResult(BaseModel):
    group_id: str
    deleted: bool


class RebalanceResult(BaseModel):
    status: Literal["rebalanced"]
    group_id: str
    group: GroupView


class MemberAddResult(BaseModel):
    group_id: str
    mcp_server_id: str
    added: bool


class MemberRemoveResult(BaseModel):
    group_id: str
    mcp_server_id: str
    removed: bool


def groups_of(request: Request) -> GroupManager:
    manager: GroupManager = request.app.state.hangar.groups
    return manager


router = APIRouter(prefix="/api/groups", tags=["groups"])


@router.get("", response_model=GroupList, responses=ERRORS, summary="List all MCP server groups")
async def list_groups(request: Request) -> dict[str, Any]:
    groups = [g.view() for g in groups_of(request).all()]
    return {"groups": groups, "total": len(groups)}


@router.post("", status_code=201, response_model=GroupCreateResult, responses=CHANGE_ERRORS,
             summary="Create a new group")
async def create_group(request: Request, body: CreateGroupRequest) -> dict[str, Any]:
    data = body.model_dump(exclude_none=True)
    group_id = data.pop("group_id")
    await groups_of(request).create(group_id, GroupSpec.model_validate(data))
    return {"group_id": group_id, "created": True}


@router.get("/{group_id}", response_model=GroupView, responses=ERRORS, summary="Get group details")
async def get_group(request: Request, group_id: GroupId) -> dict[str, Any]:
    return groups_of(request).get(group_id).view()


@router.put("/{group_id}", response_model=GroupUpdateResult, responses=ERRORS, summary="Update group configuration")
async def update_group(request: Request, group_id: GroupId,
                       body: Annotated[UpdateGroupRequest, Body()]) -> dict[str, Any]:
    manager = groups_of(request)
    current = manager.get(group_id).spec
    changes: dict[str, Any] = {}
    for key in body.model_fields_set:
        value = getattr(body, key)
        if value is None:  # null resets the field to its default
            value = GroupSpec.model_fields[key].get_default(call_default_factory=True)
            value = value.model_dump() if isinstance(value, BaseModel) else value
        elif isinstance(value, BaseModel):  # a settings block merges key by key
            value = {**getattr(current, key).model_dump(), **value.model_dump(exclude_unset=True)}
        changes[key] = value
    group, changed = await manager.update(group_id, changes)
    return {"group_id": group_id, "updated": True, "changed_fields": changed, "persisted": group.source == "api"}


@router.delete("/{group_id}", response_model=GroupDeleteResult, responses=ERRORS, summary="Delete a group")
async def delete_group(request: Request, group_id: GroupId) -> dict[str, Any]:
    await groups_of(request).delete(group_id)
    return {"group_id": group_id, "deleted": True}


@router.post("/{group_id}/rebalance", response_model=RebalanceResult, responses=ERRORS,
             summary="Trigger group rebalance: re-check members, re-admit recovered ones, reset the circuit")
async def rebalance_group(request: Request, group_id: GroupId) -> dict[str, Any]:
    group = await groups_of(request).rebalance(group_id)
    return {"status": "rebalanced", "group_id": group_id, "group": group.view()}


@router.post("/{group_id}/members", status_code=201, response_model=MemberAddResult, responses=CHANGE_ERRORS,
             summary="Add a member to the group (an existing MCP server)")
async def add_member(request: Request, group_id: GroupId, body: AddMemberRequest) -> dict[str, Any]:
    member = GroupMemberSpec(member_id=body.member_id, weight=body.weight, priority=body.priority)
    await groups_of(request).add_member(group_id, member)
    return {"group_id": group_id, "mcp_server_id": body.member_id, "added": True}


@router.delete("/{group_id}/members/{member_id}", response_model=MemberRemoveResult, responses=ERRORS,
               summary="Remove a member")
async def remove_member(request: Request, group_id: GroupId, member_id: MemberId) -> dict[str, Any]:
    await groups_of(request).remove_member(group_id, member_id)
    return {"group_id": group_id, "mcp_server_id": member_id, "removed": True}
