"""GET /metrics: the Prometheus families exist, parse, and move with what Hangar does."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import raw_server
from mcp_hangar import __version__

P = "mcp_hangar_"


async def scrape(client: httpx.AsyncClient) -> dict[str, Any]:
    r = await client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    return {family.name: family for family in text_string_to_metric_families(r.text)}


def sample(families: dict[str, Any], family: str, suffix: str = "", **labels: str) -> float | None:
    """The value of the one sample of ``family`` (named family + suffix) with exactly these labels."""
    for s in families[P + family].samples:
        if s.name == P + family + suffix and s.labels == labels:
            value: float = s.value
            return value
    return None


async def test_every_expected_family_is_exposed_with_its_type(api_factory) -> None:
    _, client = await api_factory({"s": raw_server()})
    families = await scrape(client)
    expected = {
        "mcp_server_state": "gauge",
        "mcp_server_up": "gauge",
        "mcp_server_starts": "counter",
        "mcp_server_stops": "counter",
        "mcp_server_cold_start_seconds": "histogram",
        "tool_calls": "counter",
        "tool_call_errors": "counter",
        "tool_call_duration_seconds": "histogram",
        "http_requests": "counter",
        "http_request_duration_seconds": "histogram",
        "health_checks": "counter",
    }
    for name, kind in expected.items():
        assert P + name in families, name
        assert families[P + name].type == kind, name


async def test_the_build_version_is_exposed(api_factory) -> None:
    _, client = await api_factory({})
    assert sample(await scrape(client), "build_info", version=__version__) == 1


async def test_server_state_gauge_marks_the_current_state(api_factory) -> None:
    _, client = await api_factory({"s": raw_server()})
    cold = await scrape(client)
    assert sample(cold, "mcp_server_state", mcp_server="s", state="cold") == 1
    assert sample(cold, "mcp_server_state", mcp_server="s", state="ready") == 0
    assert sample(cold, "mcp_server_up", mcp_server="s") == 0
    await client.post("/api/mcp_servers/s/start")
    ready = await scrape(client)
    assert sample(ready, "mcp_server_state", mcp_server="s", state="ready") == 1
    assert sample(ready, "mcp_server_state", mcp_server="s", state="cold") == 0
    assert sample(ready, "mcp_server_up", mcp_server="s") == 1


async def test_a_server_created_through_rest_gets_a_state_series(api_factory) -> None:
    _, client = await api_factory({})
    await client.post("/api/mcp_servers", json={"mcp_server_id": "made", **raw_server()})
    assert sample(await scrape(client), "mcp_server_state", mcp_server="made", state="cold") == 1


async def test_a_deleted_server_loses_its_state_series(api_factory) -> None:
    _, client = await api_factory({"s": raw_server()})
    await client.delete("/api/mcp_servers/s")
    families = await scrape(client)
    assert sample(families, "mcp_server_state", mcp_server="s", state="cold") is None
    assert sample(families, "mcp_server_up", mcp_server="s") is None


async def test_starts_and_the_cold_start_histogram_count_each_start(api_factory) -> None:
    _, client = await api_factory({"s": raw_server()})
    for _ in range(2):
        await client.post("/api/mcp_servers/s/start")
        await client.post("/api/mcp_servers/s/stop")
    families = await scrape(client)
    assert sample(families, "mcp_server_starts", "_total", mcp_server="s") == 2
    assert sample(families, "mcp_server_cold_start_seconds", "_count", mcp_server="s") == 2
    assert sample(families, "mcp_server_cold_start_seconds", "_sum", mcp_server="s") > 0


async def test_stops_are_counted_by_reason(api_factory) -> None:
    _, client = await api_factory({"s": raw_server()})
    await client.post("/api/mcp_servers/s/start")
    await client.post("/api/mcp_servers/s/stop", json={"reason": "maintenance"})
    await client.post("/api/mcp_servers/s/start")
    await client.post("/api/mcp_servers/s/stop")
    families = await scrape(client)
    assert sample(families, "mcp_server_stops", "_total", mcp_server="s", reason="maintenance") == 1
    assert sample(families, "mcp_server_stops", "_total", mcp_server="s", reason="user_request") == 1


async def test_tool_calls_are_counted_by_server_tool_and_outcome(api_factory) -> None:
    hangar, client = await api_factory({"s": raw_server()})
    before = await scrape(client)
    assert sample(before, "tool_calls", "_total", mcp_server="s", tool="echo", outcome="success") is None
    for _ in range(3):
        await hangar.call_tool("s", "echo", {"text": "x"})
    await hangar.call_tool("s", "fail", {})
    families = await scrape(client)
    assert sample(families, "tool_calls", "_total", mcp_server="s", tool="echo", outcome="success") == 3
    assert sample(families, "tool_calls", "_total", mcp_server="s", tool="fail", outcome="error") == 1


async def test_failed_calls_are_counted_by_error_type(api_factory) -> None:
    hangar, client = await api_factory({"s": raw_server()})
    for _ in range(2):
        with pytest.raises(Exception, match="Unknown tool"):
            await hangar.call_tool("s", "missing", {})
    families = await scrape(client)
    assert sample(families, "tool_calls", "_total", mcp_server="s", tool="missing", outcome="failure") == 2
    assert sample(families, "tool_call_errors", "_total", mcp_server="s", tool="missing",
                  error_type="UpstreamRpcError") == 2


async def test_the_call_duration_histogram_observes_every_call(api_factory) -> None:
    hangar, client = await api_factory({"s": raw_server()})
    await hangar.call_tool("s", "sleep", {"seconds": 0.05})
    await hangar.call_tool("s", "add", {"a": 1, "b": 2})
    families = await scrape(client)
    assert sample(families, "tool_call_duration_seconds", "_count", mcp_server="s", tool="sleep") == 1
    assert sample(families, "tool_call_duration_seconds", "_sum", mcp_server="s", tool="sleep") >= 0.05
    assert sample(families, "tool_call_duration_seconds", "_bucket", mcp_server="s", tool="sleep", le="0.025") == 0
    assert sample(families, "tool_call_duration_seconds", "_bucket", mcp_server="s", tool="sleep", le="+Inf") == 1
    assert sample(families, "tool_call_duration_seconds", "_count", mcp_server="s", tool="add") == 1


async def test_http_requests_are_counted_by_route_template_and_status(api_factory) -> None:
    _, client = await api_factory({"s": raw_server()})
    await client.get("/api/mcp_servers/s")
    await client.get("/api/mcp_servers/s/")
    await client.get("/api/mcp_servers/ghost")
    families = await scrape(client)
    route = "/api/mcp_servers/{server_id}"
    assert sample(families, "http_requests", "_total", method="GET", route=route, status="200") == 2
    assert sample(families, "http_requests", "_total", method="GET", route=route, status="404") == 1
    assert sample(families, "http_request_duration_seconds", "_count", method="GET", route=route) == 3


async def test_unmatched_paths_share_one_label_so_labels_stay_bounded(api_factory) -> None:
    _, client = await api_factory({})
    for i in range(3):
        await client.get(f"/no/such/path/{i}")
    families = await scrape(client)
    assert sample(families, "http_requests", "_total", method="GET", route="<unmatched>", status="404") == 3
    routes = {s.labels["route"] for s in families[P + "http_requests"].samples}
    assert not any(r.startswith("/no/") for r in routes)


async def test_validation_failures_are_counted_as_422(api_factory) -> None:
    _, client = await api_factory({})
    await client.post("/api/mcp_servers", json={"mcp_server_id": "bad id!"})
    families = await scrape(client)
    assert sample(families, "http_requests", "_total", method="POST", route="/api/mcp_servers", status="422") == 1


async def test_the_metrics_scrape_itself_is_counted(api_factory) -> None:
    _, client = await api_factory({})
    await scrape(client)
    families = await scrape(client)
    assert sample(families, "http_requests", "_total", method="GET", route="/metrics", status="200") >= 1
