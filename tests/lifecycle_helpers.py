"""Helpers shared by the supervisor, fault and process tests: deadlines, event filters, PID checks."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, TypeVar

import psutil

from mcp_hangar.events import Event, McpServerEvent, McpServerStateChanged, Subscription
from mcp_hangar.hangar import Hangar

E = TypeVar("E", bound=Event)

POLL_S = 0.02


async def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``condition`` until it holds; only for facts no event reports (a PID going away, a log line)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(POLL_S)


def of(kind: type[E], server_id: str | None = None, **fields: Any) -> Callable[[Event], bool]:
    """A predicate matching events of ``kind`` (for ``server_id``) whose fields equal ``fields``."""

    def match(event: Event) -> bool:
        if not isinstance(event, kind):
            return False
        if server_id is not None and (not isinstance(event, McpServerEvent) or event.mcp_server_id != server_id):
            return False
        return all(getattr(event, k) == v for k, v in fields.items())

    return match


def state_to(server_id: str, new_state: str, **fields: Any) -> Callable[[Event], bool]:
    return of(McpServerStateChanged, server_id, new_state=new_state, **fields)


def transitions(events: list[Event], server_id: str) -> list[tuple[str, str]]:
    return [
        (e.old_state, e.new_state)
        for e in events
        if isinstance(e, McpServerStateChanged) and e.mcp_server_id == server_id
    ]


async def drain(sub: Subscription) -> list[Event]:
    """Everything a subscription holds right now, without waiting for more."""
    out: list[Event] = []
    while sub.pending():
        out.append(await sub.get())
    return out


def gone(pid: int) -> bool:
    """The process no longer runs (absent, or a zombie waiting for its parent)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def fixture_processes() -> list[psutil.Process]:
    """Live descendants of this test process that run a fixture server."""
    found = []
    for proc in psutil.Process().children(recursive=True):
        try:
            if proc.status() != psutil.STATUS_ZOMBIE and any("fixtures" in part for part in proc.cmdline()):
                found.append(proc)
        except psutil.NoSuchProcess:
            continue
    return found


def text_of(result: dict[str, Any]) -> str:
    return "".join(c.get("text", "") for c in result.get("content", []))


async def server_pid(hangar: Hangar, server_id: str) -> int:
    """The PID as the server itself reports it (tool ``pid``)."""
    return int(text_of(await hangar.call_tool(server_id, "pid")))
