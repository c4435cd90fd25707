"""A real third-party upstream behind the real CLI: PyPI ``mcp-server-time`` started through REST."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from test_third_party import time_spec

from .conftest import StartHangar
from .harness import json_body


def test_mcp_server_time_starts_through_rest(hangar_cli: StartHangar, write_config: Callable[..., Path]) -> None:
    hangar = hangar_cli(config=write_config({"time": time_spec()}))
    r = hangar.client.post("/api/mcp_servers/time/start")
    assert r.status_code == 200, r.text
    assert json_body(r)["state"] == "ready"
    assert {"get_current_time", "convert_time"} <= set(json_body(r)["tools"])
    detail = json_body(hangar.client.get("/api/mcp_servers/time"))
    assert detail["server_info"]["name"] == "mcp-time"
    assert detail["pid"] in {p.pid for p in hangar.tree()}
