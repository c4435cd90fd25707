"""docker mode on a real engine: lifecycle, hardening, leaks, faults."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
from docker_engine import containers
from mcp import Client

from conftest import docker_server
from mcp_hangar.errors import McpServerStartError, UpstreamCrashedError
from mcp_hangar.events import McpServerStopped
from mcp_hangar.models import State

pytestmark = pytest.mark.timeout(300)


async def _wait_until(predicate: Any, timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.05)


async def test_container_cold_ready_call_and_idle_stop(http_factory: Any, docker_host: str) -> None:
    hangar, base = await http_factory({"box": docker_server(docker_host, idle_ttl_s=1)})
    server = hangar.get("box")
    assert server.state == State.COLD
    async with Client(f"{base}/mcp", mode="legacy") as client:
        result = await client.call_tool("box__add", {"a": 2, "b": 3})
        assert result.structured_content == {"result": 5}
    assert server.state == State.READY
    upstream = server.upstream
    assert upstream is not None
    name = getattr(upstream, "container_id")  # noqa: B009
    assert containers(docker_host, f"name={name}") == [name]
    async with httpx.AsyncClient(base_url=base) as rest:
        details = (await rest.get("/api/mcp_servers/box")).json()
        assert details["container"] == name and details["image"] == "hangar-test-empty:latest"
    with hangar.bus.subscription(predicate=lambda e: isinstance(e, McpServerStopped)) as stops:
        await stops.wait_for(lambda e: getattr(e, "reason", None) == "idle", 15)
    assert containers(docker_host, f"name={name}") == []


async def test_hardening_is_real(hangar_factory: Any, docker_host: str) -> None:
    hangar = await hangar_factory({"box": docker_server(docker_host)})
    facts = (await hangar.call_tool("box", "facts", {}))["structuredContent"]
    assert facts["uid"] != 0 and facts["gid"] != 0
    assert facts["cap_eff"] == "0000000000000000"
    assert facts["no_new_privs"] == "1"
    assert facts["root_writable"] is False
    assert facts["interfaces"] == ["lo"]  # network: none


async def test_rest_create_call_and_stop_removes_the_container(api_factory: Any, docker_host: str) -> None:
    hangar, client = await api_factory({})
    body = {"mcp_server_id": "sandboxed", **docker_server(docker_host)}
    r = await client.post("/api/mcp_servers", json=body)
    assert r.status_code == 201, r.text
    r = await client.post("/api/mcp_servers/sandboxed/start")
    assert r.status_code == 200 and "add" in r.json()["tools"]
    assert (await hangar.call_tool("sandboxed", "echo", {"text": "hi"}))["content"][0]["text"] == "hi"
    await hangar.call_tool("sandboxed", "stderr", {"lines": 2})
    server = hangar.get("sandboxed")
    # stderr travels on its own pipe, so the lines may land just after the result.
    await _wait_until(lambda: [line.content for line in server.logs][-2:] == ["log line 0", "log line 1"], 10)
    logs = (await client.get("/api/mcp_servers/sandboxed/logs")).json()["logs"]
    assert [line["content"] for line in logs][-2:] == ["log line 0", "log line 1"]
    name = (await client.get("/api/mcp_servers/sandboxed")).json()["container"]
    await client.post("/api/mcp_servers/sandboxed/stop")
    assert containers(docker_host, f"name={name}") == []


async def test_missing_image_says_what_to_do(hangar_factory: Any, docker_host: str) -> None:
    hangar = await hangar_factory({"box": docker_server(docker_host, image="nope/missing:1")})
    with pytest.raises(McpServerStartError) as info:
        await hangar.start_server("box")
    assert "not present locally" in info.value.message and "pull" in info.value.message
    server = hangar.get("box")
    assert server.state == State.DEAD and server.dead_reason is not None


async def test_unreachable_engine_says_so(hangar_factory: Any, tmp_path: Any) -> None:
    from docker_engine import docker_cli

    if docker_cli() is None:
        pytest.skip("no docker CLI")
    hangar = await hangar_factory({"box": docker_server(f"unix://{tmp_path}/none.sock")})
    with pytest.raises(McpServerStartError) as info:
        await hangar.start_server("box")
    assert "engine is reachable" in info.value.message


async def test_memory_limit_kill_is_reported(hangar_factory: Any, docker_host: str) -> None:
    spec = docker_server(docker_host, resources={"memory": "48m", "cpus": 1.0, "pids": 64})
    hangar = await hangar_factory({"box": spec})
    await hangar.start_server("box")
    with pytest.raises(UpstreamCrashedError) as info:
        await hangar.call_tool("box", "alloc", {"mb": 200})
    assert "memory limit" in info.value.message
    server = hangar.get("box")
    assert server.state == State.DEAD and "memory limit" in (server.dead_message or "")


async def test_container_exiting_during_handshake(hangar_factory: Any, docker_host: str) -> None:
    hangar = await hangar_factory({"box": docker_server(docker_host, "--exit-on-initialize")})
    with pytest.raises(McpServerStartError) as info:
        await hangar.start_server("box")
    assert "exit" in info.value.message
    assert containers(docker_host, "label=mcp.hangar.server=box") == []


def test_sensitive_volumes_are_refused() -> None:
    from mcp_hangar.config import ConfigError, parse_config_text

    for volume in ("/:/host", "/etc:/etc:ro", "/var/run/docker.sock:/var/run/docker.sock"):
        with pytest.raises(ConfigError) as info:
            parse_config_text(f"mcp_servers:\n  b:\n    mode: docker\n    image: x\n    volumes: ['{volume}']\n", "c")
        assert "allow_sensitive_volumes" in info.value.problems[0]
    with pytest.raises(ConfigError):
        parse_config_text("mcp_servers:\n  b:\n    mode: docker\n    image: x\n    volumes: ['rel:/x']\n", "c")
    parse_config_text("mcp_servers:\n  b:\n    mode: docker\n    image: x\n    allow_sensitive_volumes: true\n"
                      "    volumes: ['/etc:/etc:ro']\n", "c")


async def test_orphans_of_this_instance_are_removed_at_start(hangar_factory: Any, docker_host: str,
                                                             tmp_path: Any) -> None:
    data = tmp_path / "instance"
    first = await hangar_factory({"box": docker_server(docker_host)}, data_dir=data)
    await first.start_server("box")
    name = getattr(first.get("box").upstream, "container_id")  # noqa: B009
    # Simulate a crash of Hangar: the process group goes, but the engine keeps the container.
    first.get("box").upstream._signal_group(9)  # type: ignore[union-attr]
    began = time.monotonic()
    second = await hangar_factory({"box": docker_server(docker_host)}, data_dir=data)
    assert second.instance_label == first.instance_label
    assert containers(docker_host, f"name={name}") == [] or time.monotonic() - began < 30
    await _wait_until(lambda: containers(docker_host, f"name={name}") == [], 30)


async def test_engine_stopped_while_a_container_runs(hangar_factory: Any) -> None:
    import os
    import signal
    from pathlib import Path

    from docker_engine import private_engine

    with private_engine() as host:  # an engine of its own, since this test stops it
        hangar = await hangar_factory({"box": docker_server(host)})
        await hangar.start_server("box")
        server = hangar.get("box")
        pid = int((Path(host.removeprefix("unix://")).parent / "docker.pid").read_text())
        with hangar.bus.subscription() as events:
            os.kill(pid, signal.SIGTERM)  # the engine we started, by its PID
            await events.wait_for(lambda e: getattr(e, "new_state", None) == "dead", 30)
        assert server.state == State.DEAD
        with pytest.raises(McpServerStartError) as info:
            await hangar.start_server("box")
        assert "engine is reachable" in info.value.message
