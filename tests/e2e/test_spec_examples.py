"""The curl examples of spec/rest-api.md, replayed with httpx against the real CLI on its embedded default.

Hangar runs as ``mcp-hangar serve --http`` with no ``-c``, cwd and HOME in an empty folder and no
``MCP_CONFIG``, so no config file is found and the embedded default (one server, ``math``) is used.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mcp_hangar import __version__

from .harness import HangarProcess, json_body, start_hangar

MATH_TOOLS = {"add", "subtract", "multiply", "divide"}


@pytest.fixture(scope="module")
def hangar(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HangarProcess]:
    home = tmp_path_factory.mktemp("spec-home")
    running = start_hangar(home, cwd=home, home=home)
    try:
        yield running
    finally:
        running.stop()


def test_list_mcp_servers_lists_math(hangar: HangarProcess) -> None:
    # curl http://localhost:8000/api/mcp_servers
    r = hangar.client.get("/api/mcp_servers")
    assert r.status_code == 200
    body = json_body(r)
    servers = {s["mcp_server_id"]: s for s in body["mcp_servers"]}
    assert "math" in servers
    assert servers["math"]["source"] == "config"
    assert servers["math"]["mode"] == "subprocess"
    assert body["total"] == len(body["mcp_servers"])


def test_system_info_reports_the_running_process(hangar: HangarProcess) -> None:
    # curl http://localhost:8000/api/system
    r = hangar.client.get("/api/system")
    assert r.status_code == 200
    system = json_body(r)["system"]
    assert system["version"] == __version__
    assert system["pid"] == hangar.pid
    assert system["config_source"] == "<embedded default>"
    assert system["uptime_seconds"] > 0
    assert system["total_mcp_servers"] >= 1


def test_start_math_makes_it_ready_with_its_tools(hangar: HangarProcess) -> None:
    # curl -X POST http://localhost:8000/api/mcp_servers/math/start
    r = hangar.client.post("/api/mcp_servers/math/start")
    assert r.status_code == 200, r.text
    body = json_body(r)
    assert body["state"] == "ready"
    assert set(body["tools"]) >= MATH_TOOLS
    listed = json_body(hangar.client.get("/api/mcp_servers", params={"state": "ready"}))
    assert "math" in {s["mcp_server_id"] for s in listed["mcp_servers"]}


def test_create_mcp_server_example(hangar: HangarProcess) -> None:
    # curl -X POST http://localhost:8000/api/mcp_servers -H "Content-Type: application/json" -d '{...}'
    payload = {
        "mcp_server_id": "my-llm",
        "mode": "subprocess",
        "command": ["python", "-m", "llm_server"],
        "idle_ttl_s": 600,
        "description": "LLM inference mcp_server",
    }
    r = hangar.client.post("/api/mcp_servers", json=payload, headers={"Content-Type": "application/json"})
    assert r.status_code == 201, r.text
    assert json_body(r) == {"mcp_server_id": "my-llm", "created": True}
    detail = json_body(hangar.client.get("/api/mcp_servers/my-llm"))
    assert detail["source"] == "api"
    assert detail["state"] == "cold"
    assert detail["spec"]["command"] == ["python", "-m", "llm_server"]


def test_error_envelope_example(hangar: HangarProcess) -> None:
    r = hangar.client.get("/api/mcp_servers/unknown")
    assert r.status_code == 404
    assert json_body(r) == {
        "error": "McpServerNotFoundError",
        "message": "MCP Server 'unknown' not found",
        "status_code": 404,
    }


@pytest.mark.parametrize("path", ["/health/live", "/health/ready", "/health/startup", "/metrics"])
def test_probes_and_metrics_answer_over_the_socket(hangar: HangarProcess, path: str) -> None:
    assert hangar.client.get(path).status_code == 200


def test_data_dir_was_used(hangar: HangarProcess) -> None:
    data_dir = Path(json_body(hangar.client.get("/api/system"))["system"]["data_dir"])
    assert (data_dir / "hangar.db").is_file()
