"""REST routes under /api/auth: API keys, roles, assignments, principals, permissions, tool policies.

Every route needs ``auth:read`` or ``auth:write`` (see ``security.py``). With auth off they still
work, so tool policies can be managed on a loopback-only Hangar; keys and roles then take effect
once auth is turned on.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from ..auth.guard import PRINCIPAL_SCOPE_KEY
from ..auth.permissions import ALL, PERMISSIONS, Role, check_permission
from ..auth.policy import normalize_scope
from ..auth.service import AuthService
from ..auth.settings import check_principal, check_scope
from ..errors import ValidationError
from .schemas import error_responses

router = APIRouter(prefix="/api/auth", tags=["auth"])
ERRORS = error_responses(401, 403, 404, 409, 413, 422, 429)
RoleName = Annotated[str, Path(description="Role name", max_length=200)]
_NAME = r"^[A-Za-z0-9_.-]{1,64}$"


def _auth(request: Request) -> AuthService:
    auth: AuthService = request.app.state.hangar.auth
    return auth


def _by(request: Request) -> str | None:
    principal = request.scope.get(PRINCIPAL_SCOPE_KEY)
    return getattr(principal, "principal_id", None)


def _valid(check: Any, value: str) -> str:
    try:
        result: str = check(value)
    except ValueError as exc:
        raise ValidationError(str(exc)) from None
    return result


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------------- keys


class CreateKeyRequest(_Body):
    principal_id: str = Field(max_length=200, description="e.g. user:alice or service:ci")
    name: str = Field(min_length=1, max_length=200)
    created_by: str | None = Field(default=None, max_length=200)
    expires_at: datetime | None = Field(default=None, description="ISO 8601; absent: never expires")


class KeyCreated(BaseModel):
    key_id: str
    raw_key: str
    principal_id: str
    name: str
    created_by: str | None
    expires_at: float | None
    warning: str


class KeyView(BaseModel):
    key_id: str
    name: str
    principal_id: str
    created_by: str | None
    created_at: float
    expires_at: float | None
    last_used_at: float | None
    revoked: bool


class KeyList(BaseModel):
    principal_id: str | None
    keys: list[KeyView]
    total: int
    active: int


class KeyRevoked(BaseModel):
    key_id: str
    principal_id: str
    revoked: bool


@router.post("/keys", status_code=201, response_model=KeyCreated, responses=ERRORS)
async def create_key(request: Request, body: CreateKeyRequest) -> dict[str, Any]:
    """Create an API key. The raw key is in this answer only: it is never stored."""
    expires = body.expires_at.timestamp() if body.expires_at is not None else None
    raw, key = await _auth(request).create_key(body.principal_id, body.name, body.created_by or _by(request),
                                               expires)
    return {"key_id": key.key_id, "raw_key": raw, "principal_id": key.principal_id, "name": key.name,
            "created_by": key.created_by, "expires_at": key.expires_at,
            "warning": "Save this key now - it cannot be retrieved later!"}


@router.get("/keys", response_model=KeyList, responses=ERRORS)
async def list_keys(request: Request, principal_id: Annotated[str | None, Query(max_length=200)] = None,
                    include_revoked: bool = True) -> dict[str, Any]:
    """API keys (never the keys themselves), optionally of one principal."""
    keys = _auth(request).keys(principal_id, include_revoked)
    views = [k.view() for k in keys]
    return {"principal_id": principal_id, "keys": views, "total": len(views),
            "active": sum(1 for k in keys if not k.revoked)}


@router.delete("/keys/{key_id}", response_model=KeyRevoked, responses=ERRORS)
async def revoke_key(request: Request, key_id: Annotated[str, Path(max_length=200)]) -> dict[str, Any]:
    """Revoke a key: refused from this moment on."""
    key = await _auth(request).revoke_key(key_id, _by(request), None)
    return {"key_id": key.key_id, "principal_id": key.principal_id, "revoked": True}


# ---------------------------------------------------------------------- roles


class RoleView(BaseModel):
    name: str
    description: str
    builtin: bool
    permissions: list[str]
    permissions_count: int


class RoleList(BaseModel):
    roles: list[RoleView]
    total: int


class CreateRoleRequest(_Body):
    name: str = Field(pattern=_NAME)
    description: str = Field(default="", max_length=4096)
    permissions: list[str] = Field(max_length=200)


class UpdateRoleRequest(_Body):
    description: str | None = Field(default=None, max_length=4096)
    permissions: list[str] | None = Field(default=None, max_length=200)


class RoleDeleted(BaseModel):
    name: str
    deleted: bool


class AssignRequest(_Body):
    principal_id: str = Field(max_length=200)
    role_name: str = Field(max_length=200)
    scope: str = Field(default="global", max_length=200, description="global, group:<id> or mcp_server:<id>")


class AssignResult(BaseModel):
    principal_id: str
    role_name: str
    scope: str
    assigned: bool | None = None
    revoked: bool | None = None
    assigned_by: str | None = None


def _roles(roles: list[Role]) -> dict[str, Any]:
    return {"roles": [r.view() for r in roles], "total": len(roles)}


@router.get("/roles", response_model=RoleList, responses=ERRORS)
async def list_custom_roles(request: Request) -> dict[str, Any]:
    """Custom roles (created through this API)."""
    return _roles(_auth(request).roles(include_builtin=False))


@router.post("/roles", status_code=201, response_model=RoleView, responses=ERRORS)
async def create_role(request: Request, body: CreateRoleRequest) -> dict[str, Any]:
    """Create a custom role from permissions (``resource:action``; see /api/auth/permissions)."""
    return (await _auth(request).create_role(body.name, body.description, body.permissions, _by(request))).view()


@router.get("/roles/all", response_model=RoleList, responses=ERRORS)
async def list_all_roles(request: Request, include_builtin: bool = True) -> dict[str, Any]:
    """Every role: the built-in ones (fixed) and the custom ones."""
    return _roles(_auth(request).roles(include_builtin=include_builtin))


@router.post("/roles/assign", response_model=AssignResult, responses=ERRORS)
async def assign_role(request: Request, body: AssignRequest) -> dict[str, Any]:
    """Give a principal a role, everywhere (``global``) or on one group or server."""
    by = _by(request)
    await _auth(request).assign(body.principal_id, body.role_name, body.scope, by)
    return {"principal_id": body.principal_id, "role_name": body.role_name, "scope": body.scope,
            "assigned": True, "assigned_by": by}


@router.delete("/roles/revoke", response_model=AssignResult, responses=ERRORS)
async def revoke_role(request: Request, body: AssignRequest) -> dict[str, Any]:
    """Take a role assignment back (only those made through this API)."""
    await _auth(request).revoke(body.principal_id, body.role_name, body.scope, _by(request))
    return {"principal_id": body.principal_id, "role_name": body.role_name, "scope": body.scope, "revoked": True}


@router.get("/roles/{role_name}", response_model=RoleView, responses=ERRORS)
async def get_role(request: Request, role_name: RoleName) -> dict[str, Any]:
    """One role with its permissions."""
    return _auth(request).role(role_name).view()


@router.delete("/roles/{role_name}", response_model=RoleDeleted, responses=ERRORS)
async def delete_role(request: Request, role_name: RoleName) -> dict[str, Any]:
    """Delete a custom role and its assignments; built-in roles answer 409."""
    await _auth(request).delete_role(role_name, _by(request))
    return {"name": role_name, "deleted": True}


@router.patch("/roles/{role_name}", response_model=RoleView, responses=ERRORS)
async def update_role(request: Request, role_name: RoleName, body: UpdateRoleRequest) -> dict[str, Any]:
    """Change a custom role's description or permissions; built-in roles answer 409."""
    role = await _auth(request).update_role(role_name, body.description, body.permissions, _by(request))
    return role.view()


