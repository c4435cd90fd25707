"""The one exception tree of MCP Hangar.

Every error Hangar raises on purpose is a ``HangarError``; adapters translate foreign exceptions
(OSError, JSON decoding, HTTP client errors) into one of these, once, where they occur. The edges map
them by class: REST uses ``status_code`` and the class name (the spec's error envelope), the MCP front
uses ``jsonrpc_code``, the CLI uses ``exit_code``.

    HangarError                              500
    ├── McpServerNotFoundError               404
    ├── NotFoundError                        404   (routes, other resources)
    │   ├── GroupNotFoundError               404
    │   ├── GroupMemberNotFoundError         404   (the server is not a member of that group)
    │   ├── DiscoveryNotConfigured           404   (no `discovery:` block: every discovery route)
    │   ├── DiscoverySourceNotFoundError     404
    │   ├── ApiKeyNotFoundError              404
    │   ├── RoleNotFoundError                404
    │   └── DiscoveredServerNotFoundError    404   (no pending or quarantined server of that name)
    ├── ValidationError                      422
    │   └── ConfigError                      422   (config file problems, with file/line/key)
    ├── ConflictError                        409
    │   └── BuiltinRoleError                 409   (built-in roles cannot be changed or deleted)
    ├── AuthenticationError                  401   (no key, an unknown, expired or revoked key, lockout)
    ├── AccessDeniedError                    403   (the principal lacks the permission the table names)
    │   └── ToolAccessDeniedError            403   (a tool access policy refuses the tool; names the rule)
    ├── RateLimitExceeded                    429   (a token bucket is empty: retry_after_s says when)
    ├── CompactionError                      500   (compacting a stream that has no snapshot)
    ├── StoreError                           503
    │   └── ConfigNotWritableError           503   (the config file's folder refuses a backup)
    ├── DiscoverySourceError                 503   (a discovery source could not be read: engine down, ...)
    └── UpstreamError                        502   (anything an upstream server did wrong)
        ├── McpServerStartError              502   (spawn failed, handshake failed or timed out)
        ├── McpServerUnavailableError        503   (dead and in backoff, or stopped while starting)
        ├── UpstreamCrashedError             502   (the process exited during a call)
        ├── UpstreamTimeoutError             504   (no answer within call_timeout_s)
        │   └── ProbeUnansweredError         504   (no answer to the era probe: retried as legacy)
        ├── UpstreamProtocolError            502   (garbage or malformed messages)
        │   └── UpstreamResponseTooLargeError 502  (one message over max_response_bytes)
        ├── UpstreamRpcError                 502   (the upstream answered with a JSON-RPC error)
        └── GroupUnavailableError            503   (no member of a group is in rotation)
            └── GroupCircuitOpenError        503   (the group's circuit is open: calls fail fast)
"""

from __future__ import annotations

from typing import Any


class HangarError(Exception):
    """Base of every error Hangar raises deliberately."""

    status_code: int = 500
    jsonrpc_code: int = -32603
    exit_code: int = 1

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    @property
    def error_name(self) -> str:
        return type(self).__name__

    def envelope(self) -> dict[str, Any]:
        """The spec's REST error envelope."""
        return {"error": self.error_name, "message": self.message, "status_code": self.status_code}


class McpServerNotFoundError(HangarError):
    status_code = 404
    jsonrpc_code = -32602

    def __init__(self, server_id: str) -> None:
        super().__init__(f"MCP Server '{server_id}' not found", server_id=server_id)
        self.server_id = server_id


class NotFoundError(HangarError):
    status_code = 404
    jsonrpc_code = -32602


class ValidationError(HangarError):
    status_code = 422
    jsonrpc_code = -32602


class ConfigError(ValidationError):
    """A configuration file problem. ``problems`` lists every problem found, each already located."""

    exit_code = 1

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or [message]


class ConflictError(HangarError):
    status_code = 409


class BuiltinRoleError(ConflictError):
    """Built-in roles are fixed: they cannot be created, changed or deleted through the API."""


class AuthenticationError(HangarError):
    """No credential, or one that is unknown, expired or revoked (never says which key)."""

    status_code = 401
    jsonrpc_code = -32004


