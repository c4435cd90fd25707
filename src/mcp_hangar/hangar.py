"""The service core: the one API that the REST routes, the MCP front and the CLI call.

Servers declared in the config file are the file's: REST may start, stop, update or delete them at
run time, but such changes are not saved, and the file wins at the next start. Servers created
through REST are saved in the store (``source: api``) and come back after a restart. Groups
(``self.groups``) follow the same rule; a group id is a call target like a server id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError as PydanticValidationError

from . import __version__
from .auth.service import AuthService
from .config import LoadedConfig, ServerSpec, format_validation_error, spec_to_dict, validate_server_id
from .errors import ConflictError, HangarError, McpServerNotFoundError, StoreError, ValidationError
from .event_log import EventLog, make_event_log
from .event_retention import retention_loop
from .events import (
    EventBus,
    McpServerDeregistered,
    McpServerRegistered,
    McpServerToolsChanged,
    McpServerUpdated,
)
from .group_manager import GroupManager
from .groups import Group
from .models import State
from .reaper import Reaper
from .reload import ConfigReloader
from .store import HistoryWriter, Store
from .supervisor import ManagedServer
from .upstream.base import JsonObject
from .upstream.docker import cli_environment, engine_cli, instance_label, remove_orphans
from .upstream.ssrf import check_endpoint_address

if TYPE_CHECKING:
    from .discovery.manager import DiscoveryManager

log = logging.getLogger(__name__)

TICK_S = 1.0  # how often idle and health deadlines are checked
SHUTDOWN_BUDGET_S = 4.0


def parse_spec(data: dict[str, Any]) -> ServerSpec:
    try:
        return ServerSpec.model_validate(data)
    except PydanticValidationError as exc:
        raise ValidationError(format_validation_error(exc)) from None


class Hangar:
    """Owns the fleet, the event bus, the store and every background loop."""

    def __init__(self, loaded: LoadedConfig, data_dir: Path, *, bus: EventBus | None = None) -> None:
        self.loaded = loaded
        self.data_dir = data_dir
        self.bus = bus or EventBus()
        observability = loaded.config.observability
        self.store = Store(data_dir / "hangar.db", history_retention=observability.history_retention)
        self.history = HistoryWriter(self.store, self.bus)
        self.reaper = Reaper()
        self.servers: dict[str, ManagedServer] = {}
        self.instance_id = f"{socket.gethostname()[:24]}-{secrets.token_hex(4)}"
        # Every bus event, in order, for replay (the WebSocket stream's ``since``).
        self.event_log: EventLog = make_event_log(loaded.config.event_store, data_dir, self.bus,
                                                  produced_by=self.instance_id,
                                                  max_events=observability.event_log_max_events,
                                                  interval=loaded.config.event_store.flush_interval_ms / 1000)
        self.instance_label = instance_label(data_dir)  # stable for this data dir: owns its containers
        self.started_monotonic = time.monotonic()
        self.startup_complete = False
        self.stopping = False
        self._tasks: list[asyncio.Task[Any]] = []
        self._background: set[asyncio.Task[Any]] = set()
        # Called with (server, notification) for upstream notifications not tied to one call
        # (logging messages, resource and prompt list changes): the MCP fronts fan them out.
        self.notification_listeners: list[Callable[[ManagedServer, JsonObject], None]] = []
        self._creating: set[str] = set()  # ids whose REST create is being saved
        self._stored_versions: dict[str, int] = {}
        self.groups = GroupManager(bus=self.bus, store=self.store, servers=self.servers, spawn=self._spawn)
        # None when the config file has no `discovery:` block (its routes and tools then answer 404).
        self.discovery: DiscoveryManager | None = None
        if loaded.config.discovery is not None:  # imported only then: a boot without discovery skips it
            from .discovery.manager import DiscoveryManager

            self.discovery = DiscoveryManager(self)
        self.auth = AuthService(loaded.config.auth, data_dir / "auth.db", self.bus, self)
        self.reloader = ConfigReloader(self)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Open the store, register every server, start the loops and ``auto_start`` servers."""
        self.reaper.start()
        await self.store.open()
        await self.event_log.open()
        self._stored_versions = self.event_log.stream_versions()  # before this run publishes anything
        remembered = await self.store.load_tool_cache()
        for sid, spec in self.loaded.config.mcp_servers.items():
            self._register(sid, spec, "config", remembered.get(sid))
        for sid, data in (await self.store.load_servers()).items():
            if sid in self.servers:
                log.warning("server %r is declared in %s; the saved REST copy is ignored", sid,
                            self.loaded.source)
                continue
            try:
                spec = ServerSpec.model_validate(data)
            except PydanticValidationError as exc:
                log.error("saved server %r is invalid and was skipped: %s", sid, format_validation_error(exc))
                continue
            self._register(sid, spec, "api", remembered.get(sid))
        await self._restore_totals()
        await self._remove_orphan_containers()
        await self.groups.start(self.loaded.config.groups)
        await self.auth.open()
        if self.discovery is not None:
            await self.discovery.start()
        self._tasks = [
            asyncio.create_task(self._ticker(), name="hangar-ticker"),
            asyncio.create_task(self.history.run(), name="hangar-history"),
            asyncio.create_task(self.event_log.run(), name="hangar-event-log"),
            asyncio.create_task(retention_loop(self.event_log, self.loaded.config.event_store),
                                name="hangar-event-retention"),
        ]
        if self.loaded.path is not None and self.loaded.config.config_reload.enabled:
            self._tasks.append(asyncio.create_task(self.reloader.watch(), name="hangar-config-watch"))
        for server in self.servers.values():
            if server.spec.auto_start:
                self._spawn(self._auto_start(server))
        self.startup_complete = True

    async def _restore_totals(self) -> None:
        """Each server's counters continue from the event log (its snapshot and the events after it),
        up to what the previous run stored: the registrations just published are not counted."""
        for sid, server in self.servers.items():
            stream = f"mcp_server:{sid}"
            stored = self._stored_versions.get(stream, 0)
            if stored:
                try:
                    state, _ = await self.event_log.stream_state(stream, stored)
                except StoreError as exc:
                    log.error("cannot restore the counters of %r from the event log: %s", sid, exc.message)
                    continue
                server.restore_totals(state)

    async def _remove_orphan_containers(self) -> None:
        """Containers a crashed earlier run of this instance left behind; only ours, by label."""
        engines = {(s.spec.runtime, s.spec.docker_host) for s in self.servers.values() if s.spec.mode == "docker"}
        for runtime, _ in engines:
            spec = next(s.spec for s in self.servers.values() if s.spec.mode == "docker" and s.spec.runtime == runtime)
            try:
                cli = engine_cli(spec)
            except HangarError:
                continue
            removed = await remove_orphans(cli, cli_environment(spec), self.instance_label)
            if removed:
                log.warning("removed %d container(s) left by an earlier run: %s", len(removed), ", ".join(removed))

    async def _auto_start(self, server: ManagedServer) -> None:
        with contextlib.suppress(Exception):
            await server.ensure_ready(explicit=True)

    async def aclose(self) -> None:
        """Stop every server (in parallel, bounded) and release everything."""
        if self.stopping:
            return
        self.stopping = True
        for task in self._tasks:
            task.cancel()
        if self.discovery is not None:
            await self.discovery.aclose()
        await self.groups.aclose()
        stops = [s.stop("shutdown") for s in self.servers.values()]
        if stops:
            try:
                await asyncio.wait_for(asyncio.gather(*stops, return_exceptions=True), SHUTDOWN_BUDGET_S)
            except TimeoutError:
                log.warning("some servers did not stop within %.0f s; the reaper ends them", SHUTDOWN_BUDGET_S)
        if self._background:  # e.g. saving a tool list learned just now: let it finish, briefly
            await asyncio.wait(list(self._background), timeout=1.0)
        for task in [*self._tasks, *self._background]:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        await self.auth.close()
        await self.history.close()
        await self.event_log.close()
        await self.store.close()
        await asyncio.to_thread(self.reaper.stop)

    def spawn(self, coro: Any) -> None:
        """Run ``coro`` in the background; it is cancelled (after a short grace) when Hangar closes."""
        self._spawn(coro)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            now = time.monotonic()
            for server in list(self.servers.values()):
                if server.idle_expired(now):
                    self._spawn(server.stop("idle"))
                elif server.health_due(now):
                    self._spawn(server.health_check())

    # ------------------------------------------------------------------ registry

    def _register(
        self, server_id: str, spec: ServerSpec, source: Any, remembered: list[JsonObject] | None = None
    ) -> ManagedServer:
        server = ManagedServer(
            server_id, spec, source=source, bus=self.bus, reaper=self.reaper,
            remembered_tools=remembered, on_tools_changed=self._remember_tools,
            on_notification=self._relay_notification,
            # Endpoints from the config file are trusted; REST-registered ones are checked for SSRF.
            ssrf_trusted=list(self.loaded.config.ssrf.trusted_networks) if source == "api" else None,
            instance=self.instance_label,
        )
        self.servers[server_id] = server
        self.bus.publish(McpServerRegistered(mcp_server_id=server_id, mode=spec.mode, source=source))
        return server

    def _relay_notification(self, server: ManagedServer, message: JsonObject) -> None:
        for listener in list(self.notification_listeners):
            try:
                listener(server, message)
            except Exception:
                log.exception("notification listener failed")

    def _remember_tools(self, server: ManagedServer) -> None:
        tools = list(server.tools)
        self.bus.publish(McpServerToolsChanged(mcp_server_id=server.server_id, tools_count=len(tools)))
        self._spawn(self._save_tools(server.server_id, tools))

    async def _save_tools(self, server_id: str, tools: list[JsonObject]) -> None:
        with contextlib.suppress(StoreError):
            await self.store.save_tools(server_id, tools)

    def get(self, server_id: str) -> ManagedServer:
        server = self.servers.get(server_id)
        if server is None:
            raise McpServerNotFoundError(server_id)
        return server

    def list_servers(self, state: State | None = None) -> list[ManagedServer]:
        servers = sorted(self.servers.values(), key=lambda s: s.server_id)
        return [s for s in servers if state is None or s.state == state]

    async def create_server(self, server_id: str, spec: ServerSpec) -> ManagedServer:
        try:
            validate_server_id(server_id)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None
        if server_id in self.servers or server_id in self._creating:
            raise ConflictError(f"MCP Server '{server_id}' already exists")
        if server_id in self.groups.groups:
            raise ConflictError(f"'{server_id}' is already a group id; groups and servers share one namespace")
        if spec.mode == "remote" and spec.endpoint:  # SSRF guard for endpoints registered at run time
            await asyncio.to_thread(check_endpoint_address, spec.endpoint,
                                    list(self.loaded.config.ssrf.trusted_networks))
            if server_id in self.servers or server_id in self._creating:
                raise ConflictError(f"MCP Server '{server_id}' already exists")
        self._creating.add(server_id)  # claimed before the await, so a concurrent create gets the 409
        try:
            await self.store.save_server(server_id, spec_to_dict(spec))
        finally:
            self._creating.discard(server_id)
        server = self._register(server_id, spec, "api")
        if spec.auto_start:
            self._spawn(self._auto_start(server))
        return server

    async def update_server(self, server_id: str, changes: dict[str, Any]) -> tuple[ManagedServer, list[str], bool]:
        """Merge ``changes`` into the spec. Restart a running server when a launch field changed."""
        server = self.get(server_id)
        merged = {**server.spec.model_dump(mode="json", exclude_defaults=True), **changes}
        spec = parse_spec(merged)
        old = server.spec
        changed = sorted(k for k in ServerSpec.model_fields if getattr(old, k) != getattr(spec, k))
        restart = old.launch_fields() != spec.launch_fields()
        if server.source == "api":
            await self.store.save_server(server_id, spec_to_dict(spec))
        was_running = server.upstream is not None
        if restart and was_running:
            await server.stop("config_changed")
        server.replace_spec(spec)
        self.bus.publish(McpServerUpdated(mcp_server_id=server_id, changed_fields=changed,
                                          restart_required=restart))
        if restart and was_running:
            with contextlib.suppress(Exception):  # the state and logs tell why it did not come back
                await server.ensure_ready(explicit=True)
        return server, changed, restart and was_running

    async def delete_server(self, server_id: str, reason: str = "deleted") -> None:
        server = self.get(server_id)
        await self.groups.forget_server(server_id)  # it leaves its groups first (GroupMemberRemoved)
        await server.stop(reason)
        if server.source == "api":
            await self.store.delete_server(server_id)
        if server.source == "discovery" and self.discovery is not None:
            await self.discovery.forget(server_id)
        self.servers.pop(server_id, None)
        self.bus.publish(McpServerDeregistered(mcp_server_id=server_id, reason=reason))

    def is_being_created(self, server_id: str) -> bool:
        """Whether a REST create of ``server_id`` is being saved right now."""
        return server_id in self._creating

    def register_declared(self, server_id: str, spec: ServerSpec) -> ManagedServer:
        """A server the config file declares joins the fleet (a reload added it): cold, or starting
        when ``auto_start``."""
        server = self._register(server_id, spec, "config")
        if spec.auto_start:
            self._spawn(self._auto_start(server))
        return server

    def register_discovered(self, server_id: str, spec: ServerSpec,
                            tools: list[JsonObject] | None = None) -> ManagedServer:
        """An approved discovered server joins the fleet, cold (``tools``: as seen by its health check)."""
        if server_id in self.servers or server_id in self._creating or server_id in self.groups.groups:
            raise ConflictError(f"MCP Server '{server_id}' already exists")
        return self._register(server_id, spec, "discovery", tools)

    # ------------------------------------------------------------------ operations

    async def start_server(self, server_id: str) -> ManagedServer:
        server = self.get(server_id)
        await server.ensure_ready(explicit=True)
        return server

    async def stop_server(self, server_id: str, reason: str = "user_request") -> bool:
        return await self.get(server_id).stop(reason)

    def target(self, target_id: str) -> ManagedServer | Group:
        """What a call names: a server, or a group (served by its strategy)."""
        group = self.groups.groups.get(target_id)
        return group if group is not None else self.get(target_id)

    async def call_tool(self, server_id: str, tool: str, arguments: JsonObject | None = None,
                        meta: JsonObject | None = None) -> JsonObject:
        return await self.target(server_id).call_tool(tool, arguments, meta=meta)

    def uptime_s(self) -> float:
        return time.monotonic() - self.started_monotonic

    def system_info(self) -> dict[str, Any]:
        by_state: dict[str, int] = {s.value: 0 for s in State}
        invocations = failures = tools = 0
        for server in self.servers.values():
            by_state[server.state.value] += 1
            invocations += server.total_invocations
            failures += server.total_failures
            tools += len(server.tools)
        return {
            "version": __version__,
            "uptime_seconds": round(self.uptime_s(), 3),
            "instance_id": self.instance_id,
            "pid": os.getpid(),
            "config_source": self.loaded.source,
            "data_dir": str(self.data_dir),
            "total_mcp_servers": len(self.servers),
            "mcp_servers_by_state": by_state,
            "total_tools": tools,
            "total_invocations": invocations,
            "total_failures": failures,
            "overall_success_rate": (invocations - failures) / invocations if invocations else None,
        }