# ---------------------------------------------------------------------- principals, permissions


class HeldRole(BaseModel):
    role_name: str
    scope: str
    source: str


class PrincipalView(BaseModel):
    principal_id: str
    roles: list[HeldRole]


class PrincipalList(BaseModel):
    principals: list[PrincipalView]
    total: int


class PrincipalRoles(PrincipalView):
    permissions: list[str]


class PermissionGroup(BaseModel):
    resource_type: str
    actions: list[str]


class PermissionList(BaseModel):
    permissions: list[PermissionGroup]


class CheckRequest(_Body):
    principal_id: str = Field(max_length=200)
    permission: str = Field(max_length=200)
    resource_id: str | None = Field(default=None, max_length=200, description="e.g. mcp_server:math")


class CheckResult(BaseModel):
    principal_id: str
    permission: str
    resource_type: str
    action: str
    resource_id: str
    allowed: bool
    granted_by_role: str | None


@router.get("/principals", response_model=PrincipalList, responses=ERRORS)
async def list_principals(request: Request) -> dict[str, Any]:
    """Every principal that holds a key or a role."""
    auth = _auth(request)
    rows = [{"principal_id": p, "roles": auth.role_views(p)} for p in auth.principal_ids()]
    return {"principals": rows, "total": len(rows)}


