"""OpenTelemetry tracing with the SDK's in-memory exporter: front request -> routing -> upstream call, the
W3C trace context in the upstream's ``_meta`` (and headers for remote upstreams), off by default."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from conftest import FIXTURES, PYTHON
from mcp_hangar import tracing
from mcp_hangar.front.session import Front, FrontSession
from ws_helpers import serve_app

META_SERVER = {"mode": "subprocess", "command": [PYTHON, str(FIXTURES / "meta_server.py")]}
CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_PARENT = f"00-{CLIENT_TRACE}-00f067aa0ba902b7-01"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.enable(provider)
    try:
        yield exporter
    finally:
        tracing.disable()
        provider.shutdown()


async def call_through_front(hangar: Any, name: str, meta: dict[str, Any] | None = None,
                             headers: dict[str, str] | None = None) -> dict[str, Any]:
    front = Front(hangar)
    session = FrontSession(front, transport="http")
    try:
        await session.handle({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t"}}})
        params: dict[str, Any] = {"name": name, "arguments": {}}
        if meta is not None:
            params["_meta"] = meta
        response = await session.handle({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": params},
                                        headers=headers)
    finally:
        session.close()
        front.close()
    assert response is not None and "result" in response, response
    result: dict[str, Any] = response["result"]
    return result


def by_name(exporter: InMemorySpanExporter) -> dict[str, ReadableSpan]:
    return {span.name: span for span in exporter.get_finished_spans()}


async def test_a_call_gives_front_routing_and_upstream_spans_in_one_trace(hangar_factory, spans) -> None:
    hangar = await hangar_factory({"s": META_SERVER})
    result = await call_through_front(hangar, "s__meta")
    found = by_name(spans)
    front, route, upstream = found["tools/call s__meta"], found["hangar.route"], found["tools/call meta"]
    assert front.kind == SpanKind.SERVER and upstream.kind == SpanKind.CLIENT
    assert route.parent is not None and route.parent.span_id == front.context.span_id
    assert upstream.parent is not None and upstream.parent.span_id == route.context.span_id
    assert len({front.context.trace_id, route.context.trace_id, upstream.context.trace_id}) == 1
    assert route.attributes["hangar.target"] == "s" and route.attributes["hangar.target.kind"] == "mcp_server"
    assert upstream.attributes["hangar.mcp_server.id"] == "s"
    # The upstream got the upstream span's context in _meta.
    sent = result["structuredContent"]["meta"]["traceparent"]
    assert sent.split("-")[:3] == ["00", f"{upstream.context.trace_id:032x}", f"{upstream.context.span_id:016x}"]


async def test_a_clients_traceparent_in_meta_becomes_the_parent(hangar_factory, spans) -> None:
    hangar = await hangar_factory({"s": META_SERVER})
    result = await call_through_front(hangar, "s__meta", meta={"traceparent": CLIENT_PARENT})
    front = by_name(spans)["tools/call s__meta"]
    assert f"{front.context.trace_id:032x}" == CLIENT_TRACE
    assert front.parent is not None and f"{front.parent.span_id:016x}" == "00f067aa0ba902b7"
    assert result["structuredContent"]["meta"]["traceparent"].split("-")[1] == CLIENT_TRACE


async def test_a_clients_traceparent_header_becomes_the_parent(hangar_factory, spans) -> None:
    hangar = await hangar_factory({"s": META_SERVER})
    await call_through_front(hangar, "s__meta", headers={"traceparent": CLIENT_PARENT})
    assert f"{by_name(spans)['tools/call s__meta'].context.trace_id:032x}" == CLIENT_TRACE


async def test_a_failing_call_marks_its_spans_as_errors(hangar_factory, spans) -> None:
    hangar = await hangar_factory({"s": META_SERVER})
    front = Front(hangar)
    session = FrontSession(front, transport="http")
    await session.handle({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t"}}})
    response = await session.handle({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                                     "params": {"name": "s__nope", "arguments": {}}})
    session.close()
    front.close()
    assert response is not None and "error" in response
    assert not by_name(spans)["tools/call s__nope"].status.is_ok


async def test_tracing_is_off_by_default_and_nothing_is_injected(hangar_factory) -> None:
    assert tracing.ENABLED is False
    hangar = await hangar_factory({"s": META_SERVER})
    result = await call_through_front(hangar, "s__meta")
    assert "traceparent" not in result["structuredContent"]["meta"]


def remote_app(seen: list[dict[str, Any]]) -> Starlette:
    """A legacy Streamable HTTP MCP server that records each tools/call's headers and _meta."""

    async def mcp(request: Request) -> Response:
        message = await request.json()
        method, params = message.get("method"), message.get("params") or {}
        if "id" not in message:
            return Response(status_code=202)
        if method == "initialize":
            result: dict[str, Any] = {"protocolVersion": "2025-11-25", "capabilities": {"tools": {}},
                                      "serverInfo": {"name": "remote", "version": "1"}}
        elif method == "tools/list":
            result = {"tools": [{"name": "meta", "inputSchema": {"type": "object"}}]}
        elif method == "tools/call":
            seen.append({"header": request.headers.get("traceparent"), "meta": params.get("_meta") or {}})
            result = {"content": [{"type": "text", "text": json.dumps(params.get("_meta"))}]}
        else:
            return JSONResponse({"jsonrpc": "2.0", "id": message["id"],
                                 "error": {"code": -32601, "message": "Method not found"}})
        return JSONResponse({"jsonrpc": "2.0", "id": message["id"], "result": result})

    return Starlette(routes=[Route("/mcp", mcp, methods=["POST", "DELETE"])])


async def test_a_remote_upstream_gets_the_trace_context_in_headers_and_meta(hangar_factory, spans) -> None:
    seen: list[dict[str, Any]] = []
    app = remote_app(seen)
    app.state.begin_shutdown = lambda: None
    async with serve_app(app) as base:
        hangar = await hangar_factory({"r": {"mode": "remote", "endpoint": base + "/mcp"}})
        await call_through_front(hangar, "r__meta")
    upstream = by_name(spans)["tools/call meta"]
    expected = ["00", f"{upstream.context.trace_id:032x}", f"{upstream.context.span_id:016x}"]
    assert len(seen) == 1
    assert seen[0]["header"].split("-")[:3] == expected
    assert seen[0]["meta"]["traceparent"] == seen[0]["header"]


def test_setup_follows_the_config_and_the_standard_environment(monkeypatch) -> None:
    assert tracing.setup(False) is False and tracing.ENABLED is False
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert tracing.setup(True) is False
    monkeypatch.delenv("OTEL_SDK_DISABLED")
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    try:
        assert tracing.setup(True) is True and tracing.ENABLED is True
    finally:
        tracing.shutdown()
    assert tracing.ENABLED is False
