"""Auth as a newcomer meets it, through the real CLI and a real server process: bootstrap an admin key
(once), create a viewer key, and see the viewer list but not start servers over REST and over MCP."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from conftest import raw_server

from .conftest import StartHangar
from .harness import run_cli, stdio_hangar

WriteConfig = Callable[..., Path]
AUTH = {"enabled": True}


def _wait_ready(client: httpx.Client, deadline_s: float = 30) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.TransportError):
            if client.get("/health/ready").status_code == 200:
                return
        time.sleep(0.1)
    raise TimeoutError("not ready")


def _mcp(client: httpx.Client, key: str) -> Callable[[str, dict[str, Any]], dict[str, Any]]:
    headers = {"x-api-key": key, "accept": "application/json, text/event-stream"}
    opened = client.post("/mcp", headers=headers, json={"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "e2e", "version": "1"}}})
    assert opened.status_code == 200, opened.text
    headers = {**headers, "mcp-session-id": opened.headers["mcp-session-id"], "mcp-protocol-version": "2025-06-18"}

    def call(tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        body: dict[str, Any] = client.post("/mcp", headers=headers, json={
            "jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": tool, "arguments": arguments}}).json()
        return body

    return call


def test_bootstrap_admin_then_a_viewer_lists_but_cannot_start(tmp_path: Path, hangar_cli: StartHangar,
                                                              write_config: WriteConfig) -> None:
    config = write_config({"math": raw_server()}, auth=AUTH)
    data = tmp_path / "data"
    first = run_cli("auth", "bootstrap-admin", "--principal", "user:alice", "-c", str(config), "--data-dir",
                    str(data), cwd=tmp_path, home=tmp_path)
    assert first.returncode == 0, first.stderr
    admin_key = first.stdout.strip()
    assert admin_key.startswith("mcp_") and len(admin_key) >= 47
    again = run_cli("auth", "bootstrap-admin", "--principal", "user:mallory", "-c", str(config), "--data-dir",
                    str(data), cwd=tmp_path, home=tmp_path)
    assert again.returncode == 1 and "bootstrapped before" in again.stderr and "mcp_" not in again.stdout

    hangar = hangar_cli(config=config, data_dir=data, ready=False)
    client = hangar.client
    _wait_ready(client)
    assert client.get("/api/mcp_servers").status_code == 401
    admin = {"x-api-key": admin_key}
    made = client.post("/api/auth/keys", headers=admin, json={"principal_id": "user:bob", "name": "bob"})
    assert made.status_code == 201, made.text
    viewer_key = made.json()["raw_key"]
    assigned = client.post("/api/auth/roles/assign", headers=admin,
                           json={"principal_id": "user:bob", "role_name": "viewer", "scope": "global"})
    assert assigned.status_code == 200 and assigned.json()["assigned_by"] == "user:alice"

    viewer = {"x-api-key": viewer_key}
    assert client.get("/api/mcp_servers", headers=viewer).status_code == 200
    refused = client.post("/api/mcp_servers/math/start", headers=viewer)
    assert refused.status_code == 403 and refused.json()["error"] == "AccessDeniedError"

    call = _mcp(client, viewer_key)
    listed = call("hangar_list", {})
    assert [s["mcp_server_id"] for s in listed["result"]["structuredContent"]["mcp_servers"]] == ["math"]
    started = call("hangar_start", {"mcp_server": "math"})
    assert started["error"]["code"] == -32003 and "mcp_servers:lifecycle" in started["error"]["message"]
    assert call("hangar_whoami", {})["result"]["structuredContent"]["principal"]["id"] == "user:bob"
    assert "mcp_" not in hangar.stderr().replace("mcp_hangar", "").replace("mcp_server", "")


def test_a_non_loopback_host_is_accepted_with_auth_on(tmp_path: Path, write_config: WriteConfig) -> None:
    # 127.0.0.1:port is held, so binding 0.0.0.0:port fails with exit 2 ("cannot listen"): that proves the
    # auth check let the address through, without ever listening beyond loopback.
    config = write_config({}, auth=AUTH)
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        port = sock.getsockname()[1]
        result = run_cli("serve", "--http", "--host", "0.0.0.0", "--port", str(port), "-c", str(config),
                         "--data-dir", str(tmp_path / "d"), cwd=tmp_path, home=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "cannot listen on 0.0.0.0" in result.stderr and "refusing" not in result.stderr


def test_bootstrap_admin_refuses_a_malformed_principal(tmp_path: Path) -> None:
    result = run_cli("auth", "bootstrap-admin", "--principal", "not a principal", "--data-dir",
                     str(tmp_path / "d"), cwd=tmp_path, home=tmp_path)
    assert result.returncode == 1 and "--principal" in result.stderr


def test_a_stdio_client_acts_as_the_configured_principal(tmp_path: Path, write_config: WriteConfig) -> None:
    config = write_config({"math": raw_server()},
                          auth={"enabled": True, "stdio": {"principal": {"id": "user:desk", "roles": ["viewer"]}}})
    with stdio_hangar(config, tmp_path) as hangar:
        ask = hangar.ask
        ask(0, "initialize", {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {}})
        whoami = ask(1, "tools/call", {"name": "hangar_whoami", "arguments": {}})
        assert whoami["result"]["structuredContent"]["principal"]["id"] == "user:desk"
        assert "result" in ask(2, "tools/call", {"name": "hangar_list", "arguments": {}})
        refused = ask(3, "tools/call", {"name": "hangar_start", "arguments": {"mcp_server": "math"}})
        assert refused["error"]["code"] == -32003
