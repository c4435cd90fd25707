"""Tool invocation history: what each record holds, calls made through ``hangar_call``, and the
configurable retention (``observability.history_retention``)."""

from __future__ import annotations

import contextlib
import sqlite3

import pytest

from conftest import raw_server
from mcp_hangar.config import parse_config_text
from mcp_hangar.errors import ConfigError
from mcp_hangar.front.session import Front


async def test_each_record_has_the_call_facts_a_correlation_id_and_a_principal_field(api_factory) -> None:
    hangar, client = await api_factory({"s": raw_server()})
    await hangar.call_tool("s", "echo", {"text": "hello"})
    with pytest.raises(Exception, match="Unknown tool"):
        await hangar.call_tool("s", "missing", {})
    body = (await client.get("/api/mcp_servers/s/tools/history")).json()
    assert body["total"] == 2
    failed, done = body["history"]  # newest first
    assert done["event_type"] == "ToolInvocationCompleted" and done["outcome"] == "success"
    assert done["tool_name"] == "echo" and done["duration_ms"] > 0
    assert done["result_size_bytes"] > 0 and done["arguments_size_bytes"] > 0
    assert len(done["correlation_id"]) >= 16 and "principal" in done  # None until auth is on
    assert failed["outcome"] == "failure" and failed["error_type"] == "UpstreamRpcError"
    assert failed["correlation_id"] != done["correlation_id"]


async def test_calls_through_hangar_call_are_recorded(api_factory) -> None:
    hangar, client = await api_factory({"s": raw_server()})
    front = Front(hangar)
    result = await front.management.call("hangar_call", {"calls": [
        {"mcp_server": "s", "tool": "echo", "arguments": {"text": "a"}},
        {"mcp_server": "s", "tool": "add", "arguments": {"a": 1, "b": 2}}]})
    front.close()
    assert result["structuredContent"]["succeeded"] == 2
    body = (await client.get("/api/mcp_servers/s/tools/history")).json()
    assert sorted(r["tool_name"] for r in body["history"]) == ["add", "echo"]


async def test_retention_is_set_in_the_config_file(api_factory) -> None:
    hangar, client = await api_factory({"s": raw_server()}, extra={"observability": {"history_retention": 3}})
    for i in range(7):
        await hangar.call_tool("s", "echo", {"text": str(i)})
    body = (await client.get("/api/mcp_servers/s/tools/history")).json()
    assert body["total"] == 3
    assert [r["tool_name"] for r in body["history"]] == ["echo"] * 3


def test_the_observability_section_is_validated_with_hints() -> None:
    with pytest.raises(ConfigError) as problem:
        parse_config_text("observability:\n  history_retension: 5\n", "hangar.yaml")
    assert "hangar.yaml:2: observability.history_retension: unknown key" in str(problem.value)
    assert "did you mean 'history_retention'" in str(problem.value)
    with pytest.raises(ConfigError, match="event_log_max_events"):
        parse_config_text("observability:\n  event_log_max_events: 0\n", "hangar.yaml")
    cfg, _, _ = parse_config_text("observability:\n  tracing: true\n  ws_queue_size: 64\n", "hangar.yaml")
    assert cfg.observability.tracing and cfg.observability.ws_queue_size == 64


async def test_a_refused_history_write_loses_no_record_and_is_retried(api_factory) -> None:
    hangar, client = await api_factory({"s": raw_server()})

    def sql(statement: str) -> None:  # the real database says no (a trigger), then yes again
        with contextlib.closing(sqlite3.connect(hangar.store.path)) as conn:
            conn.execute(statement)
            conn.commit()

    sql("CREATE TRIGGER refuse BEFORE INSERT ON invocations BEGIN SELECT RAISE(ABORT, 'refused'); END")
    for text in ("a", "b", "c"):
        await hangar.call_tool("s", "echo", {"text": text})
    await hangar.history.flush()
    assert (await client.get("/api/mcp_servers/s/tools/history")).json()["total"] == 0
    sql("DROP TRIGGER refuse")
    await hangar.history.flush()
    body = (await client.get("/api/mcp_servers/s/tools/history")).json()
    assert body["total"] == 3 and len({r["correlation_id"] for r in body["history"]}) == 3
    assert hangar.history.dropped == 0
