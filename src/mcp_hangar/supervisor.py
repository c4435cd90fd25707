"""One managed MCP server: its state machine, single-flight start, calls, health, idle stop, logs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from . import __version__, tracing
from .admission import Admission, Slots
from .callers import Caller, CallerRegistry
from .config import ServerSpec, default_tools
from .errors import (
    HangarError,
    McpServerStartError,
    McpServerUnavailableError,
    ProbeUnansweredError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamResponseTooLargeError,
    UpstreamRpcError,
    UpstreamTimeoutError,
)
from .events import (
    EventBus,
    HealthCheckFailed,
    HealthCheckPassed,
    McpServerCrashed,
    McpServerStarted,
    McpServerStartFailed,
    McpServerStateChanged,
    McpServerStopped,
    ToolInvocationCompleted,
    ToolInvocationFailed,
    ToolInvocationRequested,
    new_id,
)
from .models import STARTABLE, DeadReason, State, can_transition
from .reaper import Reaper
from .resource_watch import ResourceWatches
from .upstream.base import JsonObject, Upstream
from .upstream.factory import make_upstream

log = logging.getLogger(__name__)

LOG_RING_LINES = 1000
BACKOFF_CAP_S = 60.0
GIVEN_UP_AFTER = 6  # consecutive failed starts or crashes before the reason becomes ``given_up``
HEALTH_TIMEOUT_S = 5.0
REAP_WAIT_S = 3.0  # how long a stop waits for a crashed process group to be reaped

Source = Literal["config", "api", "discovery"]
ToolsOrigin = Literal["live", "declared", "remembered", "unknown"]


@dataclass(frozen=True, slots=True)
class LogLine:
    recorded_at: float
    content: str
    stream: str = "stderr"


class ManagedServer(Admission, ResourceWatches):
    """Supervises one upstream. All methods run on the event loop; none blocks it."""

    def __init__(
        self,
        server_id: str,
        spec: ServerSpec,
        *,
        source: Source,
        bus: EventBus,
        reaper: Reaper | None,
        remembered_tools: list[JsonObject] | None = None,
        on_tools_changed: Callable[[ManagedServer], None] | None = None,
        on_notification: Callable[[ManagedServer, JsonObject], None] | None = None,
        ssrf_trusted: list[str] | None = None,
        instance: str = "",
    ) -> None:
        Admission.__init__(self)
        self.server_id = server_id
        self.spec = spec
        self.source: Source = source
        self._bus = bus
        self._reaper = reaper
        self._on_tools_changed = on_tools_changed
        self._on_notification = on_notification
        self._ssrf_trusted = ssrf_trusted  # None: the endpoint is trusted (declared in the config file)
        self._instance = instance  # labels the containers of docker-mode servers
        self.callers = CallerRegistry(server_id)
        self._probe_unanswered = False
        ResourceWatches.__init__(self)
        self.state = State.COLD
        self.dead_reason: DeadReason | None = None
        self.dead_since: float | None = None
        self.dead_message: str | None = None
        self.retry_allowed_at: float | None = None  # wall clock
        self.consecutive_failures = 0  # failed calls and health checks since the last success
        self.restart_failures = 0  # failed starts and crashes since the last good start
        self.total_invocations = 0
        self.total_failures = 0
        self.last_success_at: float | None = None
        self.last_failure_at: float | None = None
        self.last_used = time.monotonic()
        self.last_health_check = time.monotonic()
        self.started_at: float | None = None
        self.logs: deque[LogLine] = deque(maxlen=LOG_RING_LINES)
        self.log_listeners: list[Callable[[LogLine], None]] = []  # live followers (logs?follow=true)
        self.upstream: Upstream | None = None
        self._start_task: asyncio.Task[None] | None = None
        self._reaping: set[asyncio.Task[int | None]] = set()  # closes of upstreams that died on their own
        self._chores: set[asyncio.Future[Any]] = set()  # deliveries and refreshes started by notifications
        self._lifecycle = asyncio.Lock()
        self._slots = Slots(spec.max_concurrency)
        self._health_running = False
        self.tools: list[JsonObject] = []
        self.tools_origin: ToolsOrigin = "unknown"
        self._set_known_tools(remembered_tools)

    # ------------------------------------------------------------------ views

    def _set_known_tools(self, remembered: list[JsonObject] | None) -> None:
        if self.spec.tools is not None:
            self.tools, self.tools_origin = default_tools(self.spec), "declared"
        elif remembered is not None:
            self.tools, self.tools_origin = remembered, "remembered"
        else:
            self.tools, self.tools_origin = [], "unknown"

    @property
    def alive(self) -> bool:
        return self.state in (State.READY, State.DEGRADED) and self.upstream is not None

    @property
    def pid(self) -> int | None:
        return self.upstream.pid if self.upstream else None

    def dead_info(self) -> dict[str, Any] | None:
        if self.state != State.DEAD:
            return None
        return {
            "reason": self.dead_reason.value if self.dead_reason else None,
            "since": self.dead_since,
            "retry_allowed_at": self.retry_allowed_at,
            "message": self.dead_message,
        }

    def health_status(self) -> str:
        if self.state == State.READY:
            return "healthy"
        if self.state == State.DEGRADED:
            return "degraded"
        if self.state == State.DEAD:
            return "unhealthy"
        return "unknown"

    def health(self) -> dict[str, Any]:
        now = time.time()
        done = self.total_invocations
        return {
            "mcp_server_id": self.server_id,
            "state": self.state.value,
            "status": self.health_status(),
            "consecutive_failures": self.consecutive_failures,
            "total_invocations": done,
            "total_failures": self.total_failures,
            "success_rate": (done - self.total_failures) / done if done else None,
            "can_retry": self.retry_allowed_at is None or now >= self.retry_allowed_at,
            "retry_allowed_at": self.retry_allowed_at,
            "last_success_ago": now - self.last_success_at if self.last_success_at else None,
            "last_failure_ago": now - self.last_failure_at if self.last_failure_at else None,
            "dead": self.dead_info(),
        }

    def restore_totals(self, state: dict[str, Any]) -> None:
        """Continue the counters of an earlier run (the folded state of this server's event stream)."""
        self.total_invocations = int(state.get("total_invocations") or 0)
        self.total_failures = int(state.get("total_failures") or 0)
        self.last_success_at = state.get("last_success_at")
        self.last_failure_at = state.get("last_failure_at")

    def record_log(self, line: str) -> None:
        entry = LogLine(time.time(), line)
        self.logs.append(entry)
        for listener in self.log_listeners:
            listener(entry)

    # ------------------------------------------------------------------ state

    def _set_state(
        self, new: State, *, reason: DeadReason | None = None, message: str | None = None
    ) -> None:
        old = self.state
        if old == new:
            return
        if not can_transition(old, new):
            raise RuntimeError(f"invalid transition {old} -> {new} for {self.server_id}")
        self.state = new
        if new == State.DEAD:
            self.dead_reason, self.dead_since, self.dead_message = reason, time.time(), message
        else:
            self.dead_reason = self.dead_since = self.dead_message = None
        self._bus.publish(
            McpServerStateChanged(
                mcp_server_id=self.server_id,
                old_state=old.value,
                new_state=new.value,
                dead_reason=reason.value if reason else None,
                message=message,
            )
        )

    def _schedule_backoff(self) -> None:
        self.restart_failures += 1
        delay = min(BACKOFF_CAP_S, 2.0 ** (self.restart_failures - 1))
        self.retry_allowed_at = time.time() + delay

    # ------------------------------------------------------------------ start / stop

    async def ensure_ready(self, *, explicit: bool = False) -> Upstream:
        """Return a READY upstream, starting it if needed; concurrent callers share one start."""
        if self.state == State.READY and self.upstream is not None:
            return self.upstream
        if self.state == State.DEAD and not explicit and self.retry_allowed_at is not None:
            wait = self.retry_allowed_at - time.time()
            if wait > 0:
                raise McpServerUnavailableError(
                    f"MCP Server '{self.server_id}' is dead ({self.dead_reason}: {self.dead_message}); "
                    f"next start allowed in {wait:.1f} s",
                )
        task = self._start_task
        if task is None or task.done():
            task = asyncio.get_running_loop().create_task(self._start(), name=f"start-{self.server_id}")
            self._start_task = task
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if not task.cancelled() or (current is not None and current.cancelling()):
                raise  # this caller was cancelled, not the start
            # A stop cancelled the start this caller was waiting for.
        if self.state != State.READY or self.upstream is None:
            raise McpServerUnavailableError(f"MCP Server '{self.server_id}' was stopped while starting")
        return self.upstream

    async def _start(self) -> None:
        async with self._lifecycle:
            if self.state == State.READY:
                return
            if self.upstream is not None:  # degraded: replace the old process
                await self._close_upstream("restart")
            began = time.monotonic()
            budget = self.spec.startup_timeout_s  # for the handshake and every tools/list page together
            self._set_state(State.INITIALIZING)
            # A server that ignored the era probe once is spoken to in the legacy era from then on.
            spec = self.spec if self.spec.protocol != "auto" or not self._probe_unanswered else \
                self.spec.model_copy(update={"protocol": "legacy"})
            try:
                upstream = self._make_upstream(spec)
            except McpServerStartError as exc:
                self._fail_start(exc)
            try:
                try:
                    await upstream.start(budget)
                except ProbeUnansweredError:
                    self._probe_unanswered = True
                    self.record_log("[hangar] no answer to server/discover; restarting in the legacy era")
                    upstream = self._make_upstream(spec.model_copy(update={"protocol": "legacy"}))
                    await upstream.start(max(0.001, budget - (time.monotonic() - began)))
                tools = await self._list_tools(upstream, budget - (time.monotonic() - began))
                if upstream.broken is not None:  # died after answering: no exit callback would report it
                    raise upstream.broken
            except asyncio.CancelledError:
                await upstream.close()
                with contextlib.suppress(RuntimeError):
                    self._set_state(State.COLD)
                raise
            except UpstreamTimeoutError:
                await upstream.close()
                self._fail_start(McpServerStartError(
                    f"MCP Server '{self.server_id}' failed to start: the handshake and tools/list took longer "
                    f"than startup_timeout_s ({budget:g} s)"))
            except UpstreamError as exc:
                await upstream.close()
                self._fail_start(exc if isinstance(exc, McpServerStartError) else McpServerStartError(
                    f"MCP Server '{self.server_id}' failed to start: {exc.message}"))
            self.upstream = upstream
            upstream.set_exit_callback(self._on_exit)
            self.restart_failures = 0
            self.consecutive_failures = 0
            self.retry_allowed_at = None
            self.started_at = time.time()
            self.last_used = self.last_health_check = time.monotonic()
            changed = tools != self.tools
            self.tools, self.tools_origin = tools, "live"
            self._set_state(State.READY)
            self._bus.publish(
                McpServerStarted(
                    mcp_server_id=self.server_id,
                    mode=self.spec.mode,
                    tools_count=len(tools),
                    startup_duration_ms=round((time.monotonic() - began) * 1000, 3),
                    pid=upstream.pid,
                    protocol_version=upstream.protocol_version,
                )
            )
            if changed and self._on_tools_changed is not None:
                self._on_tools_changed(self)

    def _make_upstream(self, spec: ServerSpec) -> Upstream:
        return make_upstream(
            self.server_id, spec, reaper=self._reaper, on_log=self.record_log,
            on_notification=self._on_upstream_notification, on_request=self.callers.route_request,
            client_version=__version__, ssrf_trusted=self._ssrf_trusted, instance=self._instance,
        )

    def _fail_start(self, error: McpServerStartError) -> None:
        self._schedule_backoff()
        reason = DeadReason.GIVEN_UP if self.restart_failures >= GIVEN_UP_AFTER else DeadReason.START_FAILED
        self.record_log(f"[hangar] start failed: {error.message}")
        self._set_state(State.DEAD, reason=reason, message=error.message)
        self._bus.publish(
            McpServerStartFailed(mcp_server_id=self.server_id, error_type=error.error_name, message=error.message)
        )
        raise error

    async def _list_tools(self, upstream: Upstream, timeout: float) -> list[JsonObject]:
        """Every page of ``tools/list``, all within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        tools: list[JsonObject] = []
        cursor: Any = None
        for _ in range(1000):  # a server that pages forever is cut off
            params: JsonObject = {"cursor": cursor} if cursor else {}
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise UpstreamTimeoutError(f"'tools/list' did not finish within {timeout:g} s")
            result = await upstream.request("tools/list", params, remaining)
            page = result.get("tools")
            if not isinstance(page, list):
                raise UpstreamProtocolError("tools/list result has no 'tools' list")
            tools.extend(t for t in page if isinstance(t, dict) and isinstance(t.get("name"), str))
            cursor = result.get("nextCursor")
            if not cursor:
                break
        return tools

    async def stop(self, reason: str = "user_request") -> bool:
        """Stop the process if running or starting. Returns whether anything was stopped.

        An ``idle`` stop checks again that the server is idle: a call may have arrived since the
        ticker looked, and it must not be cut off.
        """
        if reason == "idle" and not self.idle_expired(time.monotonic()):
            return False
        interrupted = False
        task = self._start_task
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait([task])  # never raises; a cancellation of this caller still propagates
            interrupted = task.cancelled()
        if self._reaping:  # a crashed process group may still be on its way out
            await asyncio.wait(list(self._reaping), timeout=REAP_WAIT_S)
        async with self._lifecycle:
            if self.upstream is None:
                if self.state in (State.INITIALIZING, State.READY, State.DEGRADED):
                    self._set_state(State.COLD)
                if interrupted:
                    self._bus.publish(McpServerStopped(mcp_server_id=self.server_id, reason=reason))
                return interrupted
            code = await self._close_upstream(reason)
            if self.state != State.COLD:
                self._set_state(State.COLD)
            self._bus.publish(McpServerStopped(mcp_server_id=self.server_id, reason=reason, exit_code=code))
            return True

    async def _close_upstream(self, reason: str) -> int | None:
        upstream, self.upstream = self.upstream, None
        if upstream is None:
            return None
        code = await upstream.close()
        self.record_log(f"[hangar] stopped ({reason}), exit code {code}")
        return code

    def _on_exit(self, exit_code: int | None, message: str) -> None:
        """The upstream died on its own (crash, broken stream)."""
        upstream, self.upstream = self.upstream, None
        self.record_log(f"[hangar] {message}")
        self._schedule_backoff()
        reason = DeadReason.GIVEN_UP if self.restart_failures >= GIVEN_UP_AFTER else DeadReason.CRASHED
        if self.state in (State.READY, State.DEGRADED):
            self._set_state(State.DEAD, reason=reason, message=message)
        self._bus.publish(McpServerCrashed(mcp_server_id=self.server_id, exit_code=exit_code, message=message))
        if upstream is not None:  # reap the process group in the background; a stop waits for it
            task = asyncio.get_running_loop().create_task(upstream.close(grace=0.5), name=f"reap-{self.server_id}")
            self._reaping.add(task)
            task.add_done_callback(self._reaping.discard)

    # ------------------------------------------------------------------ calls

    def _on_upstream_notification(self, message: JsonObject) -> None:
        """Progress goes to its caller; a tool-list change refreshes the tools; the rest goes up."""
        method = message.get("method")
        if method == "notifications/progress":
            delivery = self.callers.route_progress(message)
            if delivery is not None:
                self._keep(asyncio.ensure_future(delivery))
            return
        if method == "notifications/message":
            delivery = self.callers.route_log(message)
            if delivery is not None:
                self._keep(asyncio.ensure_future(delivery))
                return
        if method == "notifications/tools/list_changed":
            self._keep(asyncio.ensure_future(self.refresh_tools()))
            return
        if self._on_notification is not None:
            self._on_notification(self, message)

    def _keep(self, task: asyncio.Future[Any]) -> None:
        self._chores.add(task)
        task.add_done_callback(self._chores.discard)

    async def refresh_tools(self) -> None:
        """Fetch the tool list again (after the upstream said it changed)."""
        upstream = self.upstream
        if upstream is None:
            return
        try:
            tools = await self._list_tools(upstream, min(HEALTH_TIMEOUT_S, self.spec.call_timeout_s))
        except UpstreamError as exc:
            self.record_log(f"[hangar] refreshing tools failed: {exc.message}")
            return
        if self.upstream is upstream and tools != self.tools:
            self.tools = tools
            if self._on_tools_changed is not None:
                self._on_tools_changed(self)

    async def request(self, method: str, params: JsonObject | None, *, caller: Caller | None = None) -> JsonObject:
        """Any other request to the upstream (resources, prompts, completion), starting it if needed."""
        if self._held is not None or self.removed:
            await self._admit()
        upstream = await self.ensure_ready()
        self.last_used = time.monotonic()
        key, meta, token = self.callers.enter(caller or Caller(), (params or {}).get("_meta"))
        if meta is not None and params is not None:
            params = {**params, "_meta": meta}
        self.in_flight += 1
        try:
            slots = self._slots
            if not slots.take_now():
                await slots.wait()
            try:
                return await upstream.request(method, params, self.spec.call_timeout_s)
            finally:
                slots.give()
        except HangarError as exc:
            cut = self._cut_error(upstream, exc)
            if cut is exc:
                raise
            raise cut from None
        finally:
            self._left()
            self.last_used = time.monotonic()
            self.callers.leave(key, token)

    async def call_tool(
        self, tool: str, arguments: JsonObject | None, *, meta: JsonObject | None = None,
        principal: str | None = None, caller: Caller | None = None, extra: JsonObject | None = None,
    ) -> JsonObject:
        """Call a tool on this server, starting it if needed. Tool-level errors stay results.

        ``extra`` holds further request fields relayed as they are (``inputResponses``,
        ``requestState`` of a 2026-07-28 retry, ``task``, ...)."""
        if self._held is not None or self.removed:
            await self._admit()  # a reload is restarting or removing this server
        correlation_id = new_id()
        args_size = len(orjson.dumps(arguments)) if arguments else 0
        self._bus.publish(ToolInvocationRequested(
            mcp_server_id=self.server_id, tool_name=tool, correlation_id=correlation_id,
            arguments_size_bytes=args_size))
        began = time.perf_counter()
        self.in_flight += 1
        self.last_used = time.monotonic()
        key, meta, token = self.callers.enter(caller or Caller(), meta)
        upstream: Upstream | None = None
        try:
            upstream = self.upstream if self.state is State.READY and self.upstream is not None else \
                await self.ensure_ready()  # a ready server is used at once, without a coroutine
            params: JsonObject = {**extra, "name": tool, "arguments": arguments or {}} if extra else \
                {"name": tool, "arguments": arguments or {}}
            if meta:
                params["_meta"] = meta
            slots = self._slots
            if not slots.take_now():
                await slots.wait()
            try:
                if tracing.ENABLED:
                    result = await tracing.upstream_call(self.server_id, upstream, "tools/call", params,
                                                         self.spec.call_timeout_s)
                else:
                    result = await upstream.request("tools/call", params, self.spec.call_timeout_s)
            finally:
                slots.give()
        except HangarError as raised:
            exc = self._cut_error(upstream, raised)
            self._record_failure(exc)
            self._bus.publish(ToolInvocationFailed(
                mcp_server_id=self.server_id, tool_name=tool, correlation_id=correlation_id,
                duration_ms=(time.perf_counter() - began) * 1000, error_type=exc.error_name,
                error_message=exc.message, arguments_size_bytes=args_size, principal=principal))
            if exc is raised:
                raise
            raise exc from None
        finally:
            self._left()
            self.last_used = time.monotonic()
            self.callers.leave(key, token)
        self.total_invocations += 1
        self.consecutive_failures = 0
        self.last_success_at = time.time()
        self._bus.publish(ToolInvocationCompleted(
            mcp_server_id=self.server_id, tool_name=tool, correlation_id=correlation_id,
            duration_ms=(time.perf_counter() - began) * 1000,
            result_size_bytes=len(orjson.dumps(result)), is_error=bool(result.get("isError")),
            arguments_size_bytes=args_size, principal=principal))
        return result

    def _record_failure(self, exc: HangarError) -> None:
        self.total_invocations += 1
        self.total_failures += 1
        self.last_failure_at = time.time()
        if isinstance(exc, (UpstreamRpcError, UpstreamResponseTooLargeError)):
            return  # the server answered (too much, or with an error): it is alive and well
        if isinstance(exc, (UpstreamTimeoutError, UpstreamProtocolError)):
            self.consecutive_failures += 1
            self._maybe_degrade(f"{self.consecutive_failures} consecutive failures, last: {exc.message}")

    def _maybe_degrade(self, message: str) -> None:
        if self.state == State.READY and self.consecutive_failures >= self.spec.max_consecutive_failures:
            self._set_state(State.DEGRADED, message=message)

    # ------------------------------------------------------------------ background duties

    def health_due(self, now: float) -> bool:
        return (
            self.state in (State.READY, State.DEGRADED)
            and not self._health_running
            and now - self.last_health_check >= self.spec.health_check_interval_s
        )

    async def health_check(self) -> bool:
        """One active check (``tools/list``); updates state and publishes the outcome."""
        upstream = self.upstream
        if upstream is None or self._health_running:
            return False
        self._health_running = True
        began = time.monotonic()
        try:
            tools = await self._list_tools(upstream, min(HEALTH_TIMEOUT_S, self.spec.call_timeout_s))
        except UpstreamError as exc:
            if self.upstream is not upstream:
                return False  # stopped or crashed meanwhile; that path reports itself
            self.consecutive_failures += 1
            self._bus.publish(HealthCheckFailed(
                mcp_server_id=self.server_id, consecutive_failures=self.consecutive_failures,
                error_message=exc.message, duration_ms=(time.monotonic() - began) * 1000))
            self._maybe_degrade(f"health check failed {self.consecutive_failures} times: {exc.message}")
            return False
        finally:
            self._health_running = False
            self.last_health_check = time.monotonic()
        if self.upstream is not upstream:
            return False
        self.consecutive_failures = 0
        self._bus.publish(HealthCheckPassed(
            mcp_server_id=self.server_id, duration_ms=(time.monotonic() - began) * 1000))
        if self.state == State.DEGRADED:
            self._set_state(State.READY, message="health check passed")
        if tools != self.tools:
            self.tools = tools
            if self._on_tools_changed is not None:
                self._on_tools_changed(self)
        return True

    def idle_expired(self, now: float) -> bool:
        return (
            self.state == State.READY
            and self.in_flight == 0
            and now - self.last_used >= self.spec.idle_ttl_s
        )

    def startable(self) -> bool:
        return self.state in STARTABLE

    def replace_spec(self, spec: ServerSpec) -> None:
        """Swap the spec in place (fields that need no restart, or before a restart)."""
        self.spec = spec
        if spec.max_concurrency != self._slots.limit:
            self._slots = Slots(spec.max_concurrency)  # running calls give their slots to the old one
        if self.tools_origin != "live":
            self._set_known_tools(self.tools if self.tools_origin == "remembered" else None)
