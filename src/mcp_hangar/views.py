"""JSON views of servers, shared by the REST API and the MCP management tools."""

from __future__ import annotations

import time
from typing import Any

from .config_state import sanitize
from .supervisor import ManagedServer


def server_summary(server: ManagedServer) -> dict[str, Any]:
    return {
        "mcp_server_id": server.server_id,
        "state": server.state.value,
        "mode": server.spec.mode,
        "source": server.source,
        "alive": server.alive,
        "description": server.spec.description,
        "tools_count": len(server.tools),
        "tools_origin": server.tools_origin,
        "health_status": server.health_status(),
        "dead": server.dead_info(),
        "pid": server.pid,
    }


def server_detail(server: ManagedServer) -> dict[str, Any]:
    upstream = server.upstream
    return {
        **server_summary(server),
        # Secret-looking values (env API_KEY, auth tokens, ...) are masked, as in GET /api/config.
        "spec": sanitize(server.spec.model_dump(mode="json", exclude_defaults=True) | {"mode": server.spec.mode},
                         whole=False),
        "tools": server.tools,
        "health": server.health(),
        "idle_time_s": round(time.monotonic() - server.last_used, 3) if server.alive else None,
        "started_at": server.started_at if server.alive else None,
        "in_flight": server.in_flight,
        "protocol_version": upstream.protocol_version if upstream else None,
        "server_info": upstream.server_info if upstream else None,
        "container": getattr(upstream, "container_id", None),
        "image": server.spec.image,
    }
