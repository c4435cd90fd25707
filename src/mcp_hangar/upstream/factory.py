"""Builds the upstream connection a server spec asks for."""

from __future__ import annotations

from collections.abc import Callable

from ..config import ServerSpec
from ..errors import McpServerStartError
from ..reaper import Reaper
from .base import JsonObject, NotificationHandler, RequestHandler, Upstream
from .stdio import StdioUpstream, child_environment

# What Hangar declares to upstreams: it can relay sampling, elicitation and roots requests to the
# front client that caused them (see the supervisor's request routing).
CLIENT_CAPABILITIES: JsonObject = {"sampling": {}, "elicitation": {"form": {}}, "roots": {"listChanged": False}}


def make_upstream(
    server_id: str,
    spec: ServerSpec,
    *,
    reaper: Reaper | None,
    on_log: Callable[[str], None],
    on_notification: NotificationHandler,
    on_request: RequestHandler,
    client_version: str,
    ssrf_trusted: list[str] | None,
    instance: str = "",
) -> Upstream:
    if spec.mode == "subprocess":
        return StdioUpstream(
            server_id, spec.argv(), env=child_environment(spec.env, inherit_all=spec.inherit_env), cwd=spec.cwd,
            max_message_bytes=spec.max_response_bytes, reaper=reaper, on_stderr=on_log,
            on_notification=on_notification, on_request=on_request, client_version=client_version,
            era=spec.protocol, client_capabilities=CLIENT_CAPABILITIES,
        )
    if spec.mode == "remote":
        from .remote import RemoteUpstream  # httpx is imported only when a remote server is used

        assert spec.endpoint is not None
        return RemoteUpstream(
            server_id, spec.endpoint, headers=spec.headers, auth=spec.auth, tls=spec.tls,
            connect_timeout=spec.http.connect_timeout, read_timeout=spec.http.read_timeout,
            max_message_bytes=spec.max_response_bytes, on_log=on_log, on_notification=on_notification,
            on_request=on_request, client_version=client_version, ssrf_trusted=ssrf_trusted, era=spec.protocol,
        )
    if spec.mode == "docker":
        from .docker import DockerUpstream

        return DockerUpstream(
            server_id, spec, instance=instance, reaper=reaper, on_stderr=on_log, on_notification=on_notification,
            on_request=on_request, client_version=client_version, era=spec.protocol,
            client_capabilities=CLIENT_CAPABILITIES,
        )
    raise McpServerStartError(f"mode '{spec.mode}' is not available in this version of Hangar")
