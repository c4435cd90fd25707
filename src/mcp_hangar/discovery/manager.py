"""The discovery flow: sources by id, proposals, limits, checks, approval and removal.

Each source is scanned on a timer (``refresh_interval_s``) and whenever its ``watch()`` hints at a
change; scans of one source never overlap. A scan's result is reconciled with the records:

- a new name is checked against conflicts (the config file and REST servers win over every source;
  between sources the lower ``PRIORITY`` wins, then the earlier source), ``max_servers_per_source`` and
  ``max_registrations_per_minute`` (refusals are announced with ``McpServerDiscoveryRefused``), then the
  health check (start, ``tools/list``, stop) when ``require_health_check`` is on, and becomes
  ``quarantined`` (invalid, or failed checks), ``pending``, or with ``auto_register`` ``approved``;
- a changed proposal is evaluated again; a rejected one stays rejected until it changes;
- a vanished pending or quarantined proposal is dropped; a vanished approved server stays (additive) or
  is stopped and removed after ``grace_period_s`` (authoritative).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError as PydanticValidationError

from ..config import DiscoverySettings, DiscoverySourceSpec, ServerSpec, spec_to_dict
from ..config_state import declared_sources
from ..errors import (
    ConflictError,
    DiscoveredServerNotFoundError,
    DiscoverySourceError,
    DiscoverySourceNotFoundError,
    HangarError,
    StoreError,
    ValidationError,
)
from ..events import McpServerUpdated
from ..group_config import GroupMemberSpec
from ..supervisor import ManagedServer
from .base import WATCHING, Discovered, format_pydantic
from .checks import health_check
from .events import (
    DiscoveryCycleCompleted,
    DiscoverySourceHealthChanged,
    McpServerApproved,
    McpServerDiscovered,
    McpServerDiscoveryConfigChanged,
    McpServerDiscoveryLost,
    McpServerDiscoveryRefused,
    McpServerQuarantined,
    McpServerRejected,
)
from .records import Record, SourceState, Status
from .registry import create_source, priority

if TYPE_CHECKING:
    from ..hangar import Hangar

log = logging.getLogger(__name__)

RATE_WINDOW_S = 60.0
CHECK_CONCURRENCY = 4
WATCH_BACKOFF_CAP_S = 30.0


class DiscoveryManager:
    """Owned by ``Hangar`` when the config file has a ``discovery:`` block."""

    def __init__(self, hangar: Hangar) -> None:
        settings = hangar.loaded.config.discovery
        assert settings is not None
        self.hangar = hangar
        self.settings = settings
        self.bus = hangar.bus
        self.sources: dict[str, SourceState] = {}
        self.records: dict[str, Record] = {}
        self._checks = asyncio.Semaphore(CHECK_CONCURRENCY)
        self._loop_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._removals: dict[str, asyncio.Task[None]] = {}
        self._trials: set[ManagedServer] = set()  # servers started by a health check right now
        self._closing = False

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Load decisions and REST sources, re-register approved servers, start the loops."""
        for data in await self.hangar.store.load_discovery_records():
            record = Record.from_dict(data)
            self.records[record.name] = record
            if record.approved_spec is not None:
                self._restore(record)
        for sid, spec in declared_sources(self.settings):
            self._install(sid, spec, "config")
        for sid, data in (await self.hangar.store.load_discovery_sources()).items():
            if sid in self.sources:
                log.warning("saved discovery source %r clashes with one of the config file; ignored", sid)
                continue
            try:
                spec = DiscoverySourceSpec.model_validate(data)
            except PydanticValidationError as exc:
                log.error("saved discovery source %r is invalid and was skipped: %s", sid, format_pydantic(exc))
                continue
            self._install(sid, spec, "api")
        if self.settings.enabled:
            self._loop_task = asyncio.get_running_loop().create_task(self._refresh_loop(), name="discovery")

    def _restore(self, record: Record) -> None:
        existing = self.hangar.servers.get(record.name)
        if existing is not None or record.name in self.hangar.groups.groups:
            log.warning("approved discovered server %r clashes with a declared server or group; the declared "
                        "one wins", record.name)
            return
        try:
            spec = ServerSpec.model_validate(record.approved_spec)
        except PydanticValidationError as exc:
            log.error("approved discovered server %r is invalid and was skipped: %s", record.name,
                      format_pydantic(exc))
            return
        self.hangar.register_discovered(record.name, spec, record.tools)

    async def aclose(self) -> None:
        self._closing = True
        tasks = [t for t in (self._loop_task, *self._tasks, *self._removals.values()) if t is not None]
        for state in self.sources.values():
            tasks += [t for t in (state.watch_task, state.scan_task) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
        if self._trials:  # health checks cut short: their processes stop before Hangar's other servers
            await asyncio.gather(*(s.stop("shutdown") for s in list(self._trials)), return_exceptions=True)
        for state in self.sources.values():
            await self._close_source(state)

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # ------------------------------------------------------------------ sources

    def _install(self, source_id: str, spec: DiscoverySourceSpec, origin: Any) -> SourceState:
        state = SourceState(source_id, spec, origin)
        try:
            state.source = create_source(source_id, spec.source_type, spec.config)
        except (ValueError, HangarError) as exc:  # e.g. a plug-in that went away since it was saved
            state.create_error = str(exc)
            state.is_healthy, state.error_message = False, str(exc)
        self.sources[source_id] = state
        self._start_watch(state)
        return state

    def _start_watch(self, state: SourceState) -> None:
        if self.settings.enabled and state.spec.enabled and hasattr(state.source, "watch"):
            state.watch_task = asyncio.get_running_loop().create_task(
                self._watch(state), name=f"discovery-watch-{state.source_id}")

    async def _close_source(self, state: SourceState) -> None:
        for task in (state.watch_task, state.scan_task):
            if task is not None and task is not asyncio.current_task():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
        state.watch_task = state.scan_task = None
        if state.source is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(state.source.close(), 10)

    def get_source(self, source_id: str) -> SourceState:
        state = self.sources.get(source_id)
        if state is None:
            raise DiscoverySourceNotFoundError(source_id)
        return state

    async def add_source(self, spec: DiscoverySourceSpec) -> str:
        """Register a source (REST); saved, watched, and scanned at once in the background."""
        source_id = spec.id or f"{spec.source_type}-{secrets.token_hex(3)}"
        if source_id in self.sources:
            raise ConflictError(f"discovery source '{source_id}' already exists")
        saved = spec.model_copy(update={"id": source_id})
        await self.hangar.store.save_discovery_source(source_id, saved.model_dump(mode="json"))
        state = self._install(source_id, saved, "api")
        if state.spec.enabled:
            self.request_scan(state, "startup")
        return source_id

    async def update_source(self, source_id: str, changes: dict[str, Any]) -> SourceState:
        """Change mode, enabled or config; the source is rebuilt. Config-file sources are not saved."""
        state = self.get_source(source_id)
        if "source_type" in changes and changes["source_type"] != state.spec.source_type:
            raise ValidationError("source_type cannot change: remove the source and register a new one")
        merged = {**state.spec.model_dump(mode="json"), **changes, "id": source_id}
        try:
            spec = DiscoverySourceSpec.model_validate(merged)
        except PydanticValidationError as exc:
            raise ValidationError(format_pydantic(exc)) from None
        if state.origin == "api":
            await self.hangar.store.save_discovery_source(source_id, spec.model_dump(mode="json"))
        async with state.lock:
            await self._close_source(state)
            self.sources.pop(source_id, None)
            fresh = self._install(source_id, spec, state.origin)
            for name in ("cycles", "errors", "found", "last_discovery", "last_duration_ms", "admissions"):
                setattr(fresh, name, getattr(state, name))
        if fresh.spec.enabled:
            self.request_scan(fresh, "request")
        return fresh

    async def remove_source(self, source_id: str) -> None:
        """Forget a source: its pending and quarantined proposals go; approved servers stay."""
        state = self.get_source(source_id)
        if state.origin == "api":
            await self.hangar.store.delete_discovery_source(source_id)
        self.sources.pop(source_id, None)
        async with state.lock:
            await self._close_source(state)
            for record in [r for r in self.records.values() if r.source_id == source_id]:
                if record.approved_spec is None and record.status != "rejected":
                    await self._drop(record, "source_removed")

    async def apply_declared(self, settings: DiscoverySettings) -> dict[str, list[str]]:
        """Take the config file's new ``discovery:`` block (a reload): its settings, and its sources added,
        changed (rebuilt) or removed. Sources registered through REST stay. Returns the source ids by outcome."""
        self.settings = settings
        if settings.enabled and self._loop_task is None:
            self._loop_task = asyncio.get_running_loop().create_task(self._refresh_loop(), name="discovery")
        elif not settings.enabled and self._loop_task is not None:
            self._loop_task.cancel()
            self._loop_task = None
        out: dict[str, list[str]] = {"added": [], "removed": [], "updated": [], "unchanged": []}
        wanted = dict(declared_sources(settings))
        for sid in [sid for sid, st in self.sources.items() if st.origin == "config" and sid not in wanted]:
            await self.remove_source(sid)
            out["removed"].append(sid)
        for sid, spec in wanted.items():
            state = self.sources.get(sid)
            if state is None:
                fresh = self._install(sid, spec, "config")
                if fresh.spec.enabled:
                    self.request_scan(fresh, "startup")
                out["added"].append(sid)
                continue
            if state.origin != "config":  # the file takes over a source registered through REST
                await self.hangar.store.delete_discovery_source(sid)
                state.origin = "config"
            elif state.spec == spec:
                out["unchanged"].append(sid)
                continue
            await self.update_source(sid, spec.model_dump(mode="json", exclude={"id"}))
            out["updated"].append(sid)
        return out

    # ------------------------------------------------------------------ scanning

    async def _refresh_loop(self) -> None:
        trigger = "startup"
        while True:
            for state in list(self.sources.values()):
                if state.spec.enabled:
                    self.request_scan(state, trigger)
            trigger = "interval"
            await asyncio.sleep(self.settings.refresh_interval_s)

    async def _watch(self, state: SourceState) -> None:
        """Follow the source's change hints; reconnect with backoff when the stream breaks."""
        failures = 0
        source = state.source
        while source is not None:
            try:
                async for hint in source.watch():  # type: ignore[attr-defined]
                    failures = 0
                    log.debug("discovery source %s: %s", state.source_id, hint)
                    if hint == WATCHING:  # catch up on what changed before the watch was established
                        state.watching = True
                        self.request_scan(state, "watch")
                    else:
                        self.request_scan(state, "event")
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                log.info("discovery source %s: watch failed (%s); retrying", state.source_id, exc)
            finally:
                state.watching = False
            await asyncio.sleep(min(WATCH_BACKOFF_CAP_S, 0.5 * 2 ** min(failures, 10)))

    def request_scan(self, state: SourceState, trigger: str) -> None:
        """Scan soon; requests that arrive while a scan runs are folded into one more scan."""
        if self._closing:
            return
        if state.scan_task is not None and not state.scan_task.done():
            state.rescan = trigger
            return

        async def run() -> None:
            current: str | None = trigger
            while current is not None and not self._closing:
                state.rescan = None
                with contextlib.suppress(HangarError):
                    await self.scan(state.source_id, current)
                current = state.rescan

        state.scan_task = asyncio.get_running_loop().create_task(run(), name=f"discovery-scan-{state.source_id}")

    async def scan_all(self, trigger: str = "request") -> list[dict[str, Any]]:
        results = []
        for sid in list(self.sources):
            if self.sources[sid].spec.enabled:
                try:
                    results.append(await self.scan(sid, trigger))
                except HangarError as exc:
                    results.append({"source_id": sid, "error": exc.message})
        return results

    async def scan(self, source_id: str, trigger: str = "request") -> dict[str, Any]:
        """Scan one source now and reconcile; answers what it found. ``DiscoverySourceError`` if unreadable."""
        state = self.get_source(source_id)
        async with state.lock:
            began = time.perf_counter()
            try:
                if state.source is None:
                    raise DiscoverySourceError(state.create_error or "the source could not be created")
                found = await state.source.scan()
            except Exception as exc:  # a plug-in may raise anything: it is the source's health, not ours
                error = exc.message if isinstance(exc, HangarError) else f"{type(exc).__name__}: {exc}"
                state.errors += 1
                self._set_health(state, False, error)
                self._cycle(state, began, 0, trigger, error)
                raise DiscoverySourceError(f"discovery source '{source_id}': {error}") from None
            self._set_health(state, True, None)
            await self._reconcile(state, found, recheck=trigger in ("interval", "request"))
            state.found = len(found)
            self._cycle(state, began, len(found), trigger, None)
        mine = [r for r in self.records.values() if r.source_id == source_id and r.present]
        return {
            "source_id": source_id,
            "scan_triggered": True,
            "mcp_servers_found": len(found),
            "discovered": sorted({d.name for d in found}),
            "pending": sorted(r.name for r in mine if r.status == "pending"),
            "quarantined": sorted(r.name for r in mine if r.status == "quarantined"),
            "approved": sorted(r.name for r in mine if r.status == "approved"),
            "refused": dict(sorted(state.refused.items())),
        }

    def _cycle(self, state: SourceState, began: float, found: int, trigger: str, error: str | None) -> None:
        state.cycles += 1
        state.last_discovery = time.time()
        state.last_duration_ms = round((time.perf_counter() - began) * 1000, 3)
        self.bus.publish(DiscoveryCycleCompleted(source_id=state.source_id, source_type=state.source_type,
                                                 found=found, duration_ms=state.last_duration_ms, trigger=trigger,
                                                 error=error))

    def _set_health(self, state: SourceState, healthy: bool, error: str | None) -> None:
        changed = state.is_healthy != healthy or (not healthy and state.error_message != error)
        state.is_healthy, state.error_message = healthy, error
        if changed:
            self.bus.publish(DiscoverySourceHealthChanged(source_id=state.source_id, source_type=state.source_type,
                                                          is_healthy=healthy, error_message=error))

    # ------------------------------------------------------------------ reconciling

    def _owns(self, state: SourceState, record: Record) -> bool:
        return record.source_id == state.source_id or record.source_id not in self.sources  # orphans are adopted

    def _conflict(self, state: SourceState, name: str) -> str | None:
        server = self.hangar.servers.get(name)
        if server is not None and server.source != "discovery":
            where = "the config file" if server.source == "config" else "REST"
            return f"'{name}' is an MCP server declared in {where}; the declared server wins"
        if name in self.hangar.groups.groups:
            return f"'{name}' is a group id"
        record = self.records.get(name)
        if record is None or self._owns(state, record):
            return None
        owner = self.sources[record.source_id]
        if record.approved_spec is not None:
            return f"'{name}' is registered from discovery source '{owner.source_id}'"
        if priority(owner.source_type) <= priority(state.source_type):
            return f"'{name}' is proposed by discovery source '{owner.source_id}', which has priority"
        return None

    def _refuse(self, state: SourceState, name: str, reason: str, message: str) -> None:
        if state.refused.get(name) == reason:
            return  # announced already
        state.refused[name] = reason
        log.warning("discovery source %s: %s refused: %s", state.source_id, name, message)
        self.bus.publish(McpServerDiscoveryRefused(mcp_server_id=name, source_id=state.source_id, reason=reason,
                                                   message=message))

    def _rate_ok(self, state: SourceState) -> bool:
        now = time.monotonic()
        while state.admissions and now - state.admissions[0] >= RATE_WINDOW_S:
            state.admissions.popleft()
        if len(state.admissions) >= self.settings.security.max_registrations_per_minute:
            return False
        state.admissions.append(now)
        return True

    async def _reconcile(self, state: SourceState, found: list[Discovered], recheck: bool) -> None:
        security = self.settings.security
        seen: dict[str, Discovered] = {}
        for item in found:
            seen.setdefault(item.name, item)
        owned = {n for n, r in self.records.items() if self._owns(state, r) and r.present}
        refused_now: set[str] = set()
        accepted: list[Discovered] = []
        for name in sorted(seen, key=lambda n: (n not in owned, n)):  # what it already has keeps its slot
            conflict = self._conflict(state, name)
            if conflict is not None:
                self._refuse(state, name, "conflict", conflict)
            elif len(accepted) >= security.max_servers_per_source:
                self._refuse(state, name, "max_servers_per_source",
                             f"source '{state.source_id}' already proposes {security.max_servers_per_source} "
                             "servers (max_servers_per_source)")
            else:
                accepted.append(seen[name])
                continue
            refused_now.add(name)
        fresh: list[Discovered] = []
        for item in accepted:
            record = self.records.get(item.name)
            if record is not None and record.source_id == state.source_id and record.fingerprint == item.fingerprint \
                    and not (recheck and record.recheck and record.status == "quarantined"):
                await self._seen_again(record)
                continue
            if record is not None and record.approved_spec is not None and record.fingerprint != item.fingerprint:
                self.bus.publish(McpServerDiscoveryConfigChanged(
                    mcp_server_id=item.name, source_id=state.source_id, old_fingerprint=record.fingerprint,
                    new_fingerprint=item.fingerprint))
            elif record is not None and record.source_id != state.source_id \
                    and record.fingerprint == item.fingerprint:  # adopted, unchanged
                record.source_id, record.source_type = state.source_id, state.source_type
                await self._seen_again(record)
                continue
            if self._rate_ok(state):
                fresh.append(item)
            else:
                self._refuse(state, item.name, "max_registrations_per_minute",
                             f"source '{state.source_id}' proposed more than "
                             f"{security.max_registrations_per_minute} servers in a minute")
                refused_now.add(item.name)
        state.refused = {n: r for n, r in state.refused.items() if n in refused_now}
        await asyncio.gather(*(self._propose(state, item) for item in fresh))
        present = {item.name for item in accepted}
        for record in [r for r in self.records.values() if r.source_id == state.source_id]:
            if record.name not in present and record.present:
                await self._lost(state, record)

    async def _seen_again(self, record: Record) -> None:
        record.last_seen = time.time()
        if not record.present:
            record.present, record.lost_at = True, None
            removal = self._removals.pop(record.name, None)
            if removal is not None:
                removal.cancel()
            await self._save(record)

    async def _propose(self, state: SourceState, item: Discovered) -> None:
        security = self.settings.security
        previous = self.records.get(item.name)
        status: Status
        reason: str | None = item.error
        tools: list[dict[str, Any]] | None = None
        if item.spec is None:
            status = "quarantined"
        else:
            if security.require_health_check:
                reason, tools = await self._health_check(item.name, item.spec)
            if reason is not None and not security.quarantine_on_failure:
                self._refuse(state, item.name, "health_check_failed", reason)
                return
            status = "quarantined" if reason else ("approved" if self.settings.auto_register else "pending")
        if self._closing or self.sources.get(state.source_id) is not state:
            return
        conflict = self._conflict(state, item.name)  # the world may have changed during the check
        if conflict is not None:
            self._refuse(state, item.name, "conflict", conflict)
            return
        record = Record(
            name=item.name, source_id=state.source_id, source_type=state.source_type, status="pending",
            fingerprint=item.fingerprint, spec=spec_to_dict(item.spec) if item.spec else None, group=item.group,
            origin=item.origin, reason=reason, tools=tools, recheck=item.spec is not None and reason is not None,
            approved_spec=previous.approved_spec if previous else None,
            discovered_at=previous.discovered_at if previous else time.time(),
        )
        self.records[item.name] = record
        self.bus.publish(McpServerDiscovered(mcp_server_id=item.name, source_id=state.source_id,
                                             source_type=state.source_type, status=status,
                                             fingerprint=item.fingerprint, origin=item.origin))
        if status == "quarantined":
            record.status = "quarantined"
            self.bus.publish(McpServerQuarantined(mcp_server_id=item.name, source_id=state.source_id,
                                                  reason=reason or "failed the checks"))
            await self._save(record)
        elif status == "approved":
            try:
                await self._register(record, automatic=True)
            except HangarError as exc:
                log.warning("auto-registration of %r failed: %s", item.name, exc.message)
                await self._save(record)
        else:
            await self._save(record)

    async def _health_check(self, name: str, spec: ServerSpec) -> tuple[str | None, list[dict[str, Any]] | None]:
        async with self._checks:
            return await health_check(name, spec, timeout=self.settings.security.health_check_timeout_s,
                                      reaper=self.hangar.reaper, instance=self.hangar.instance_label,
                                      running=self._trials)

    async def _lost(self, state: SourceState, record: Record) -> None:
        record.present, record.lost_at = False, time.time()
        if record.approved_spec is None and record.status != "rejected":
            await self._drop(record, "dropped")
            return
        action = "kept"
        if record.approved_spec is not None and state.spec.mode == "authoritative":
            action = "removal_scheduled"
            self._removals[record.name] = asyncio.get_running_loop().create_task(
                self._remove_later(state.source_id, record.name, record.lost_at))
        await self._save(record)
        self.bus.publish(McpServerDiscoveryLost(mcp_server_id=record.name, source_id=record.source_id,
                                                status=record.status, action=action))

    async def _drop(self, record: Record, action: str) -> None:
        self.records.pop(record.name, None)
        with contextlib.suppress(StoreError):
            await self.hangar.store.delete_discovery_record(record.name)
        self.bus.publish(McpServerDiscoveryLost(mcp_server_id=record.name, source_id=record.source_id,
                                                status=record.status, action=action))

    async def _remove_later(self, source_id: str, name: str, lost_at: float | None) -> None:
        await asyncio.sleep(self.settings.grace_period_s)
        self._removals.pop(name, None)
        record = self.records.get(name)
        state = self.sources.get(source_id)
        if record is None or record.present or record.lost_at != lost_at or state is None \
                or state.spec.mode != "authoritative":
            return
        server = self.hangar.servers.get(name)
        if server is not None and server.source == "discovery":
            with contextlib.suppress(HangarError):
                await self.hangar.delete_server(name, reason="discovery_lost")  # stops it, then forgets it
        await self.forget(name)

    async def _save(self, record: Record) -> None:
        try:
            await self.hangar.store.save_discovery_record(record.name, record.to_dict())
        except StoreError as exc:
            log.error("could not save the discovery record of %r: %s", record.name, exc.message)

    # ------------------------------------------------------------------ decisions

    def pending(self) -> list[Record]:
        return sorted((r for r in self.records.values() if r.status == "pending"), key=lambda r: r.name)

    def quarantined(self) -> list[Record]:
        return sorted((r for r in self.records.values() if r.status == "quarantined"), key=lambda r: r.name)

    def all_records(self) -> list[Record]:
        return sorted(self.records.values(), key=lambda r: r.name)

    def _undecided(self, name: str) -> Record:
        record = self.records.get(name)
        if record is None or record.status not in ("pending", "quarantined"):
            raise DiscoveredServerNotFoundError(name, "pending or quarantined")
        return record

    async def approve(self, name: str) -> Record:
        """Register a pending (or, overriding the checks, a quarantined) server; it joins the fleet cold."""
        record = self._undecided(name)
        if record.spec is None:
            raise ValidationError(f"'{name}' cannot be approved: {record.reason}")
        server = self.hangar.servers.get(name)
        if (server is not None and server.source != "discovery") or name in self.hangar.groups.groups:
            raise ConflictError(f"'{name}' is already a declared MCP server or group")
        await self._register(record, automatic=False)
        return record

    async def reject(self, name: str) -> Record:
        """Remember the refusal: the same proposal is not offered again until it changes."""
        record = self._undecided(name)
        record.status, record.decided_at = "rejected", time.time()
        await self.hangar.store.save_discovery_record(name, record.to_dict())
        self.bus.publish(McpServerRejected(mcp_server_id=name, source_id=record.source_id))
        return record

    async def _register(self, record: Record, *, automatic: bool) -> None:
        spec = ServerSpec.model_validate(record.spec)
        server = self.hangar.servers.get(record.name)
        before = record.status, record.approved_spec, record.decided_at
        record.status, record.approved_spec, record.decided_at = "approved", record.spec, time.time()
        try:
            await self.hangar.store.save_discovery_record(record.name, record.to_dict())
        except StoreError:
            record.status, record.approved_spec, record.decided_at = before
            raise
        if server is None:
            self.hangar.register_discovered(record.name, spec, record.tools)
        else:  # an approved change of a server already in the fleet
            changed = sorted(k for k in ServerSpec.model_fields if getattr(server.spec, k) != getattr(spec, k))
            if server.upstream is not None:
                await server.stop("config_changed")
            server.replace_spec(spec)
            self.bus.publish(McpServerUpdated(mcp_server_id=record.name, changed_fields=changed,
                                              restart_required=True))
        if record.group and record.group in self.hangar.groups.groups:
            try:
                await self.hangar.groups.add_member(record.group, GroupMemberSpec(member_id=record.name))
            except (HangarError, PydanticValidationError) as exc:
                log.warning("approved server %r could not join group %r: %s", record.name, record.group, exc)
        self.bus.publish(McpServerApproved(mcp_server_id=record.name, source_id=record.source_id,
                                           automatic=automatic))

    async def forget(self, name: str) -> None:
        """The server was deleted from the fleet: forget the decision (a source may propose it again)."""
        removal = self._removals.pop(name, None)
        if removal is not None and removal is not asyncio.current_task():
            removal.cancel()
        if self.records.pop(name, None) is not None:
            with contextlib.suppress(StoreError):
                await self.hangar.store.delete_discovery_record(name)
