"""The ``groups:`` section of the config file (also the saved form of groups created through REST), and
the older inline form ``mcp_servers: {pool: {mode: group, members: [...]}}`` folded into it.

Inline members that carry a server spec (``{id: pool-1, mode: subprocess, command: [...], weight: 3}``)
become ordinary servers named by their id; members without one refer to servers declared elsewhere.
"""

from __future__ import annotations

from typing import Any

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic import ValidationError as PydanticValidationError

from .auth.settings import ToolAccessSpec
from .config_model import StrictModel as _Strict
from .errors import ValidationError
from .strategies import check_strategy

Loc = tuple[str | int, ...]

MEMBER_KEYS = ("id", "member_id", "weight", "priority")


class GroupHealthSettings(_Strict):
    """When a member leaves and rejoins the rotation."""

    unhealthy_threshold: int = Field(default=2, ge=1, le=1000)  # consecutive failures -> out of rotation
    healthy_threshold: int = Field(default=1, ge=1, le=1000)  # consecutive successes -> back in rotation
    check_interval_s: float = Field(default=5.0, gt=0, le=3600)  # how often members out of rotation are re-checked


class CircuitBreakerSettings(_Strict):
    failure_threshold: int = Field(default=10, ge=1, le=100_000)  # failed group calls in a row -> open
    reset_timeout_s: float = Field(default=60.0, gt=0, le=86400)  # open -> half-open (one probe call)


class GroupRetrySettings(_Strict):
    max_attempts: int = Field(default=3, ge=1, le=10)  # attempts per call, each on a different member


class GroupMemberSpec(_Strict):
    member_id: str = Field(validation_alias=AliasChoices("member_id", "id"), min_length=1, max_length=64)
    weight: int = Field(default=1, ge=1, le=1000)
    priority: int = Field(default=1, ge=0, le=1000)


class GroupSpec(_Strict):
    """One group: its strategy, health and circuit settings, and its members (in order)."""

    description: str = ""
    strategy: str = "round_robin"
    min_healthy: int = Field(default=1, ge=1, le=1000)
    auto_start: bool = True  # start every member at boot, in parallel
    health: GroupHealthSettings = Field(default_factory=GroupHealthSettings)
    circuit_breaker: CircuitBreakerSettings = Field(default_factory=CircuitBreakerSettings)
    retry: GroupRetrySettings = Field(default_factory=GroupRetrySettings)
    members: list[GroupMemberSpec] = Field(default_factory=list)
    tools: ToolAccessSpec | None = None  # the group's tool access policy (narrows its members')

    @field_validator("strategy")
    @classmethod
    def _strategy(cls, value: str) -> str:
        return check_strategy(value)

    @field_validator("members", mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        # `members: [a, b]` is short for `members: [{member_id: a}, {member_id: b}]`.
        if value is None:
            return []
        if isinstance(value, list):
            return [{"member_id": m} if isinstance(m, str) else m for m in value]
        return value

    @model_validator(mode="after")
    def _unique_members(self) -> GroupSpec:
        seen: set[str] = set()
        for member in self.members:
            if member.member_id in seen:
                raise ValueError(f"member {member.member_id!r} is listed twice")
            seen.add(member.member_id)
        return self


def parse_group_spec(data: dict[str, Any]) -> GroupSpec:
    """Validate a group spec; problems become one ``ValidationError`` naming each field."""
    try:
        return GroupSpec.model_validate(data)
    except PydanticValidationError as exc:
        parts = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"])
            msg = err["msg"].removeprefix("Value error, ")
            parts.append(f"{where}: {msg}" if where else msg)
        raise ValidationError("; ".join(parts)) from None


def group_to_dict(spec: GroupSpec) -> dict[str, Any]:
    """The saved form: only what differs from the defaults, members always."""
    out = spec.model_dump(mode="json", exclude_defaults=True)
    out["members"] = [m.model_dump(mode="json") for m in spec.members]
    return out


def _is_inline_group(value: Any) -> bool:
    return isinstance(value, dict) and value.get("mode") == "group"


def hoist_inline_groups(data: dict[str, Any]) -> tuple[dict[str, Any], list[tuple[Loc, Loc]]]:
    """Move ``mcp_servers`` entries with ``mode: group`` to ``groups``, and inline member specs to
    ``mcp_servers``. Returns the new document and (new location, original location) prefixes, so that
    problems are reported where the user wrote them. Entries that would collide are left in place (the
    validator then names the collision)."""
    servers = data.get("mcp_servers")
    if not isinstance(servers, dict) or not any(_is_inline_group(v) for v in servers.values()):
        return data, []
    groups_in = data.get("groups")
    groups: dict[str, Any] = dict(groups_in) if isinstance(groups_in, dict) else {}
    new_servers: dict[str, Any] = {}
    moved: list[tuple[Loc, Loc]] = []
    declared = {k for k, v in servers.items() if not _is_inline_group(v)}
    for gid, entry in servers.items():
        if not _is_inline_group(entry) or gid in groups:
            new_servers[gid] = entry
            continue
        group = {k: v for k, v in entry.items() if k != "mode"}
        members = entry.get("members")
        if isinstance(members, list):
            out_members: list[Any] = []
            for i, member in enumerate(members):
                if not isinstance(member, dict):
                    out_members.append(member)
                    continue
                spec = {k: v for k, v in member.items() if k not in MEMBER_KEYS}
                mid = member.get("member_id", member.get("id"))
                if spec and isinstance(mid, str) and mid not in declared and mid not in new_servers:
                    new_servers[mid] = spec
                    moved.append((("mcp_servers", mid), ("mcp_servers", gid, "members", i)))
                    member = {k: v for k, v in member.items() if k in MEMBER_KEYS}
                out_members.append(member)
            group["members"] = out_members
        groups[gid] = group
        moved.append((("groups", gid), ("mcp_servers", gid)))
    return {**data, "mcp_servers": new_servers, "groups": groups}, moved


def original_loc(loc: Loc, moved: list[tuple[Loc, Loc]]) -> Loc:
    """Where ``loc`` (in the hoisted document) was written in the file."""
    for new, old in moved:
        if loc[: len(new)] == new:
            return (*old, *loc[len(new):])
    return loc


def cross_check(servers: set[str], groups: dict[str, GroupSpec]) -> list[tuple[Loc, str]]:
    """Problems between sections: ids used twice, members that are not servers."""
    problems: list[tuple[Loc, str]] = []
    for gid, spec in groups.items():
        if gid in servers:
            problems.append((("groups", gid), f"'{gid}' is both a server id and a group id"))
        for i, member in enumerate(spec.members):
            if member.member_id in groups:
                problems.append((("groups", gid, "members", i),
                                 f"member '{member.member_id}' is a group; groups cannot contain groups"))
            elif member.member_id not in servers:
                problems.append((("groups", gid, "members", i),
                                 f"member '{member.member_id}' is not a server (declare it under mcp_servers, "
                                 "or inline with its spec)"))
    return problems
