"""The official SDK's validation of 2026-07-28 requests, loaded lazily.

Importing any part of the ``mcp`` package costs about half a second (its ``__init__`` loads the
client and server stacks), which would double Hangar's boot time. The front therefore imports it in
a background thread at start-up and blocks on it only if a modern request arrives before that
finished.
"""

from __future__ import annotations

import threading
from types import ModuleType
from typing import Any

# Status codes of JSON-RPC errors on the HTTP front (the spec's table; -32603 stays 200).
ERROR_CODE_HTTP_STATUS: dict[int, int] = {
    -32700: 400, -32600: 400, -32602: 400, -32020: 400, -32021: 400, -32022: 400, -32601: 404,
}
ROUTING_HEADERS = frozenset({"mcp-protocol-version", "mcp-method", "mcp-name"})

_lock = threading.Lock()


def sdk() -> ModuleType:
    """``mcp.shared.inbound``, imported on first use."""
    with _lock:
        import mcp.shared.inbound as inbound

        return inbound


def preload() -> None:
    threading.Thread(target=sdk, name="hangar-preload-mcp", daemon=True).start()


def duplicated_routing_header(raw_headers: Any) -> str | None:
    """The name of a routing header sent more than once (first- and last-copy readers would disagree)."""
    seen: set[str] = set()
    for name, _ in raw_headers:
        key = name.lower()
        if key in ROUTING_HEADERS:
            if key in seen:
                return str(key)
            seen.add(key)
    return None
