"""Every group of one Hangar: create, update, delete, members, persistence, and the recovery loop.

Groups declared in the config file belong to the file: REST may change them at run time, but those
changes are not saved. Groups created through REST are saved in the store with their members and come
back after a restart. Deleting a server removes it from every group it belongs to.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from pydantic import ValidationError as PydanticValidationError

from .circuit import Clock
from .config import validate_server_id
from .errors import (
    ConflictError,
    GroupMemberNotFoundError,
    GroupNotFoundError,
    HangarError,
    McpServerNotFoundError,
    ValidationError,
)
from .events import (
    Event,
    EventBus,
    GroupCreated,
    GroupDeleted,
    GroupMemberAdded,
    GroupMemberRemoved,
    GroupUpdated,
    HealthCheckFailed,
    HealthCheckPassed,
    McpServerStateChanged,
)
from .group_config import GroupMemberSpec, GroupSpec, group_to_dict, parse_group_spec
from .groups import Group, Member
from .models import State
from .store import Store
from .supervisor import ManagedServer

log = logging.getLogger(__name__)

_MEMBER_EVENTS = (McpServerStateChanged, HealthCheckPassed, HealthCheckFailed)  # what moves a member's health
TICK_S = 0.25  # how often members out of rotation are looked at (each is checked every check_interval_s)
Spawn = Callable[[Coroutine[Any, Any, Any]], None]


class GroupManager:
    """Owns the groups; subscribes to server events to keep member health current."""

    def __init__(self, *, bus: EventBus, store: Store, servers: dict[str, ManagedServer], spawn: Spawn,
                 clock: Clock = time.monotonic) -> None:
        self._bus = bus
        self._store = store
        self._servers = servers
        self._spawn = spawn
        self._clock = clock
        self.groups: dict[str, Group] = {}
        self._by_member: dict[str, list[tuple[Group, Member]]] = {}
        self._changes = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        bus.add_listener(self._on_event, _MEMBER_EVENTS)

    # ------------------------------------------------------------------ lifecycle

    async def start(self, declared: dict[str, GroupSpec]) -> None:
        """Install the file's groups and the saved ones, start the recovery loop and auto-start members."""
        for group_id, spec in declared.items():
            self._install(group_id, spec, "config")
        for group_id, data in (await self._store.load_groups()).items():
            if group_id in self.groups or group_id in self._servers:
                log.warning("saved group %r clashes with a group or server of the config file; ignored", group_id)
                continue
            try:
                spec = GroupSpec.model_validate(data)
            except PydanticValidationError as exc:
                log.error("saved group %r is invalid and was skipped: %s", group_id, exc)
                continue
            self._install(group_id, spec, "api")
        self._task = asyncio.get_running_loop().create_task(self._recover_loop(), name="hangar-groups")
        starting: set[str] = set()
        for group in self.groups.values():
            if group.spec.auto_start:
                for member in group.members:
                    if member.member_id not in starting and not member.server.spec.auto_start:
                        starting.add(member.member_id)
                        self._spawn(self._start_member(member.server))

    async def aclose(self) -> None:
        self._bus.remove_listener(self._on_event)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task

    @staticmethod
    async def _start_member(server: ManagedServer) -> None:
        with contextlib.suppress(HangarError):  # its state and logs say why
            await server.ensure_ready(explicit=True)

    def _install(self, group_id: str, spec: GroupSpec, source: str) -> Group:
        group = Group(group_id, spec, self._servers, source=source, bus=self._bus, clock=self._clock)
        self.groups[group_id] = group
        self._index()
        self._bus.publish(GroupCreated(group_id=group_id, strategy=spec.strategy, source=source,
                                       state=group.state.value, members=[m.member_id for m in group.members]))
        return group

    def _index(self) -> None:
        index: dict[str, list[tuple[Group, Member]]] = {}
        for group in self.groups.values():
            for member in group.members:
                index.setdefault(member.member_id, []).append((group, member))
        self._by_member = index

    # ------------------------------------------------------------------ queries

    def get(self, group_id: str) -> Group:
        group = self.groups.get(group_id)
        if group is None:
            raise GroupNotFoundError(group_id)
        return group

    def all(self) -> list[Group]:
        return [self.groups[k] for k in sorted(self.groups)]

    def member_ids(self) -> set[str]:
        """Every server that belongs to at least one group."""
        return set(self._by_member)

    # ------------------------------------------------------------------ changes

    # Changes are serialized: each checks, saves, then applies, and no other change may slip in between
    # (a concurrent duplicate add, or an update saving a group that a delete just removed).

    async def create(self, group_id: str, spec: GroupSpec) -> Group:
        try:
            validate_server_id(group_id)
        except ValueError as exc:
            raise ValidationError(str(exc).replace("MCP server id", "group id")) from None
        async with self._changes:
            if group_id in self.groups:
                raise ConflictError(f"Group '{group_id}' already exists")
            if group_id in self._servers:
                raise ConflictError(f"'{group_id}' is already an MCP server id; groups and servers share one "
                                    "namespace")
            for member in spec.members:
                self._member_server(member.member_id)
            await self._store.save_group(group_id, group_to_dict(spec))
            return self._install(group_id, spec, "api")

    async def update(self, group_id: str, changes: dict[str, Any]) -> tuple[Group, list[str]]:
        async with self._changes:
            group = self.get(group_id)
            spec = parse_group_spec({**group_to_dict(group.spec), **changes})
            old = group.spec
            changed = sorted(k for k in GroupSpec.model_fields
                             if k != "members" and getattr(old, k) != getattr(spec, k))
            await self._save(group, spec)
            group.configure(spec)
            self._bus.publish(GroupUpdated(group_id=group_id, changed_fields=changed))
            return group, changed

    async def delete(self, group_id: str) -> None:
        async with self._changes:
            group = self.get(group_id)
            if group.source == "api":
                await self._store.delete_group(group_id)
            self.groups.pop(group_id, None)
            self._index()
            self._bus.publish(GroupDeleted(group_id=group_id))

    def _member_server(self, member_id: str) -> ManagedServer:
        if member_id in self.groups:
            raise ValidationError(f"'{member_id}' is a group; groups cannot contain groups")
        server = self._servers.get(member_id)
        if server is None:
            raise McpServerNotFoundError(member_id)
        return server

    async def add_member(self, group_id: str, member: GroupMemberSpec) -> Group:
        async with self._changes:
            group = self.get(group_id)
            server = self._member_server(member.member_id)
            if group.member(member.member_id) is not None:
                raise ConflictError(f"'{member.member_id}' is already a member of group '{group_id}'")
            await self._save(group, group.spec.model_copy(update={"members": [*group.spec.members, member]}))
            group.add(member, server)
            self._index()
            self._bus.publish(GroupMemberAdded(group_id=group_id, member_id=member.member_id,
                                               weight=member.weight, priority=member.priority))
            group.refresh("member added")
            return group

    async def remove_member(self, group_id: str, member_id: str) -> Group:
        async with self._changes:
            return await self._remove_member(group_id, member_id, "user_request")

    async def forget_server(self, server_id: str) -> None:
        """A server is being deleted: it leaves every group it belongs to."""
        async with self._changes:
            for group, _ in list(self._by_member.get(server_id, [])):
                with contextlib.suppress(GroupNotFoundError, GroupMemberNotFoundError):
                    await self._remove_member(group.group_id, server_id, "server_deleted")

    async def _remove_member(self, group_id: str, member_id: str, reason: str) -> Group:
        group = self.get(group_id)
        if group.member(member_id) is None:
            raise GroupMemberNotFoundError(group_id, member_id)
        remaining = [m for m in group.spec.members if m.member_id != member_id]
        await self._save(group, group.spec.model_copy(update={"members": remaining}))
        group.remove(member_id)
        self._index()
        self._bus.publish(GroupMemberRemoved(group_id=group_id, member_id=member_id, reason=reason))
        group.refresh("member removed")
        return group

    async def apply_declared(self, group_id: str, spec: GroupSpec | None) -> str:
        """Make group ``group_id`` what the config file now declares (None: no longer declared). A group
        created through REST with the same id is taken over by the file. Members keep their health.
        Returns ``added``, ``updated``, ``removed`` or ``unchanged``."""
        async with self._changes:
            group = self.groups.get(group_id)
            if spec is None:
                if group is None:
                    return "unchanged"
                self.groups.pop(group_id, None)
                self._index()
                self._bus.publish(GroupDeleted(group_id=group_id))
                return "removed"
            if group is None:
                group = self._install(group_id, spec, "config")
                if spec.auto_start:
                    for member in group.members:
                        self._spawn(self._start_member(member.server))
                return "added"
            adopted = group.source != "config"
            if adopted:
                await self._store.delete_group(group_id)
                group.source = "config"
            if group_to_dict(group.spec) == group_to_dict(spec):
                return "updated" if adopted else "unchanged"
            changed = sorted(k for k in GroupSpec.model_fields if getattr(group.spec, k) != getattr(spec, k))
            wanted = {m.member_id: m for m in spec.members}
            for member in list(group.members):
                if member.member_id not in wanted:
                    group.remove(member.member_id)
                    self._bus.publish(GroupMemberRemoved(group_id=group_id, member_id=member.member_id,
                                                         reason="config_reload"))
            for member_spec in spec.members:
                current = group.member(member_spec.member_id)
                server = self._servers.get(member_spec.member_id)
                if current is None and server is not None:
                    group.add(member_spec, server)
                    self._bus.publish(GroupMemberAdded(group_id=group_id, member_id=member_spec.member_id,
                                                       weight=member_spec.weight, priority=member_spec.priority))
                elif current is not None:
                    current.weight, current.priority = member_spec.weight, member_spec.priority
            self._index()
            group.configure(spec)  # also re-reads the members' weights and priorities
            self._bus.publish(GroupUpdated(group_id=group_id, changed_fields=changed))
            return "updated"

    async def _save(self, group: Group, spec: GroupSpec) -> None:
        if group.source == "api":
            await self._store.save_group(group.group_id, group_to_dict(spec))

    async def rebalance(self, group_id: str) -> Group:
        """Check every member now, re-admit the ones that answer, reset the circuit and the strategy."""
        group = self.get(group_id)
        group.reset_circuit()
        group.reset_strategy()
        members = list(group.members)
        outcomes = await asyncio.gather(*(self._check(m) for m in members))
        for member, ok in zip(members, outcomes, strict=True):
            if ok:
                member.healthy, member.consecutive_failures = True, 0
            elif ok is False:
                member.healthy = False
        group.refresh("rebalance")
        return group

    @staticmethod
    async def _check(member: Member) -> bool | None:
        """True: answers; False: does not; None: not running and not known bad (left to start lazily)."""
        server = member.server
        if server.state in (State.READY, State.DEGRADED):
            if await server.health_check():
                return True
            return False if server.consecutive_failures else None  # None: a check was already running
        if server.state == State.COLD and member.healthy:
            return None
        try:
            await server.ensure_ready(explicit=True)
        except HangarError:
            return False
        return True

    # ------------------------------------------------------------------ health from events

    def _on_event(self, event: Event) -> None:
        if not isinstance(event, _MEMBER_EVENTS):
            return
        entries = self._by_member.get(event.mcp_server_id)
        if not entries:
            return
        for group, member in entries:
            if isinstance(event, HealthCheckPassed):
                group.member_succeeded(member, "health check passed")
            elif isinstance(event, HealthCheckFailed):
                group.member_failed(member, f"health check failed: {event.error_message}")
            elif event.new_state == State.DEAD.value:
                group.member_died(member, f"server {event.dead_reason or 'dead'}: {event.message or ''}".rstrip(": "))
            elif event.new_state == State.READY.value and event.old_state == State.INITIALIZING.value:
                group.member_succeeded(member, "started")
            group.refresh(f"server {event.mcp_server_id} changed")

    async def _recover_loop(self) -> None:
        """Members out of rotation are checked every ``health.check_interval_s``: a running one gets a
        health check, a dead one (once its backoff allows) or a cold one is started."""
        while True:
            await asyncio.sleep(TICK_S)
            now = self._clock()
            for group in list(self.groups.values()):
                for member in group.members:
                    if member.in_rotation or member.checking or now < member.next_check_at:
                        continue
                    member.next_check_at = now + group.spec.health.check_interval_s
                    member.checking = True
                    self._spawn(self._recover(member))

    @staticmethod
    async def _recover(member: Member) -> None:
        server = member.server
        try:
            if server.state in (State.READY, State.DEGRADED):
                await server.health_check()
            elif server.state in (State.DEAD, State.COLD) and (
                    server.retry_allowed_at is None or server.retry_allowed_at <= time.time()):
                with contextlib.suppress(HangarError):
                    await server.ensure_ready()
        except Exception:  # never expected: a check reports through events, not exceptions
            log.exception("recovering %s failed", server.server_id)
        finally:
            member.checking = False
