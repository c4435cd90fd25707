"""Hot reload of the config file: one code path for REST, the file watcher, SIGHUP and the MCP tool.

A reload reads and validates the whole file first; any problem keeps the running state untouched, is
answered with a ``ConfigError`` naming the file, line and key, and is announced with
``ConfigurationReloadFailed``. Only then is the difference applied, server by server:

- added: registered cold (started when ``auto_start``);
- removed: stopped, then removed (it leaves its groups first);
- changed in a launch-relevant field (``ServerSpec.launch_fields``): a running server is restarted;
- changed otherwise: updated in place, its process keeps running;
- unchanged: untouched.

Groups and discovery sources declared in the file follow the same rule. A server, group or source
created through REST whose id the file now declares is taken over by the file. The ``auth:`` block
is applied too, except ``enabled`` and ``api_key.header_name`` (see ``auth.reconfigure``); the
result's ``auth`` entry says what changed. Other settings are recorded and take effect at the next
start (the result lists them as ``restart_required``). Reloads are serialized.

A server that must restart or go is first held (``admission``): new calls wait for the new process
(or, when it is removed, get a 404; a group routes around it at once). ``graceful`` (the default) lets
its running calls finish first, for at most ``config_reload.drain_timeout_s``; ``graceful=false``
stops it at once, and the calls cut off get a 503 saying so.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .auth.reconfigure import restart_required as auth_restart_required
from .config import HangarConfig, LoadedConfig, ServerSpec, parse_config_text
from .config_events import ConfigurationReloaded, ConfigurationReloadFailed, ConfigurationReloadRequested
from .config_state import document_of_config
from .errors import ConfigError, ConflictError, HangarError, ValidationError
from .events import McpServerUpdated
from .models import State

if TYPE_CHECKING:
    from .hangar import Hangar
    from .supervisor import ManagedServer

log = logging.getLogger(__name__)

# Sections a reload applies at once; a change anywhere else needs a restart.
LIVE_SECTIONS = frozenset({"mcp_servers", "groups", "discovery", "auth"})  # auth: but two of its settings
SAFETY_CHECK_MS = 1000  # the watcher looks at the file this often even without file-system events


@dataclass
class ReloadPlan:
    """What a validated file changes, computed before anything is touched."""

    loaded: LoadedConfig
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    restart: list[str] = field(default_factory=list)  # changed launch fields
    in_place: list[str] = field(default_factory=list)  # changed other fields (or taken over from REST)
    unchanged: list[str] = field(default_factory=list)
    restart_required: list[str] = field(default_factory=list)  # settings sections that changed


class ConfigReloader:
    """Owned by ``Hangar``; ``reload(trigger)`` is the one entry point, ``watch()`` the file watcher."""

    def __init__(self, hangar: Hangar) -> None:
        self.hangar = hangar
        self._lock = asyncio.Lock()
        self._seen_text = hangar.loaded.text  # the file content last applied or refused

    @property
    def path(self) -> Path | None:
        return self.hangar.loaded.path

    async def reload(self, trigger: str, *, graceful: bool = True) -> dict[str, Any]:
        """Re-read the file and apply it, or raise (``ConfigError`` 422) and keep everything as it is.
        ``graceful``: servers that restart or go finish their running calls first (bounded)."""
        async with self._lock:
            began = time.perf_counter()
            where = str(self.path) if self.path else "<embedded default>"
            bus = self.hangar.bus
            bus.publish(ConfigurationReloadRequested(config_path=where, trigger=trigger))
            try:
                plan = await self._plan(where)
            except HangarError as exc:
                problems = getattr(exc, "problems", [exc.message])
                bus.publish(ConfigurationReloadFailed(config_path=where, trigger=trigger, error=exc.error_name,
                                                      message=exc.message, problems=list(problems)))
                log.error("config reload (%s) refused, the running configuration is kept: %s", trigger,
                          "; ".join(problems))
                raise
            result = await self._apply(plan, graceful)
            result.update(success=True, config_path=where, trigger=trigger,
                          duration_ms=round((time.perf_counter() - began) * 1000, 3))
            bus.publish(ConfigurationReloaded(
                config_path=where, trigger=trigger, mcp_servers_added=result["mcp_servers_added"],
                mcp_servers_removed=result["mcp_servers_removed"], mcp_servers_updated=result["mcp_servers_updated"],
                mcp_servers_restarted=result["mcp_servers_restarted"], groups_added=result["groups_added"],
                groups_removed=result["groups_removed"], groups_updated=result["groups_updated"],
                discovery_sources_changed=sorted({*result["discovery_sources_added"],
                                                  *result["discovery_sources_removed"],
                                                  *result["discovery_sources_updated"]}),
                auth_changed=result["auth"]["changed"],
                unchanged_count=len(result["mcp_servers_unchanged"]), duration_ms=result["duration_ms"]))
            log.info("config reloaded (%s) in %.1f ms: %d added, %d removed, %d updated (%d restarted), "
                     "%d unchanged", trigger, result["duration_ms"], len(plan.added), len(plan.removed),
                     len(plan.restart) + len(plan.in_place), len(plan.restart), len(plan.unchanged))
            return result

    # ------------------------------------------------------------------ validate and plan

    async def _plan(self, where: str) -> ReloadPlan:
        if self.path is None:
            raise ValidationError("Hangar runs on the embedded default configuration: there is no file to reload")
        if self.hangar.stopping:
            raise ConflictError("Hangar is shutting down; the config file is not reloaded")
        try:
            text = await asyncio.to_thread(self.path.read_text, "utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{where}: cannot read: {exc}") from None
        self._seen_text = text
        cfg, raw, warnings = parse_config_text(text, where, self.hangar.loaded.lenient)
        self._check_namespaces(cfg, where)
        plan = ReloadPlan(LoadedConfig(cfg, self.path, raw, warnings, self.hangar.loaded.lenient, text))
        servers = self.hangar.servers
        for sid, spec in cfg.mcp_servers.items():
            server = servers.get(sid)
            if server is None:
                plan.added.append(sid)
            elif server.spec.launch_fields() != spec.launch_fields():
                plan.restart.append(sid)
            elif server.spec != spec or server.source != "config":
                plan.in_place.append(sid)
            else:
                plan.unchanged.append(sid)
        plan.removed = sorted(s.server_id for s in servers.values()
                              if s.source == "config" and s.server_id not in cfg.mcp_servers)
        old, new = document_of_config(self.hangar.loaded.config), document_of_config(cfg)
        plan.restart_required = sorted(k for k in {*old, *new} - LIVE_SECTIONS if old.get(k) != new.get(k))
        # Compared with what auth runs on (a setting that waits for a restart stays pending until then).
        pending = auth_restart_required(self.hangar.auth.settings, cfg.auth)
        plan.restart_required = sorted([*plan.restart_required, *(f"auth.{k}" for k in pending)])
        return plan

    def _check_namespaces(self, cfg: HangarConfig, where: str) -> None:
        """Servers and groups share one namespace; the file may take over its own kind only."""
        problems = []
        for sid in cfg.mcp_servers:
            if self.hangar.is_being_created(sid):
                problems.append(f"{where}: mcp_servers.{sid}: '{sid}' is being created through REST right now; "
                                "reload again in a moment")
            group = self.hangar.groups.groups.get(sid)
            if group is not None and sid not in cfg.groups:
                problems.append(f"{where}: mcp_servers.{sid}: '{sid}' is a group created through REST; "
                                "delete it or choose another id")
        for gid in cfg.groups:
            server = self.hangar.servers.get(gid)
            if server is not None and gid not in cfg.mcp_servers and server.source != "config":
                problems.append(f"{where}: groups.{gid}: '{gid}' is a server created at run time; "
                                "delete it or choose another id")
        if problems:
            raise ConfigError(problems[0] if len(problems) == 1 else f"{len(problems)} problems: {problems[0]}",
                              problems)

    # ------------------------------------------------------------------ apply

    async def _apply(self, plan: ReloadPlan, graceful: bool) -> dict[str, Any]:
        hangar = self.hangar
        cfg = plan.loaded.config
        hangar.loaded = plan.loaded
        drain_s = cfg.config_reload.drain_timeout_s if graceful else 0.0
        for sid in plan.removed:  # held at once: from now on its new calls wait, its groups route around it
            if (server := hangar.servers.get(sid)) is not None:
                server.hold()
                await hangar.groups.forget_server(sid)
        # Removed servers drain while the changed ones do: a reload waits for one drain, not two.
        removals = [asyncio.create_task(self._remove(sid, drain_s)) for sid in plan.removed]
        groups: dict[str, list[str]] = {"added": [], "removed": [], "updated": [], "unchanged": []}
        try:
            for sid in plan.added:
                hangar.register_declared(sid, cfg.mcp_servers[sid])
            cut = await asyncio.gather(*(self._update(sid, cfg.mcp_servers[sid], sid in plan.restart, drain_s)
                                         for sid in [*plan.restart, *plan.in_place]))
            declared = [g.group_id for g in hangar.groups.all() if g.source == "config"]
            for gid in sorted({*declared, *cfg.groups}):
                outcome = await hangar.groups.apply_declared(gid, cfg.groups.get(gid))
                groups[outcome].append(gid)
        finally:
            cut_removed = await asyncio.gather(*removals)
        cut += cut_removed
        sources = await self._apply_discovery(cfg)
        auth = hangar.auth.apply_settings(cfg.auth, str(self.path))
        return {
            "mcp_servers_added": sorted(plan.added),
            "mcp_servers_removed": plan.removed,
            "mcp_servers_updated": sorted([*plan.restart, *plan.in_place]),
            "mcp_servers_restarted": sorted(plan.restart),
            "mcp_servers_unchanged": sorted(plan.unchanged),
            **{f"groups_{k}": v for k, v in groups.items()},
            **{f"discovery_sources_{k}": v for k, v in sources.items()},
            "auth": auth,
            "restart_required": plan.restart_required,
            "warnings": plan.loaded.warnings,
            "graceful": graceful,
            "interrupted_calls": sum(cut),
        }

    async def _update(self, server_id: str, spec: ServerSpec, restart: bool, drain_s: float) -> int:
        """Apply a changed spec; return how many running calls a restart cut off."""
        server = self.hangar.servers[server_id]
        changed = sorted(k for k in ServerSpec.model_fields if getattr(server.spec, k) != getattr(spec, k))
        if server.source == "api":  # the file takes over a server created through REST
            await self.hangar.store.delete_server(server_id)
        server.source = "config"
        running = server.upstream is not None or server.state == State.INITIALIZING  # a start uses the old spec
        cut = 0
        if restart and running:
            server.hold()  # new calls wait for the new process
        try:
            if restart and running:
                cut = await self._drain(server, drain_s)
                server.note_cut("config_reload")
                await server.stop("config_reload")
            server.replace_spec(spec)
            self.hangar.bus.publish(McpServerUpdated(mcp_server_id=server_id, changed_fields=changed,
                                                     restart_required=restart))
            if restart and running:
                with contextlib.suppress(HangarError):  # its state and logs tell why it did not come back
                    await server.ensure_ready(explicit=True)
        finally:
            server.release()
        return cut

    async def _remove(self, server_id: str, drain_s: float) -> int:
        """Drain (when graceful), stop and remove a server the file no longer declares."""
        server = self.hangar.servers.get(server_id)
        if server is None:
            return 0  # already gone (a concurrent REST delete)
        try:
            cut = await self._drain(server, drain_s)
            server.removed = True  # the calls that waited are refused once it is released
            server.note_cut("config_reload")
            with contextlib.suppress(HangarError):
                await self.hangar.delete_server(server_id, reason="config_reload")
        finally:
            server.release()
        return cut

    async def _drain(self, server: ManagedServer, drain_s: float) -> int:
        """Let the running calls finish, for at most ``drain_s``; return how many are left to cut off."""
        if drain_s <= 0 or not server.in_flight:
            return server.in_flight
        left = await server.drain(drain_s)
        if left:
            log.warning("MCP Server %r: %d call(s) still running after the %.0f s drain of a reload are cut off",
                        server.server_id, left, drain_s)
        return left

    async def _apply_discovery(self, cfg: HangarConfig) -> dict[str, list[str]]:
        from .discovery.manager import DiscoveryManager

        hangar = self.hangar
        empty: dict[str, list[str]] = {"added": [], "removed": [], "updated": [], "unchanged": []}
        if cfg.discovery is None:
            if hangar.discovery is not None:
                manager, hangar.discovery = hangar.discovery, None
                empty["removed"] = sorted(manager.sources)
                await manager.aclose()  # approved servers stay in the fleet
            return empty
        if hangar.discovery is None:
            hangar.discovery = DiscoveryManager(hangar)
            await hangar.discovery.start()
            empty["added"] = sorted(hangar.discovery.sources)
            return empty
        return await hangar.discovery.apply_declared(cfg.discovery)

    # ------------------------------------------------------------------ triggers

    async def reload_if_changed(self, trigger: str) -> None:
        """Reload when the file's content differs from what was last applied or refused (a watcher saw
        a write, a rename or a touch). Errors are reported by ``reload``, and the watch goes on."""
        if self.path is None:
            return
        try:
            text = await asyncio.to_thread(self.path.read_text, "utf-8")
        except (OSError, UnicodeDecodeError):
            return  # between an editor's delete and its rename: the next event brings the new file
        if text == self._seen_text:
            return
        try:
            await self.reload(trigger)
        except HangarError:
            pass  # reported by reload (log and ConfigurationReloadFailed)
        except Exception:  # never expected; the watch must go on
            log.exception("config reload (%s) failed unexpectedly", trigger)

    def request(self, trigger: str) -> None:
        """Start a reload in the background (SIGHUP); its outcome is logged and published."""
        async def run() -> None:
            with contextlib.suppress(HangarError):
                await self.reload(trigger)

        self.hangar.spawn(run())

    async def watch(self) -> None:
        """Apply saved changes of the file until cancelled. The folder is watched, not the file, so an
        editor that writes a new file and renames it over the old one is seen too; a symlinked file is
        followed through its link's and its target's folders."""
        path = self.path
        if path is None:
            return
        settings = self.hangar.loaded.config.config_reload
        if not settings.use_watchdog:
            while True:
                await asyncio.sleep(settings.interval_s)
                await self.reload_if_changed("watcher")
        from watchfiles import awatch

        # A symlinked file (a Kubernetes ConfigMap swaps a `..data` link) changes without an event for its
        # own name: then every change in the link's folder and the target's folder is looked at.
        linked = path.is_symlink()
        folders = {path.parent.absolute(), path.resolve().parent} if linked else {path.parent.resolve()}
        name = path.name
        try:
            # Also woken every second without events: a change made before the watch was set up, or one
            # whose event was lost, is applied then (reading a small file once a second costs nothing).
            async for _ in awatch(*folders, watch_filter=lambda _change, p: linked or Path(p).name == name,
                                  debounce=settings.debounce_ms, step=50, recursive=False,
                                  rust_timeout=SAFETY_CHECK_MS, yield_on_timeout=True):
                await self.reload_if_changed("watcher")
        except (OSError, RuntimeError) as exc:  # no inotify here: fall back to looking at the file
            log.warning("cannot watch %s (%s); checking it every %.0f s instead", path, exc, settings.interval_s)
            while True:
                await asyncio.sleep(settings.interval_s)
                await self.reload_if_changed("watcher")