class AccessDeniedError(HangarError):
    """The caller is known but lacks the permission the route, stream or tool needs."""

    status_code = 403
    jsonrpc_code = -32003


class ToolAccessDeniedError(AccessDeniedError):
    """A tool access policy refuses the tool; ``rule`` names the scope, target and pattern that did."""

    def __init__(self, message: str, rule: dict[str, Any]) -> None:
        super().__init__(message, rule=rule)
        self.rule = rule


class RateLimitExceeded(HangarError):
    """A token bucket is empty; the call may be retried after ``retry_after_s`` seconds."""

    status_code = 429
    jsonrpc_code = -32029

    def __init__(self, message: str, retry_after_s: float = 1.0, **details: Any) -> None:
        super().__init__(message, retry_after_s=retry_after_s, **details)
        self.retry_after_s = retry_after_s


class CompactionError(HangarError):
    """A stream cannot be compacted (it has no snapshot to stand in for the removed events)."""

    status_code = 500

    def __init__(self, stream_id: str, reason: str) -> None:
        super().__init__(f"cannot compact stream '{stream_id}': {reason}", stream_id=stream_id, reason=reason)
        self.stream_id = stream_id
        self.reason = reason


class StoreError(HangarError):
    status_code = 503


class ConfigNotWritableError(StoreError):
    """The config file's folder cannot take a backup."""


class UpstreamError(HangarError):
    status_code = 502


class McpServerStartError(UpstreamError):
    status_code = 502


class McpServerUnavailableError(UpstreamError):
    status_code = 503


class UpstreamCrashedError(UpstreamError):
    status_code = 502


class UpstreamTimeoutError(UpstreamError):
    status_code = 504
    jsonrpc_code = -32001


class ProbeUnansweredError(UpstreamTimeoutError):
    """The upstream never answered the era probe (``server/discover``); it is retried in the legacy era."""


class UpstreamProtocolError(UpstreamError):
    status_code = 502


class UpstreamResponseTooLargeError(UpstreamProtocolError):
    """One message exceeded ``max_response_bytes``; the connection itself is fine."""


class UpstreamRpcError(UpstreamError):
    """The upstream answered a request with a JSON-RPC error; ``error`` is that error object verbatim."""

    status_code = 502

    def __init__(self, message: str, error: dict[str, Any]) -> None:
        super().__init__(message)
        self.error = error
        code = error.get("code")
        self.jsonrpc_code = code if isinstance(code, int) else -32603


class GroupNotFoundError(NotFoundError):
    def __init__(self, group_id: str) -> None:
        super().__init__(f"Group '{group_id}' not found", group_id=group_id)
        self.group_id = group_id


class GroupMemberNotFoundError(NotFoundError):
    def __init__(self, group_id: str, member_id: str) -> None:
        super().__init__(f"'{member_id}' is not a member of group '{group_id}'", group_id=group_id,
                         member_id=member_id)


class GroupUnavailableError(UpstreamError):
    """No member of the group can take the call."""

    status_code = 503


class GroupCircuitOpenError(GroupUnavailableError):
    """The group's circuit breaker is open: calls are refused at once until it half-opens."""

    status_code = 503


class DiscoveryNotConfigured(NotFoundError):
    """Discovery routes and tools answer this when the config file has no ``discovery:`` block."""

    def __init__(self) -> None:
        super().__init__("discovery is not configured: add a 'discovery:' block to the config file")


class DiscoverySourceNotFoundError(NotFoundError):
    def __init__(self, source_id: str) -> None:
        super().__init__(f"discovery source '{source_id}' not found", source_id=source_id)


class DiscoveredServerNotFoundError(NotFoundError):
    def __init__(self, name: str, wanted: str) -> None:
        super().__init__(f"no {wanted} MCP server named '{name}'", name=name)


class DiscoverySourceError(HangarError):
    """A discovery source could not be read (the engine is down, the folder is missing, ...)."""

    status_code = 503


class ApiKeyNotFoundError(NotFoundError):
    def __init__(self, key_id: str) -> None:
        super().__init__(f"API key '{key_id}' not found", key_id=key_id)


class RoleNotFoundError(NotFoundError):
    def __init__(self, role_name: str) -> None:
        super().__init__(f"role '{role_name}' not found", role_name=role_name)