@router.get("/principals/roles", response_model=PrincipalRoles, responses=ERRORS)
async def principal_roles(request: Request, principal_id: Annotated[str, Query(max_length=200)],
                          scope: Annotated[str | None, Query(max_length=200)] = None) -> dict[str, Any]:
    """The roles of one principal (optionally of one scope) and the permissions they add up to."""
    auth = _auth(request)
    _valid(check_principal, principal_id)
    roles = [r for r in auth.role_views(principal_id) if scope in (None, "*", r["scope"])]
    resolved = auth.principal(principal_id)
    perms = set(resolved.everywhere)
    for held in resolved.scoped.values():
        perms |= held
    return {"principal_id": principal_id, "roles": roles, "permissions": sorted(perms)}


@router.get("/permissions", response_model=PermissionList, responses=ERRORS)
async def list_permissions() -> dict[str, Any]:
    """Every permission, by resource type (``*:*`` and ``<resource>:*`` are wildcards)."""
    groups = [{"resource_type": "*", "actions": ["*"]}]
    groups += [{"resource_type": r, "actions": list(a)} for r, a in PERMISSIONS.items()]
    return {"permissions": groups}


@router.post("/check-permission", response_model=CheckResult, responses=ERRORS)
async def check(request: Request, body: CheckRequest) -> dict[str, Any]:
    """Whether a principal holds a permission (globally, or on ``resource_id``), and through which role."""
    _valid(check_principal, body.principal_id)
    _valid(check_permission, body.permission)
    if body.resource_id is not None and body.resource_id != "*":
        _valid(check_scope, body.resource_id)
    resource = None if body.resource_id in (None, "*") else body.resource_id
    principal = _auth(request).principal(body.principal_id)
    allowed = principal.allows(body.permission, resource)
    resource_type, _, action = body.permission.partition(":")
    return {"principal_id": body.principal_id, "permission": body.permission, "resource_type": resource_type,
            "action": action, "resource_id": resource or "*", "allowed": allowed,
            "granted_by_role": principal.role_granting(body.permission, resource) if allowed else None}


class WhoAmI(BaseModel):
    authenticated: bool
    auth_enabled: bool
    principal_id: str | None
    roles: list[HeldRole]
    permissions: list[str]


