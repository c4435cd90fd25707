"""The health probes' answers, shared by the REST route table (for the OpenAPI document) and the
gateway's lean path (which serves them before the REST API is loaded)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..models import State

if TYPE_CHECKING:
    from ..hangar import Hangar

Probe = tuple[int, dict[str, Any]]  # status code, JSON body


def live() -> Probe:
    return 200, {"status": "healthy"}


async def ready(hangar: Hangar) -> Probe:
    servers = list(hangar.servers.values())
    body: dict[str, Any] = {
        "status": "healthy",
        "startup_complete": hangar.startup_complete,
        "ready_mcp_servers": sum(1 for s in servers if s.state == State.READY),
        "total_mcp_servers": len(servers),
    }
    if not hangar.startup_complete or hangar.stopping:
        body["status"] = "starting" if not hangar.stopping else "stopping"
        return 503, body
    if not await hangar.store.healthy():
        body["status"] = "unhealthy"
        body["reason"] = "the state database is not usable"
        return 503, body
    return 200, body


def startup(hangar: Hangar) -> Probe:
    body = {"status": "healthy" if hangar.startup_complete else "starting",
            "startup_complete": hangar.startup_complete, "uptime_seconds": round(hangar.uptime_s(), 3)}
    return (200 if hangar.startup_complete else 503), body

