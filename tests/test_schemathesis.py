"""Property-based fuzzing of the REST API from its own OpenAPI document: no input produces a 500, every error
is an envelope, and every response conforms to what the document declares.

Schemathesis drives the in-process ASGI app on its own event-loop thread and runs the app's lifespan,
so the app is built with ``create_app(hangar)`` and starts and stops its Hangar itself. Every operation
in ``/openapi.json`` is fuzzed, with valid (positive) and invalid (negative) inputs.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from conftest import PYTHON, RAW_SERVER, loaded_config, raw_server
from mcp_hangar import errors
from mcp_hangar.hangar import Hangar
from mcp_hangar.web.app import create_app


def _documented_operations() -> list[str]:
    """Every operation in /openapi.json, read from an app whose Hangar is never started (no side effects)."""
    with tempfile.TemporaryDirectory() as scratch:
        app = create_app(Hangar(loaded_config({}), Path(scratch) / "data"))
        return sorted(f"{m.upper()} {p}" for p, ops in app.api.openapi()["paths"].items() for m in ops)


OPERATIONS = _documented_operations()  # new routes are fuzzed as soon as they are documented

# Every response must be one the document declares, in the declared media type and shape.
CONFORMANCE = [status_code_conformance, content_type_conformance, response_schema_conformance,
               response_headers_conformance]

# What an explicit start may legitimately answer: the upstream failed, not the gateway.
UPSTREAM_ERRORS = {cls.__name__ for cls in (errors.UpstreamError, *errors.UpstreamError.__subclasses__())}


@pytest.fixture
def live(tmp_path: Path) -> Iterator[tuple[FastAPI, Any]]:
    """A running app and its Hangar. (Schemathesis' plugin ends ASGI lifespans after every test.)"""
    hangar = Hangar(loaded_config({"raw": raw_server(), "other": raw_server(auto_start=True)}), tmp_path / "data")
    app = create_app(hangar)
    try:
        yield app, schemathesis.openapi.from_asgi("/openapi.json", app)  # runs the lifespan: Hangar starts
    finally:
        asgi.shutdown_lifespans()  # Hangar stops every server it started


def _tame(case: Any, target: str | None) -> None:
    """Aim some cases at existing servers, and keep fuzzed servers local: they run the fixture server rather
    than a random executable found on PATH (a create without a command gets one, so creates can succeed),
    and a remote endpoint is a closed loopback port rather than a random host name to resolve."""
    for name in ("server_id", "member_id"):
        if target is not None and name in case.path_parameters:
            case.path_parameters[name] = target
    if isinstance(case.body, dict) and case.method.upper() in ("POST", "PUT"):
        command = case.body.get("command")
        creating = case.path == "/api/mcp_servers" and "command" not in case.body
        if creating or (isinstance(command, (list, str)) and command):
            case.body["command"] = [PYTHON, str(RAW_SERVER)]
        if isinstance(case.body.get("endpoint"), str):
            case.body["endpoint"] = "http://127.0.0.1:9/mcp"


def _check(case: Any, app: FastAPI, target: str | None) -> None:
    _tame(case, target)
    response = case.call(app=app)
    status = response.status_code
    case.validate_response(response, checks=CONFORMANCE)
    where = f"{case.method} {case.formatted_path} query={case.query} body={case.body!r} -> {status}"
    if status == 503 and case.path.startswith("/health/"):
        assert response.json()["status"] != "healthy", where  # a probe answers with its own body
    elif status >= 400:
        body = response.json()
        assert set(body) == {"error", "message", "status_code"}, f"{where}: {response.text}"
        assert body["status_code"] == status, where
        if status >= 500:
            assert case.path.endswith("/start") and body["error"] in UPSTREAM_ERRORS, f"{where}: {response.text}"


def test_the_fuzzed_operations_include_every_route_of_the_spec_tables() -> None:
    spec = ["GET /api/mcp_servers", "POST /api/mcp_servers", "GET /api/mcp_servers/{server_id}",
            "PUT /api/mcp_servers/{server_id}", "DELETE /api/mcp_servers/{server_id}",
            "POST /api/mcp_servers/{server_id}/start", "POST /api/mcp_servers/{server_id}/stop",
            "GET /api/mcp_servers/{server_id}/tools", "GET /api/mcp_servers/{server_id}/health",
            "GET /api/mcp_servers/{server_id}/logs", "GET /api/mcp_servers/{server_id}/tools/history",
            "GET /api/system", "GET /health/live", "GET /health/ready", "GET /health/startup", "GET /metrics"]
    assert set(spec) <= set(OPERATIONS)


@pytest.mark.parametrize("label", OPERATIONS)
def test_no_input_produces_a_server_error(label: str, live: tuple[FastAPI, Any]) -> None:
    app, schema = live
    method, path = label.split(" ", 1)
    operation = schema[path][method]
    cases = st.one_of(
        operation.as_strategy(schemathesis.GenerationMode.POSITIVE),
        operation.as_strategy(schemathesis.GenerationMode.NEGATIVE),
    )

    @given(case=cases, target=st.sampled_from([None, "raw", "other"]))
    @settings(max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def fuzz(case: Any, target: str | None) -> None:
        _check(case, app, target)

    fuzz()
