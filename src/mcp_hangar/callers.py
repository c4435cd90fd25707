"""Who an upstream call is made for, so that what the upstream sends back mid-call reaches them.

Progress tokens are replaced by tokens unique to Hangar before they go upstream, and progress
notifications are mapped back and delivered only to the caller that asked. Server-to-client requests
(sampling, elicitation, roots) carry no link to the call that caused them on a shared connection, so
they go to the one caller in flight on that server; with several callers in flight the request is
refused rather than guessed.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from .errors import UpstreamRpcError

JsonObject = dict[str, Any]

CAPABILITY_OF = {"sampling/createMessage": "sampling", "elicitation/create": "elicitation", "roots/list": "roots"}


@dataclass(eq=False)
class Caller:
    """A front request waiting on an upstream call."""

    notify: Callable[[JsonObject], Awaitable[None]] | None = None
    request: Callable[[str, JsonObject], Awaitable[JsonObject]] | None = None
    capabilities: JsonObject = field(default_factory=dict)
    log_level: str | None = None  # set when the client asked for log messages


class CallerRegistry:
    """The callers in flight on one upstream connection."""

    def __init__(self, server_id: str) -> None:
        self._server_id = server_id
        self._active: dict[int, Caller] = {}
        self._progress: dict[str, tuple[Caller, Any]] = {}
        self._ids = itertools.count(1)

    def enter(self, caller: Caller, meta: JsonObject | None) -> tuple[int, JsonObject | None, str | None]:
        """Register ``caller``; returns (key, the meta to send upstream, the upstream progress token)."""
        key = next(self._ids)
        self._active[key] = caller
        token = None
        if meta and "progressToken" in meta and caller.notify is not None:
            token = f"hangar-{self._server_id}-{key}"
            self._progress[token] = (caller, meta["progressToken"])
            meta = {**meta, "progressToken": token}
        return key, meta, token

    def leave(self, key: int, token: str | None) -> None:
        self._active.pop(key, None)
        if token is not None:
            self._progress.pop(token, None)

    def route_progress(self, message: JsonObject) -> Awaitable[None] | None:
        """The delivery of a progress notification to its caller, or None if it is not one of ours."""
        params = message.get("params")
        if not isinstance(params, dict):
            return None
        target = self._progress.get(str(params.get("progressToken")))
        if target is None or target[0].notify is None:
            return None
        caller, original = target
        assert caller.notify is not None
        return caller.notify({**message, "params": {**params, "progressToken": original}})

    def route_log(self, message: JsonObject) -> Awaitable[None] | None:
        """A log message goes to the one caller in flight, if it asked for logs; None otherwise."""
        if len(self._active) != 1:
            return None
        (caller,) = self._active.values()
        if caller.notify is None or caller.log_level is None:
            return None
        return caller.notify(message)

    async def route_request(self, message: JsonObject) -> JsonObject:
        """Relay a server-to-client request to the caller it is for, and return the caller's result."""
        method = str(message.get("method"))
        needed = CAPABILITY_OF.get(method)
        if needed is None:
            raise UpstreamRpcError("unsupported", {"code": -32601, "message": f"Method not found: {method}"})
        if method == "roots/list" and not self._active:
            return {"roots": []}
        able = [c for c in self._active.values() if c.request is not None and needed in c.capabilities]
        if len(self._active) != 1 or not able:
            reason = (f"the client of this call does not support {needed}" if len(self._active) == 1
                      else f"{len(self._active)} calls are in flight on this server, so the client it is for "
                           "cannot be told")
            raise UpstreamRpcError(reason, {"code": -32603, "message": f"Hangar cannot relay {method}: {reason}"})
        caller = able[0]
        assert caller.request is not None
        params = message.get("params")
        return await caller.request(method, params if isinstance(params, dict) else {})
