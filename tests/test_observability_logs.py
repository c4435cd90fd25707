"""Server logs: ``?follow=true`` as Server-Sent Events (backlog, live lines, end on disconnect and at
shutdown), and secrets redacted from the REST log views and from Hangar's own log records."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from conftest import raw_server
from mcp_hangar.logs import JsonFormatter, RedactingFilter, redact_text, setup_logging
from mcp_hangar.web.app import create_app
from ws_helpers import serve_app

SECRET = "sk-" + "A1b2C3d4" * 4


async def sse_events(response: httpx.Response) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    name, data = "message", ""
    async for line in response.aiter_lines():
        if line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data += line[5:].strip()
        elif not line and data:
            yield name, json.loads(data)
            name, data = "message", ""


async def test_follow_sends_the_backlog_then_every_new_line(http_factory) -> None:
    hangar, base = await http_factory({"s": raw_server("--stderr-on-start", "hello from the start")})
    await hangar.start_server("s")
    async with httpx.AsyncClient(base_url=base, timeout=10) as client, \
            client.stream("GET", "/api/mcp_servers/s/logs", params={"follow": "true", "lines": 10}) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        events = sse_events(r)
        name, first = await anext(events)
        assert name == "log" and first["content"] == "hello from the start"
        assert first["mcp_server_id"] == "s" and first["stream"] == "stderr" and first["recorded_at"] > 0
        await hangar.call_tool("s", "stderr", {"lines": 3})
        live = [await anext(events) for _ in range(3)]
        assert [(n, e["content"]) for n, e in live] == [("log", f"log line {i}") for i in range(3)]


async def test_follow_ends_at_shutdown_and_on_disconnect(hangar_factory) -> None:
    hangar = await hangar_factory({"s": raw_server()})
    app = create_app(hangar, manage_lifecycle=False)
    async with serve_app(app) as base:
        followers = app.state.log_followers
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            async with client.stream("GET", "/api/mcp_servers/s/logs?follow=true") as r:
                assert r.status_code == 200
                assert len(followers.active) == 1
            async with asyncio.timeout(5):  # the client went away: the server lets go of the follower
                while followers.active or hangar.get("s").log_listeners:
                    await asyncio.sleep(0.01)  # nothing to wait on from outside the response
            async with client.stream("GET", "/api/mcp_servers/s/logs?follow=true") as r:
                app.state.begin_shutdown()
                async with asyncio.timeout(3):
                    body = [line async for line in r.aiter_lines()]  # ends: the stream is over
            assert body[0].startswith(": following s")
            assert not hangar.get("s").log_listeners


async def test_follow_of_an_unknown_server_is_a_404_envelope(api_factory) -> None:
    _, client = await api_factory({})
    r = await client.get("/api/mcp_servers/ghost/logs?follow=true")
    assert r.status_code == 404
    assert r.json()["error"] == "McpServerNotFoundError"


async def test_the_follow_parameter_is_not_in_the_openapi_document(api_factory) -> None:
    _, client = await api_factory({})
    operation = (await client.get("/openapi.json")).json()["paths"]["/api/mcp_servers/{server_id}/logs"]["get"]
    assert "follow" not in {p["name"] for p in operation["parameters"]}
    assert "follow=true" in operation["description"]


async def test_log_views_redact_secrets_written_by_an_upstream(http_factory) -> None:
    hangar, base = await http_factory({"s": raw_server("--stderr-on-start", f"OPENAI_API_KEY={SECRET} ready")})
    await hangar.start_server("s")
    async with httpx.AsyncClient(base_url=base) as client:
        logs = (await client.get("/api/mcp_servers/s/logs")).json()["logs"]
    assert logs[0]["content"] == "OPENAI_API_KEY=*** ready"
    assert SECRET not in json.dumps(logs)


@pytest.mark.parametrize("text, expected", [
    ("Authorization: Bearer abcdef.123456", "Authorization: Bearer ***"),
    ("password=hunter22 user=bob", "password=*** user=bob"),
    ('{"api_key": "s3cr3t-value", "n": 1}', '{"api_key": "***", "n": 1}'),
    ("connect https://bob:pw123@db.example/x", "connect https://bob:***@db.example/x"),
    ("key mcp_" + "Ab1_" * 10, "key mcp_***"),
    ("token: abc, next", "token: ***, next"),
    (f"using {SECRET}", "using ***"),
    ("GITHUB=ghp_" + "x1" * 15, "GITHUB=***"),
    ("mcp_hangar.supervisor: starting mcp_servers", "mcp_hangar.supervisor: starting mcp_servers"),
    ("unknown key 'api_key' (did you mean 'api_keys'?)", "unknown key 'api_key' (did you mean 'api_keys'?)"),
])
def test_secret_looking_text_is_redacted(text: str, expected: str) -> None:
    assert redact_text(text) == expected


@pytest.fixture
def captured_logging() -> Any:
    """Hangar's logging set-up writing to a buffer; the previous handlers are put back afterwards."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)

    def setup(json_logs: bool) -> io.StringIO:
        setup_logging("INFO", json_logs)
        buffer = io.StringIO()
        root.handlers[0].setStream(buffer)  # type: ignore[attr-defined]
        return buffer

    yield setup
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


def test_json_log_records_are_redacted_in_message_arguments_extras_and_tracebacks(captured_logging) -> None:
    buffer = captured_logging(json_logs=True)
    log = logging.getLogger("mcp_hangar.test")
    key = "mcp_" + "Zz9_" * 10
    log.info("created key %s for %s", key, "alice", extra={"api_key": key, "headers": {"Authorization": "Bearer x"},
                                                           "mcp_server": "math"})
    try:
        raise RuntimeError("upstream said: Bearer abcdef123456")
    except RuntimeError:
        log.exception("call failed")
    first, second = (json.loads(line) for line in buffer.getvalue().splitlines())
    assert first["message"] == "created key mcp_*** for alice"
    assert first["api_key"] == "***" and first["headers"] == {"Authorization": "***"}
    assert first["mcp_server"] == "math"
    assert "abcdef123456" not in second["exc_info"] and "Bearer ***" in second["exc_info"]
    assert key not in buffer.getvalue()


def test_human_log_lines_are_redacted_too(captured_logging) -> None:
    buffer = captured_logging(json_logs=False)
    logging.getLogger("mcp_hangar.test").warning("retrying with password=%s", "hunter22")
    line = buffer.getvalue()
    assert "password=***" in line and "hunter22" not in line


def test_the_filter_leaves_ordinary_records_alone() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "server %s is %s", ("math", "ready"), None)
    RedactingFilter().filter(record)
    assert JsonFormatter().format(record).count("server math is ready") == 1
