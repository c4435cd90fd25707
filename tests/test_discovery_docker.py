"""Discovery from a real Docker engine (the private dockerd of the test session): labelled containers are
proposed through the engine's event stream, approved, called from an MCP client, and removed (authoritative)
or kept (additive) when they stop. Also the spec's "Register a Discovery Source" curl, verbatim."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from discovery_helpers import discovery_block, next_event, watching
from docker_engine import HOST_RUNTIME_VOLUMES, IMAGE, containers
from mcp import Client

from conftest import free_port

pytestmark = pytest.mark.timeout(300)

SPEC_CURL_BODY = """{
    "source_type": "docker",
    "mode": "additive",
    "enabled": true,
    "config": {"socket_path": "/var/run/docker.sock"}
  }"""


class Labelled:
    """Starts labelled containers running the stdlib fixture server (stdin kept open: ``-d -i``); removes
    every one it started at teardown."""

    def __init__(self, host: str) -> None:
        cli = shutil.which("docker")
        assert cli is not None
        self.cli, self.host = cli, host
        self.env = {**os.environ, "DOCKER_HOST": host}
        self.started: list[str] = []

    async def _docker(self, *args: str) -> str:
        done = await asyncio.to_thread(subprocess.run, [self.cli, *args], env=self.env, capture_output=True,
                                       text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    async def run(self, server: str, *labels: str, mode: str = "docker", network: str = "none",
                  command: tuple[str, ...] = ("/usr/bin/python3", "/fixtures/raw_server.py")) -> str:
        name = f"disc-{server}-{secrets.token_hex(3)}"
        argv = ["run", "-d", "-i", "--name", name, "--network", network, "--label", "mcp.hangar.enabled=true",
                "--label", f"mcp.hangar.name={server}", "--label", f"mcp.hangar.mode={mode}"]
        for label in labels:
            argv += ["--label", label]
        for volume in HOST_RUNTIME_VOLUMES:
            argv += ["-v", volume]
        self.started.append(name)
        await self._docker(*argv, IMAGE, *command)
        return name

    async def stop(self, name: str) -> None:
        await self._docker("stop", "--time", "0", name)

    async def remove(self, name: str) -> None:
        await self._docker("rm", "-f", name)

    def cleanup(self) -> None:
        if self.started:
            subprocess.run([self.cli, "rm", "-f", *self.started], env=self.env, capture_output=True, timeout=60)


@pytest.fixture
def labelled(docker_host: str) -> Iterator[Labelled]:
    made = Labelled(docker_host)
    try:
        yield made
    finally:
        made.cleanup()


def socket_of(host: str) -> str:
    return host.removeprefix("unix://")


def docker_source(host: str, mode: str) -> dict[str, Any]:
    return {"id": "docker", "source_type": "docker", "mode": mode, "config": {"socket_path": socket_of(host)}}


async def test_a_labelled_container_is_proposed_approved_called_and_removed_when_it_stops(
        http_factory: Any, docker_host: str, labelled: Labelled) -> None:
    hangar, base = await http_factory({}, extra=discovery_block(docker_source(docker_host, "authoritative"),
                                                                grace_period_s=1.0))
    await watching(hangar, "docker")  # the refresh cycle is 300 s: what follows comes from engine events
    with hangar.bus.subscription() as sub:
        began = time.monotonic()
        name = await labelled.run("boxed", "mcp.hangar.group=none-such")
        event = await next_event(sub, "McpServerDiscovered", "boxed")
        elapsed = time.monotonic() - began
    print(f"\ndocker run -> pending: {elapsed * 1000:.0f} ms (including the health check)")
    assert event.status == "pending" and elapsed < 15  # type: ignore[attr-defined]
    async with httpx.AsyncClient(base_url=base) as rest:
        row = (await rest.get("/api/discovery/pending")).json()["pending"][0]
        assert row["origin"].startswith(f"container {name} (") and row["group"] == "none-such"
        assert row["spec"]["mode"] == "docker" and row["spec"]["image"] == IMAGE
        approved = await rest.post("/api/discovery/approve/boxed")
        assert approved.status_code == 200 and approved.json()["state"] == "cold"
        async with Client(f"{base}/mcp", mode="legacy") as client:
            assert "boxed__add" in {t.name for t in (await client.list_tools()).tools}
            result = await client.call_tool("boxed__add", {"a": 2, "b": 3})
            assert result.structured_content == {"result": 5}
        assert containers(docker_host, "label=mcp.hangar.server=boxed")  # Hangar's own container runs it
        with hangar.bus.subscription() as sub:
            await labelled.stop(name)
            lost = await next_event(sub, "McpServerDiscoveryLost", "boxed")
            gone = await next_event(sub, "McpServerDeregistered", "boxed")
        assert lost.action == "removal_scheduled"  # type: ignore[attr-defined]
        assert gone.occurred_at - lost.occurred_at >= 1.0  # not before the grace period
        missing = await rest.get("/api/mcp_servers/boxed")
        assert missing.status_code == 404 and missing.json()["error"] == "McpServerNotFoundError"
    assert containers(docker_host, "label=mcp.hangar.server=boxed") == []  # stopped first, then removed


async def test_in_additive_mode_a_stopped_container_leaves_its_server_in_place(
        api_factory: Any, docker_host: str, labelled: Labelled) -> None:
    hangar, rest = await api_factory({}, extra=discovery_block(docker_source(docker_host, "additive"),
                                                               grace_period_s=0))
    await watching(hangar, "docker")
    with hangar.bus.subscription() as sub:
        name = await labelled.run("stays")
        await next_event(sub, "McpServerDiscovered", "stays")
    assert (await rest.post("/api/discovery/approve/stays")).status_code == 200
    with hangar.bus.subscription() as sub:
        await labelled.stop(name)
        lost = await next_event(sub, "McpServerDiscoveryLost", "stays")
    assert lost.action == "kept"  # type: ignore[attr-defined]
    scan = (await rest.post("/api/discovery/sources/docker/scan")).json()  # a later cycle: still there
    assert scan["discovered"] == [] and "stays" in hangar.servers
    row = (await rest.get("/api/discovery/sources")).json()["sources"][0]
    assert row["mcp_servers"] == [{"name": "stays", "status": "approved", "present": False, "registered": True}]
    assert (await rest.get("/api/mcp_servers/stays")).json()["source"] == "discovery"


async def test_a_container_with_bad_labels_is_quarantined(api_factory: Any, docker_host: str,
                                                          labelled: Labelled) -> None:
    hangar, rest = await api_factory({}, extra=discovery_block(docker_source(docker_host, "additive")))
    await watching(hangar, "docker")
    with hangar.bus.subscription() as sub:
        await labelled.run("remote-without-network", "mcp.hangar.port=8080", mode="remote")
        event = await next_event(sub, "McpServerQuarantined", "remote-without-network")
    assert "has no network address" in event.reason  # type: ignore[attr-defined]
    assert list((await rest.get("/api/discovery/quarantined")).json()["quarantined"]) == ["remote-without-network"]


async def test_the_spec_register_a_discovery_source_curl_works_verbatim(
        http_factory: Any, docker_host: str, labelled: Labelled) -> None:
    curl = shutil.which("curl")
    if curl is None:
        pytest.skip("curl is not installed")
    hangar, base = await http_factory({}, extra=discovery_block())
    body = SPEC_CURL_BODY.replace("/var/run/docker.sock", socket_of(docker_host))  # the only change
    done = await asyncio.to_thread(subprocess.run, [
        curl, "-sS", "-X", "POST", f"{base}/api/discovery/sources", "-H", "Content-Type: application/json",
        "-d", body, "-w", "\n%{http_code}"], capture_output=True, text=True, timeout=30)
    payload, status = done.stdout.rsplit("\n", 1)
    assert status == "201", done.stdout
    answer = httpx.Response(201, content=payload).json()
    assert answer["registered"] is True and answer["source_id"].startswith("docker-")
    source_id = answer["source_id"]
    await watching(hangar, source_id)
    with hangar.bus.subscription() as sub:
        await labelled.run("via-curl")
        await next_event(sub, "McpServerDiscovered", "via-curl", status="pending")
    async with httpx.AsyncClient(base_url=base) as rest:
        row = (await rest.get("/api/discovery/sources")).json()["sources"][0]
        assert (row["source_type"], row["mode"], row["is_enabled"], row["is_healthy"]) == \
            ("docker", "additive", True, True)
        assert (await rest.post("/api/discovery/approve/via-curl")).status_code == 200
    async with Client(f"{base}/mcp", mode="legacy") as client:
        result = await client.call_tool("via-curl__echo", {"text": "hello"})
        assert result.content[0].text == "hello"  # type: ignore[union-attr]


async def test_a_remote_container_is_reached_at_its_address(http_factory: Any, docker_host: str,
                                                            labelled: Labelled) -> None:
    # The engine runs without a bridge here, so the container shares the host's network: its address is
    # loopback, and the fixture server listens on 127.0.0.1 only.
    port = free_port()
    hangar, base = await http_factory({}, extra=discovery_block(docker_source(docker_host, "additive")))
    await watching(hangar, "docker")
    with hangar.bus.subscription() as sub:
        await labelled.run("web", f"mcp.hangar.port={port}", "mcp.hangar.path=/rpc", mode="remote", network="host",
                           command=("/usr/bin/python3", "/fixtures/http_server.py", str(port), "/rpc"))
        event = await next_event(sub, "McpServerDiscovered", "web")
    assert event.status == "pending", hangar.discovery.records["web"].reason  # type: ignore[attr-defined]
    spec = hangar.discovery.records["web"].spec
    assert spec == {"mode": "remote", "endpoint": f"http://127.0.0.1:{port}/rpc"}
    async with httpx.AsyncClient(base_url=base) as rest:
        assert (await rest.post("/api/discovery/approve/web")).status_code == 200
    async with Client(f"{base}/mcp", mode="legacy") as client:
        result = await client.call_tool("web__add", {"a": 20, "b": 22})
        assert result.structured_content == {"result": 42}
