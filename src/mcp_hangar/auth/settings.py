"""The ``auth:`` block of the config file, and the ``tools: {allow_list, deny_list}`` policy form.

Kept apart from ``config.py`` so that the auth package owns its own settings; ``config.py`` only
includes them. Nothing here imports the rest of Hangar but the config models' base (``config_model``).
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from ..config_model import StrictModel as _Strict

PRINCIPAL_RE = re.compile(r"^[A-Za-z0-9_.@+-]{1,64}(:[A-Za-z0-9_.@+/-]{1,128})?$")
SCOPE_RE = re.compile(r"^(global|(group|mcp_server):[A-Za-z0-9_.-]{1,64})$")


def check_principal(value: str) -> str:
    """A principal id: ``user:alice``, ``service:ci``, ``anonymous`` ..."""
    if not PRINCIPAL_RE.match(value):
        raise ValueError(f"invalid principal id {value!r}: use kind:name, e.g. user:alice or service:ci")
    return value


def check_scope(value: str) -> str:
    """A role assignment's scope: ``global``, ``group:<id>`` or ``mcp_server:<id>``."""
    if not SCOPE_RE.match(value):
        raise ValueError(f"invalid scope {value!r}: use global, group:<id> or mcp_server:<id>")
    return value


class ToolAccessSpec(_Strict):
    """A tool access policy: glob patterns over upstream tool names (without the server prefix)."""

    allow_list: list[str] = Field(default_factory=list, max_length=1000)
    deny_list: list[str] = Field(default_factory=list, max_length=1000)

    @field_validator("allow_list", "deny_list")
    @classmethod
    def _patterns(cls, value: list[str]) -> list[str]:
        for pattern in value:
            if not isinstance(pattern, str) or not pattern or len(pattern) > 256:
                raise ValueError("every pattern must be a non-empty string of at most 256 characters")
        return value

    @property
    def empty(self) -> bool:
        return not self.allow_list and not self.deny_list


def split_tools_field(data: Any) -> Any:
    """``tools:`` on a server is either the list of declared tools or, as a mapping, its tool access
    policy; the mapping form moves to ``tool_access`` (a pydantic ``mode="before"`` helper)."""
    if isinstance(data, dict) and isinstance(data.get("tools"), dict):
        data = dict(data)
        policy = data.pop("tools")
        if "tool_access" in data:
            raise ValueError("give the tool access policy once: as tools: {allow_list, deny_list} or tool_access")
        data["tool_access"] = policy
    return data


class RoleAssignmentSpec(_Strict):
    principal: str
    role: str = Field(min_length=1, max_length=64)
    scope: str = "global"

    @field_validator("principal")
    @classmethod
    def _principal(cls, value: str) -> str:
        return check_principal(value)

    @field_validator("scope")
    @classmethod
    def _scope(cls, value: str) -> str:
        return check_scope(value)


class ApiKeySettings(_Strict):
    header_name: str = Field(default="X-API-Key", pattern=r"^[A-Za-z0-9-]{1,64}$")


class StdioPrincipal(_Strict):
    """Who a stdio client is: stdio has no credential channel, so the config says."""

    id: str = "user:local"
    roles: list[str] = Field(default_factory=lambda: ["admin"])

    @field_validator("id")
    @classmethod
    def _principal(cls, value: str) -> str:
        return check_principal(value)


class StdioSettings(_Strict):
    principal: StdioPrincipal = Field(default_factory=StdioPrincipal)


class BucketSettings(_Strict):
    """A token bucket: ``burst`` calls at once, refilled at ``rps`` per second."""

    rps: float = Field(gt=0, le=1_000_000)
    burst: int = Field(ge=1, le=10_000_000)


def _tool_call_bucket() -> BucketSettings:
    return BucketSettings(rps=200, burst=400)


def _mutation_bucket() -> BucketSettings:
    return BucketSettings(rps=20, burst=60)


class RateLimitSettings(_Strict):
    """Per-principal token buckets and the lockout after repeated authentication failures.

    The defaults are far above what an interactive user does; a benchmark raises them."""

    enabled: bool = True
    tool_calls: BucketSettings = Field(default_factory=_tool_call_bucket)
    mutations: BucketSettings = Field(default_factory=_mutation_bucket)
    # Extra buckets for single tools, keyed by the name clients see (``<server>__<tool>``).
    per_tool: dict[str, BucketSettings] = Field(default_factory=dict)
    max_attempts: int = Field(default=20, ge=1, le=100_000)  # failed authentications from one client ...
    window_seconds: float = Field(default=60, gt=0, le=86_400)  # ... within this window ...
    lockout_seconds: float = Field(default=60, ge=0, le=86_400)  # ... lock that client out this long


class AuthSettings(_Strict):
    enabled: bool = False
    allow_anonymous: bool = False  # requests without a key act as principal ``anonymous``
    api_key: ApiKeySettings = Field(default_factory=ApiKeySettings)
    role_assignments: list[RoleAssignmentSpec] = Field(default_factory=list)
    rate_limit: RateLimitSettings = Field(default_factory=RateLimitSettings)
    stdio: StdioSettings = Field(default_factory=StdioSettings)
    storage: Literal["sqlite"] = "sqlite"  # auth.db under the data directory

    @model_validator(mode="before")
    @classmethod
    def _none_is_default(cls, data: Any) -> Any:
        return {} if data is None else data
