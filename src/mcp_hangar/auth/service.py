"""The auth core: who a request is (API keys), what it may do (roles), and the audit trail.

Everything the call path needs is in memory: keys by hash, each principal's resolved permissions,
the compiled tool policies. The database is read at start and written on changes; ``last_used_at``
is collected in memory and written in batches. A key unknown in memory is looked up once in the
database (a key made by ``mcp-hangar auth bootstrap-admin`` while the server runs).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import secrets
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from ..errors import (
    AccessDeniedError,
    ApiKeyNotFoundError,
    AuthenticationError,
    BuiltinRoleError,
    ConflictError,
    NotFoundError,
    RateLimitExceeded,
    RoleNotFoundError,
    StoreError,
    ValidationError,
)
from ..events import (
    Event,
    EventBus,
    GroupCreated,
    GroupDeleted,
    GroupMemberAdded,
    GroupMemberRemoved,
    GroupUpdated,
    McpServerDeregistered,
    McpServerRegistered,
    McpServerUpdated,
)
from . import events as audit
from .live import LiveConnections
from .permissions import BUILTIN_ROLES, Principal, Role, check_permission, resolve
from .policy import PolicyEngine
from .ratelimit import Lockout, RateLimiter
from .reconfigure import changed_fields, config_assignments, diff, live_settings, restart_required
from .settings import AuthSettings, check_principal, check_scope
from .storage import ApiKey, AuthStore, hash_key, new_key

if TYPE_CHECKING:
    from ..hangar import Hangar

log = logging.getLogger(__name__)

ANONYMOUS = "anonymous"
TOUCH_INTERVAL_S = 5.0
_FLEET_EVENTS = (McpServerRegistered, McpServerUpdated, McpServerDeregistered, GroupCreated, GroupUpdated,
                 GroupDeleted, GroupMemberAdded, GroupMemberRemoved)


class AuthService:
    """Keys, roles, assignments, policies and limits of one Hangar."""

    def __init__(self, settings: AuthSettings, path: Path, bus: EventBus, hangar: Hangar) -> None:
        self.settings = settings
        self.enabled = settings.enabled
        self.store = AuthStore(path)
        self.bus = bus
        self._hangar = hangar
        self.policies = PolicyEngine(self._members)
        self.limiter = RateLimiter(settings.rate_limit)
        self.lockout = Lockout(settings.rate_limit)
        self._keys: dict[str, ApiKey] = {}  # by hash
        self._roles: dict[str, Role] = dict(BUILTIN_ROLES)
        self._stored: dict[str, set[tuple[str, str]]] = {}  # principal -> {(role, scope)} saved via REST
        self._config = config_assignments(settings)  # declared in the file (and the stdio principal's roles)
        self.live = LiveConnections(self)  # open WebSockets and MCP sessions, checked again on every change
        self._principals: dict[str, Principal] = {}
        self.version = 0  # bumped whenever any principal's permissions may have changed
        self._used: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ lifecycle

    async def open(self) -> None:
        await self.store.open()
        state = await self.store.load()
        self._keys = {k.key_hash: k for k in state["keys"]}
        for name, description, permissions in state["roles"]:
            if name not in BUILTIN_ROLES:
                self._roles[name] = Role(name, description, frozenset(permissions))
        for principal_id, role, scope, _ in state["assignments"]:
            self._stored.setdefault(principal_id, set()).add((role, scope))
        for scope, target, allow, deny in state["policies"]:
            self.policies.set_rest(scope, target, allow, deny)
        self._refresh_config_policies()
        self.bus.add_listener(self._on_event, _FLEET_EVENTS)
        self._task = asyncio.get_running_loop().create_task(self._touch_loop(), name="auth-last-used")

    async def close(self) -> None:
        self.bus.remove_listener(self._on_event)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
        await self._flush_used()
        await self.store.close()

    async def _touch_loop(self) -> None:
        while True:
            await asyncio.sleep(TOUCH_INTERVAL_S)
            await self._flush_used()

    async def _flush_used(self) -> None:
        used, self._used = self._used, {}
        if used:
            try:
                await self.store.touch_keys(used)
            except StoreError as exc:  # last_used_at is informational: say so, and keep serving
                log.warning("could not record when API keys were last used: %s", exc.message)

    def _on_event(self, event: Event) -> None:
        if isinstance(event, _FLEET_EVENTS):
            self._refresh_config_policies()

    def resource_of(self, target_id: str) -> str:
        """What a scoped role assignment names for a call target: ``group:<id>`` or ``mcp_server:<id>``."""
        return f"group:{target_id}" if target_id in self._hangar.groups.groups else f"mcp_server:{target_id}"

    def _members(self, target_id: str) -> list[str] | None:
        group = self._hangar.groups.groups.get(target_id)
        return None if group is None else [m.member_id for m in group.members]

    def _refresh_config_policies(self) -> None:
        found: dict[tuple[str, str], tuple[list[str], list[str]]] = {}
        for sid, server in self._hangar.servers.items():
            spec = server.spec.tool_access  # from the file, or from the spec a REST create carried
            if spec is not None:
                found[("mcp_server", sid)] = (spec.allow_list, spec.deny_list)
        for gid, group in self._hangar.groups.groups.items():
            gspec = group.spec.tools
            if gspec is not None:
                found[("group", gid)] = (gspec.allow_list, gspec.deny_list)
        self.policies.set_config_policies(found)

    # ------------------------------------------------------------------ authentication

    def stdio_principal(self) -> Principal | None:
        """Who a stdio client acts as (None with auth off)."""
        return self.principal(self.settings.stdio.principal.id) if self.enabled else None

    def anonymous(self) -> Principal | None:
        return self.principal(ANONYMOUS) if self.settings.allow_anonymous else None

    async def authenticate(self, raw: str | None, client: str, surface: str) -> Principal:
        """The principal a key belongs to; ``AuthenticationError`` (and an audit event) otherwise."""
        return (await self.authenticate_key(raw, client, surface))[0]

    async def authenticate_key(self, raw: str | None, client: str, surface: str) -> tuple[Principal, ApiKey | None]:
        """``authenticate``, with the key that matched (None for the anonymous principal)."""
        wait = self.lockout.locked_for(client)
        if wait:
            raise RateLimitExceeded("too many failed authentications from this client; try again later",
                                    retry_after_s=wait)
        if not raw:
            anonymous = self.anonymous()
            if anonymous is not None:
                return anonymous, None
            self._failed(client, surface, "missing_key")
        assert raw is not None
        digest = hash_key(raw)
        key = self._keys.get(digest)
        if key is None:
            key = await self._lookup(digest)
        # The dictionary found the hash; the comparison of what was found is constant-time.
        if key is None or not hmac.compare_digest(key.key_hash, digest):
            self._failed(client, surface, "unknown_key")
        assert key is not None
        now = time.time()
        if not key.usable(now):
            self._failed(client, surface, "revoked_key" if key.revoked else "expired_key", key.key_id)
        key.last_used_at = now
        self._used[key.key_id] = now
        self.lockout.succeeded(client)
        return self.principal(key.principal_id), key

    async def _lookup(self, digest: str) -> ApiKey | None:
        try:
            key = await self.store.key_by_hash(digest)
        except StoreError:
            return None
        if key is not None:
            self._keys[digest] = key
            self._stored[key.principal_id] = set(await self.store.assignments_of(key.principal_id))
            self._changed(key.principal_id)
        return key

    def _failed(self, client: str, surface: str, reason: str, key_id: str | None = None) -> None:
        self.bus.publish(audit.AuthenticationFailed(client=client, surface=surface, reason=reason, key_id=key_id))
        # Only wrong keys count towards a lockout: a client that sends none is not guessing.
        count = self.lockout.failed(client) if reason != "missing_key" else None
        if count is not None:
            self.bus.publish(audit.RateLimitLockout(client=client, failures=count,
                                                    lockout_seconds=self.lockout.duration))
        message = "an API key is required (X-API-Key header)" if reason == "missing_key" \
            else "the API key is not valid (unknown, expired or revoked)"
        raise AuthenticationError(message)

    # ------------------------------------------------------------------ authorization

    def principal(self, principal_id: str) -> Principal:
        """The resolved permissions of a principal, cached until its roles change."""
        found = self._principals.get(principal_id)
        if found is None:
            found = self._principals[principal_id] = resolve(principal_id, sorted(self.assignments(principal_id)),
                                                             self._roles)
        return found

    def assignments(self, principal_id: str) -> set[tuple[str, str]]:
        return self._stored.get(principal_id, set()) | self._config.get(principal_id, set())

    def authorize(self, principal: Principal, permission: str, resource: str | None, surface: str,
                  target: str) -> None:
        """``AccessDeniedError`` (and an audit event) unless ``principal`` holds ``permission``."""
        if principal.allows(permission, resource):
            return
        self.bus.publish(audit.AuthorizationDenied(principal_id=principal.principal_id, permission=permission,
                                                   surface=surface, target=target, resource=resource))
        raise AccessDeniedError(f"'{principal.principal_id}' lacks the permission {permission} for {target}",
                                permission=permission)

    def refuse_undeclared(self, principal: Principal, surface: str, target: str) -> NoReturn:
        """Deny by default: ``target`` is in no permission table."""
        self.bus.publish(audit.AuthorizationDenied(principal_id=principal.principal_id, permission="(undeclared)",
                                                   surface=surface, target=target))
        raise AccessDeniedError(f"no permission is declared for {target}: refused")

    def charge_mutation(self, principal: Principal) -> None:
        wait = self.limiter.take_mutation(principal.principal_id)
        if wait:
            self.rate_limited(principal.principal_id, "mutations", wait)

    def rate_limited(self, principal_id: str, bucket: str, wait: float) -> None:
        self.bus.publish(audit.RateLimitHit(principal_id=principal_id, bucket=bucket, retry_after_s=round(wait, 3)))
        raise RateLimitExceeded(f"rate limit '{bucket}' of '{principal_id}' is used up; retry after {wait:.2f} s",
                                retry_after_s=wait)

    def _changed(self, principal_id: str | None = None) -> None:
        self.version += 1
        if principal_id is None:
            self._principals.clear()
        else:
            self._principals.pop(principal_id, None)
        self.live.recheck()

    # ------------------------------------------------------------------ keys

    async def create_key(self, principal_id: str, name: str, created_by: str | None,
                         expires_at: float | None) -> tuple[str, ApiKey]:
        """A new key; the raw key is returned once and never kept."""
        check = _checked(check_principal, principal_id)
        if expires_at is not None and expires_at <= time.time():
            raise ValidationError("expires_at must be in the future")
        raw = new_key()
        key = ApiKey(secrets.token_urlsafe(8), hash_key(raw), name, check, time.time(), expires_at,
                     created_by=created_by)
        await self.store.save_key(key)
        self._keys[key.key_hash] = key
        self.bus.publish(audit.ApiKeyCreated(key_id=key.key_id, principal_id=key.principal_id, name=name,
                                             created_by=created_by, expires_at=expires_at))
        return raw, key

    def keys(self, principal_id: str | None = None, include_revoked: bool = True) -> list[ApiKey]:
        keys = [k for k in self._keys.values() if principal_id is None or k.principal_id == principal_id]
        return sorted((k for k in keys if include_revoked or not k.revoked), key=lambda k: k.created_at)

    async def revoke_key(self, key_id: str, revoked_by: str | None, reason: str | None) -> ApiKey:
        key = next((k for k in self._keys.values() if k.key_id == key_id), None)
        if key is None:
            raise ApiKeyNotFoundError(key_id)
        if not key.revoked:
            key.revoked = True  # refused from now on, before the write lands
            self.live.recheck()  # and streams opened with it end now
            await self.store.revoke_key(key_id)
            self.bus.publish(audit.ApiKeyRevoked(key_id=key_id, principal_id=key.principal_id,
                                                 revoked_by=revoked_by, reason=reason))
        return key

    # ------------------------------------------------------------------ roles

    def roles(self, include_builtin: bool = True) -> list[Role]:
        return [r for _, r in sorted(self._roles.items()) if include_builtin or not r.builtin]

    def role(self, name: str) -> Role:
        role = self._roles.get(name)
        if role is None:
            raise RoleNotFoundError(name)
        return role

    async def create_role(self, name: str, description: str, permissions: list[str], by: str | None) -> Role:
        if name in BUILTIN_ROLES:
            raise BuiltinRoleError(f"'{name}' is a built-in role")
        if name in self._roles:
            raise ConflictError(f"role '{name}' already exists")
        return await self._save_role(name, description, permissions, by, created=True)

    async def update_role(self, name: str, description: str | None, permissions: list[str] | None,
                          by: str | None) -> Role:
        role = self.role(name)
        if role.builtin:
            raise BuiltinRoleError(f"'{name}' is a built-in role and cannot be changed")
        return await self._save_role(name, role.description if description is None else description,
                                     sorted(role.permissions) if permissions is None else permissions, by,
                                     created=False)

    async def _save_role(self, name: str, description: str, permissions: list[str], by: str | None,
                         created: bool) -> Role:
        perms = sorted({_checked(check_permission, p) for p in permissions})
        await self.store.save_role(name, description, perms)
        role = self._roles[name] = Role(name, description, frozenset(perms))
        self._changed()
        event: Event = audit.CustomRoleCreated(role_name=name, permissions=perms, created_by=by) if created \
            else audit.CustomRoleUpdated(role_name=name, permissions=perms, updated_by=by)
        self.bus.publish(event)
        return role

    async def delete_role(self, name: str, by: str | None) -> None:
        role = self.role(name)
        if role.builtin:
            raise BuiltinRoleError(f"'{name}' is a built-in role and cannot be deleted")
        await self.store.delete_role(name)
        del self._roles[name]
        for held in self._stored.values():
            held -= {a for a in held if a[0] == name}
        self._changed()
        self.bus.publish(audit.CustomRoleDeleted(role_name=name, deleted_by=by))

    # ------------------------------------------------------------------ assignments

    async def assign(self, principal_id: str, role_name: str, scope: str, by: str | None) -> None:
        _checked(check_principal, principal_id)
        _checked(check_scope, scope)
        self.role(role_name)
        await self.store.assign(principal_id, role_name, scope, by)
        self._stored.setdefault(principal_id, set()).add((role_name, scope))
        self._changed(principal_id)
        self.bus.publish(audit.RoleAssigned(principal_id=principal_id, role_name=role_name, scope=scope,
                                            assigned_by=by, source="api"))

    async def revoke(self, principal_id: str, role_name: str, scope: str, by: str | None) -> None:
        if (role_name, scope) not in self._stored.get(principal_id, set()):
            if (role_name, scope) in self._config.get(principal_id, set()):
                raise ConflictError(f"'{principal_id}' holds '{role_name}' from the config file; remove it there")
            raise NotFoundError(f"'{principal_id}' does not hold the role '{role_name}' ({scope})")
        await self.store.unassign(principal_id, role_name, scope)
        self._stored[principal_id].discard((role_name, scope))
        self._changed(principal_id)
        self.bus.publish(audit.RoleRevoked(principal_id=principal_id, role_name=role_name, scope=scope,
                                           revoked_by=by, source="api"))

    def apply_settings(self, new: AuthSettings, config_path: str) -> dict[str, Any]:
        """Apply a reloaded ``auth:`` block (see ``reconfigure``): what changed, what waits for a restart."""
        pending = restart_required(self.settings, new)
        effective = live_settings(self.settings, new)
        changed = changed_fields(self.settings, effective)
        if effective.rate_limit != self.settings.rate_limit:  # fresh buckets on the new settings
            self.limiter = RateLimiter(effective.rate_limit)
            self.lockout = Lockout(effective.rate_limit)
        added, removed = diff(self._config, config_assignments(effective))
        self.settings, self._config = effective, config_assignments(effective)
        if changed:
            self._changed()  # every principal is resolved again; open connections are checked again
        by = f"config:{config_path}"
        for principal_id, role, scope in added:
            self.bus.publish(audit.RoleAssigned(principal_id=principal_id, role_name=role, scope=scope,
                                                assigned_by=by, source="config", config_path=config_path))
        for principal_id, role, scope in removed:
            self.bus.publish(audit.RoleRevoked(principal_id=principal_id, role_name=role, scope=scope,
                                               revoked_by=by, source="config", config_path=config_path))
        return {"changed": changed,
                "role_assignments_added": [{"principal": p, "role": r, "scope": s} for p, r, s in added],
                "role_assignments_removed": [{"principal": p, "role": r, "scope": s} for p, r, s in removed],
                "restart_required": pending}

    def principal_ids(self) -> list[str]:
        owners = {k.principal_id for k in self._keys.values()}
        return sorted(owners | set(self._stored) | set(self._config))

    def role_views(self, principal_id: str) -> list[dict[str, Any]]:
        stored, config = self._stored.get(principal_id, set()), self._config.get(principal_id, set())
        return [{"role_name": r, "scope": s, "source": "config" if (r, s) in config else "api"}
                for r, s in sorted(stored | config)]

    # ------------------------------------------------------------------ policies

    async def set_policy(self, scope: str, target_id: str, allow: list[str], deny: list[str],
                         by: str | None) -> None:
        await self.store.save_policy(scope, target_id, allow, deny)
        self.policies.set_rest(scope, target_id, allow, deny)
        self.bus.publish(audit.ToolAccessPolicySet(scope=scope, target_id=target_id, allow_list=allow,
                                                   deny_list=deny, set_by=by))

    def permitted_tools(self, server_id: str, tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """``tools`` of one server without those its tool access policy refuses."""
        if self.policies.empty:
            return tools
        return [t for t in tools if self.policies.judge(server_id, str(t.get("name"))) is None]

    async def clear_policy(self, scope: str, target_id: str, by: str | None) -> bool:
        await self.store.delete_policy(scope, target_id)
        found = self.policies.clear_rest(scope, target_id)
        if found:
            self.bus.publish(audit.ToolAccessPolicyCleared(scope=scope, target_id=target_id, cleared_by=by))
        return found


def _checked(check: Any, value: str) -> str:
    try:
        result: str = check(value)
    except ValueError as exc:
        raise ValidationError(str(exc)) from None
    return result