@router.get("/whoami", response_model=WhoAmI, responses=ERRORS)
async def whoami(request: Request) -> dict[str, Any]:
    """The principal of this request (the same answer as the ``hangar_whoami`` MCP tool)."""
    auth = _auth(request)
    principal_id = _by(request)
    if principal_id is None:
        return {"authenticated": False, "auth_enabled": auth.enabled, "principal_id": None, "roles": [],
                "permissions": [ALL] if not auth.enabled else []}
    resolved = auth.principal(principal_id)
    return {"authenticated": True, "auth_enabled": auth.enabled, "principal_id": principal_id,
            "roles": auth.role_views(principal_id), "permissions": sorted(resolved.everywhere)}


# ---------------------------------------------------------------------- tool access policies


class PolicyRequest(_Body):
    allow_list: list[str] = Field(default_factory=list, max_length=1000)
    deny_list: list[str] = Field(default_factory=list, max_length=1000)


class PolicyView(BaseModel):
    scope: str
    target_id: str
    allow_list: list[str]
    deny_list: list[str]
    found: bool | None = None
    set: bool | None = None
    cleared: bool | None = None
    source: str | None = None


Scope = Annotated[str, Path(description="mcp_server (alias provider), group or member", max_length=200)]
TargetId = Annotated[str, Path(description="the server, group or member id", max_length=200)]


def _scope(scope: str, target_id: str) -> str:
    canonical = normalize_scope(scope)
    if canonical is None:
        raise ValidationError(f"unknown policy scope {scope!r}: use mcp_server (or provider), group or member")
    if not 1 <= len(target_id) <= 64 or not all(c.isalnum() or c in "_-." for c in target_id):
        raise ValidationError(f"invalid target id {target_id!r}")
    return canonical


def _patterns(patterns: list[str]) -> list[str]:
    for p in patterns:
        if not p or len(p) > 256:
            raise ValidationError("every pattern must be a non-empty string of at most 256 characters")
    return list(dict.fromkeys(patterns))


@router.get("/policies/{scope}/{target_id}", response_model=PolicyView, responses=ERRORS,
            response_model_exclude_unset=True)  # found / set / cleared: only the one that applies
async def get_policy(request: Request, scope: Scope, target_id: TargetId) -> dict[str, Any]:
    """The effective tool access policy of one scope and target (set through REST, else the file's)."""
    canonical = _scope(scope, target_id)
    policy = _auth(request).policies.get(canonical, target_id)
    if policy is None:
        return {"scope": canonical, "target_id": target_id, "allow_list": [], "deny_list": [], "found": False}
    return {**policy.view(), "found": True}


@router.post("/policies/{scope}/{target_id}", response_model=PolicyView, responses=ERRORS,
             response_model_exclude_unset=True)  # found / set / cleared: only the one that applies
async def set_policy(request: Request, scope: Scope, target_id: TargetId, body: PolicyRequest) -> dict[str, Any]:
    """Set a tool access policy (it survives restarts, and replaces the file's for this target)."""
    canonical = _scope(scope, target_id)
    allow, deny = _patterns(body.allow_list), _patterns(body.deny_list)
    await _auth(request).set_policy(canonical, target_id, allow, deny, _by(request))
    return {"scope": canonical, "target_id": target_id, "allow_list": allow, "deny_list": deny, "set": True,
            "source": "api"}


@router.delete("/policies/{scope}/{target_id}", response_model=PolicyView, responses=ERRORS,
               response_model_exclude_unset=True)  # found / set / cleared: only the one that applies
async def clear_policy(request: Request, scope: Scope, target_id: TargetId) -> dict[str, Any]:
    """Clear the REST policy of this target (the file's policy, if any, applies again)."""
    canonical = _scope(scope, target_id)
    auth = _auth(request)
    found = await auth.clear_policy(canonical, target_id, _by(request))
    remaining = auth.policies.get(canonical, target_id)
    view = remaining.view() if remaining is not None else {"scope": canonical, "target_id": target_id,
                                                           "allow_list": [], "deny_list": [], "source": None}
    return {**view, "cleared": found}
