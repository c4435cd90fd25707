"""Every REST error leaves in the spec's envelope with the spec's status; bad input never reaches a 500.

Also the HTTP edge around the routes: unknown routes and methods, trailing slashes, body limits, CORS.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from conftest import PYTHON, RAW_SERVER, raw_server
from mcp_hangar import errors
from mcp_hangar.hangar import Hangar
from mcp_hangar.web.app import MAX_API_BODY_BYTES, create_app

ENVELOPE_KEYS = {"error", "message", "status_code"}
JSON = {"content-type": "application/json"}
SPEC = {"command": [PYTHON, str(RAW_SERVER)]}


def assert_envelope(response: httpx.Response, status: int, error: str) -> str:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == ENVELOPE_KEYS, body
    assert body["error"] == error and body["status_code"] == status and body["message"]
    message: str = body["message"]
    return message


@pytest.fixture
async def lenient(api_factory) -> AsyncIterator[tuple[Hangar, httpx.AsyncClient]]:
    """A client that receives the app's 500 responses instead of re-raising the app's exception."""
    hangar, _ = await api_factory({"s": raw_server()})
    transport = httpx.ASGITransport(app=create_app(hangar, manage_lifecycle=False), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield hangar, client


# ------------------------------------------------------------------------------- the status table


@pytest.mark.parametrize(
    ("exc", "status"),
    [
        (errors.McpServerNotFoundError("x"), 404),
        (errors.ValidationError("bad"), 422),
        (errors.RateLimitExceeded("slow down"), 429),
        (errors.CompactionError("hangar", "it has no snapshot"), 500),
        (errors.AuthenticationError("who are you"), 401),
        (errors.AccessDeniedError("not you"), 403),
        (errors.ToolAccessDeniedError("not this tool", {"scope": "mcp_server"}), 403),
        (errors.BuiltinRoleError("fixed"), 409),
        (errors.HangarError("other"), 500),
        (errors.ConflictError("exists"), 409),
        (errors.StoreError("disk"), 503),
        (errors.UpstreamTimeoutError("late"), 504),
        (errors.McpServerStartError("spawn"), 502),
    ],
)
async def test_each_domain_error_maps_to_its_status_in_the_envelope(lenient, monkeypatch, exc, status) -> None:
    hangar, client = lenient

    def fail() -> None:
        raise exc

    monkeypatch.setattr(hangar, "system_info", fail)
    response = await client.get("/api/system")
    message = assert_envelope(response, status, type(exc).__name__)
    assert message == exc.message
    if status == 429:
        assert response.headers["retry-after"] == "1"


async def test_an_unexpected_exception_is_a_500_envelope_without_internals(lenient, monkeypatch) -> None:
    hangar, client = lenient

    def fail() -> None:
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(hangar, "system_info", fail)
    message = assert_envelope(await client.get("/api/system"), 500, "InternalServerError")
    assert "secret" not in message


async def test_a_store_failure_is_a_503_store_error(api_factory) -> None:
    hangar, client = await api_factory({})
    await hangar.store.close()
    r = await client.post("/api/mcp_servers", json={"mcp_server_id": "x", **SPEC})
    assert_envelope(r, 503, "StoreError")
    assert "x" not in hangar.servers


# ------------------------------------------------------------------------------- request validation


async def test_a_request_validation_error_is_a_422_envelope_not_fastapis_detail(api_factory) -> None:
    _, client = await api_factory({})
    r = await client.post("/api/mcp_servers", json={"mcp_server_id": "x"})
    assert "detail" not in r.json()
    assert_envelope(r, 422, "ValidationError")


async def test_malformed_json_is_a_422(api_factory) -> None:
    _, client = await api_factory({})
    r = await client.post("/api/mcp_servers", content=b'{"mcp_server_id": "x",', headers=JSON)
    assert "not valid JSON" in assert_envelope(r, 422, "ValidationError")


async def test_a_body_that_is_not_utf8_is_a_422(api_factory) -> None:
    _, client = await api_factory({})
    r = await client.post("/api/mcp_servers", content=b'{"mcp_server_id": "\xff\xfe"}', headers=JSON)
    assert "not valid JSON" in assert_envelope(r, 422, "ValidationError")


async def test_a_missing_body_is_a_422(api_factory) -> None:
    _, client = await api_factory({})
    r = await client.post("/api/mcp_servers", headers=JSON)
    assert "body is required" in assert_envelope(r, 422, "ValidationError")


async def test_a_json_array_instead_of_an_object_is_a_422(api_factory) -> None:
    _, client = await api_factory({})
    assert_envelope(await client.post("/api/mcp_servers", json=[1, 2]), 422, "ValidationError")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"mcp_server_id": 7, **SPEC}, "mcp_server_id"),
        ({"mcp_server_id": "x", "command": 5}, "command"),
        ({"mcp_server_id": "x", **SPEC, "idle_ttl_s": "soon"}, "idle_ttl_s"),
        ({"mcp_server_id": "x", **SPEC, "env": ["A=1"]}, "env"),
        ({"mcp_server_id": "x", **SPEC, "auto_start": "perhaps"}, "auto_start"),
        ({"mcp_server_id": "x", **SPEC, "mode": "teleport"}, "mode"),
        ({"mcp_server_id": "x", **SPEC, "max_concurrency": 0}, "max_concurrency"),
    ],
)
async def test_wrong_types_in_a_create_are_a_422_naming_the_field(api_factory, body, field) -> None:
    hangar, client = await api_factory({})
    assert field in assert_envelope(await client.post("/api/mcp_servers", json=body), 422, "ValidationError")
    assert hangar.servers == {}


@pytest.mark.parametrize("body", [{"reason": 5}, {"reason": ""}, {"why": "x"}, [1]])
async def test_a_bad_stop_body_is_a_422(api_factory, body) -> None:
    _, client = await api_factory({"s": raw_server()})
    assert_envelope(await client.post("/api/mcp_servers/s/stop", json=body), 422, "ValidationError")


@pytest.mark.parametrize(
    "query",
    ["limit=0", "limit=501", "limit=many", "outcome=maybe", "since=soon", "since=nan", "until=inf",
     "cursor=not-a-cursor", "cursor=aDotMQ", "cursor=aDo5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5"],
)
async def test_bad_history_queries_are_a_422(api_factory, query) -> None:
    _, client = await api_factory({"s": raw_server()})
    assert_envelope(await client.get(f"/api/mcp_servers/s/tools/history?{query}"), 422, "ValidationError")


@pytest.mark.parametrize(
    ("extra", "where"),
    [
        ({"description": "\ud800"}, "description"),
        ({"command": [PYTHON, "\x00"]}, "command[1]"),
        ({"cwd": "/tmp\x00"}, "cwd"),
        ({"env": {"A=B": "1"}}, "env"),
        ({"env": {"A": "\x00"}}, "env.A"),
        ({"resources": {"cpus": 2**70}}, "resources.cpus"),
    ],
)
async def test_input_no_process_or_encoder_can_carry_is_a_422(api_factory, extra, where) -> None:
    hangar, client = await api_factory({})
    # json.dumps writes lone surrogates as \ud800 escapes, as a hostile client would.
    body = json.dumps({"mcp_server_id": "x", **SPEC, **extra}).encode()
    message = assert_envelope(await client.post("/api/mcp_servers", content=body, headers=JSON), 422,
                              "ValidationError")
    assert message.startswith(where)
    assert hangar.servers == {}
    assert (await client.get("/api/mcp_servers")).status_code == 200


async def test_an_update_with_text_that_is_not_unicode_is_a_422_and_the_list_still_works(api_factory) -> None:
    _, client = await api_factory({"s": raw_server()})
    body = json.dumps({"description": "\udcff"}).encode()
    assert_envelope(await client.put("/api/mcp_servers/s", content=body, headers=JSON), 422, "ValidationError")
    assert (await client.get("/api/mcp_servers")).status_code == 200


async def test_a_body_over_the_limit_is_a_413(api_factory) -> None:
    hangar, client = await api_factory({})
    body = json.dumps({"mcp_server_id": "x", **SPEC, "description": "a" * MAX_API_BODY_BYTES}).encode()
    assert_envelope(await client.post("/api/mcp_servers", content=body, headers=JSON), 413, "PayloadTooLargeError")
    assert hangar.servers == {}


async def test_a_streamed_body_over_the_limit_is_a_413(api_factory) -> None:
    _, client = await api_factory({})
    body = json.dumps({"mcp_server_id": "x", **SPEC, "description": "a" * MAX_API_BODY_BYTES}).encode()

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(body), 64 * 1024):
            yield body[i:i + 64 * 1024]

    r = await client.post("/api/mcp_servers", content=chunks(), headers=JSON)
    assert_envelope(r, 413, "PayloadTooLargeError")


# ------------------------------------------------------------------------------- routes and methods


@pytest.mark.parametrize("path", ["/api/nothing", "/nothing", "/api/mcp_servers/s/nothing", "/api/mcp_servers/a/b/c"])
async def test_an_unknown_route_is_a_404_envelope(api_factory, path) -> None:
    _, client = await api_factory({"s": raw_server()})
    assert path in assert_envelope(await client.get(path), 404, "NotFoundError")


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PATCH", "/api/mcp_servers", {"GET", "POST"}),
        ("DELETE", "/api/system", {"GET"}),
        ("GET", "/api/mcp_servers/s/start", {"POST"}),
        ("POST", "/api/mcp_servers/s/tools", {"GET"}),
        ("POST", "/metrics", {"GET"}),
    ],
)
async def test_a_wrong_method_is_a_405_envelope_with_allow(api_factory, method, path, allowed) -> None:
    _, client = await api_factory({"s": raw_server()})
    r = await client.request(method, path)
    assert method in assert_envelope(r, 405, "MethodNotAllowedError")
    assert {m.strip() for m in r.headers["allow"].split(",")} - {"HEAD"} == allowed


@pytest.mark.parametrize(
    "path",
    ["/api/mcp_servers", "/api/mcp_servers/s", "/api/mcp_servers/s/tools", "/api/mcp_servers/s/tools/history",
     "/api/mcp_servers/s/logs", "/api/system", "/health/live", "/metrics", "/openapi.json"],
)
async def test_a_path_works_with_and_without_a_trailing_slash(api_factory, path) -> None:
    _, client = await api_factory({"s": raw_server()})
    plain = await client.get(path)
    slashed = await client.get(path + "/")
    assert plain.status_code == slashed.status_code == 200, slashed.text
    if path != "/metrics":
        assert slashed.json().keys() == plain.json().keys()


async def test_a_post_with_a_trailing_slash_is_served_not_redirected(api_factory) -> None:
    hangar, client = await api_factory({})
    r = await client.post("/api/mcp_servers/", json={"mcp_server_id": "x", **SPEC})
    assert r.status_code == 201 and "x" in hangar.servers
    stopped = await client.post("/api/mcp_servers/x/stop/")
    assert stopped.status_code == 200


async def test_an_unknown_server_with_a_trailing_slash_is_still_a_404_not_found(api_factory) -> None:
    _, client = await api_factory({})
    assert_envelope(await client.get("/api/mcp_servers/ghost/"), 404, "McpServerNotFoundError")


# ------------------------------------------------------------------------------------------- CORS


async def _preflight(client: httpx.AsyncClient, origin: str, method: str = "POST") -> httpx.Response:
    return await client.options("/api/mcp_servers", headers={
        "origin": origin, "access-control-request-method": method, "access-control-request-headers": "content-type"})


async def test_cors_preflight_from_an_allowed_origin_is_allowed(api_factory, monkeypatch) -> None:
    monkeypatch.setenv("MCP_CORS_ORIGINS", "https://dash.example.com, https://ops.example.com")
    _, client = await api_factory({})
    r = await _preflight(client, "https://ops.example.com")
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == "https://ops.example.com"


async def test_cors_preflight_from_another_origin_gets_no_allow_origin(api_factory, monkeypatch) -> None:
    monkeypatch.setenv("MCP_CORS_ORIGINS", "https://dash.example.com")
    _, client = await api_factory({})
    r = await _preflight(client, "https://evil.example.net")
    assert "access-control-allow-origin" not in r.headers
    assert "origin" in assert_envelope(r, 400, "BadRequestError")


async def test_cors_simple_request_from_an_allowed_origin_carries_allow_origin(api_factory, monkeypatch) -> None:
    monkeypatch.setenv("MCP_CORS_ORIGINS", "https://dash.example.com")
    _, client = await api_factory({})
    allowed = await client.get("/api/system", headers={"origin": "https://dash.example.com"})
    other = await client.get("/api/system", headers={"origin": "https://evil.example.net"})
    assert allowed.headers["access-control-allow-origin"] == "https://dash.example.com"
    assert "access-control-allow-origin" not in other.headers


async def test_cors_methods_and_headers_come_from_the_environment(api_factory, monkeypatch) -> None:
    monkeypatch.setenv("MCP_CORS_ORIGINS", "https://dash.example.com")
    monkeypatch.setenv("MCP_CORS_METHODS", "GET")
    monkeypatch.setenv("MCP_CORS_HEADERS", "x-api-key")
    _, client = await api_factory({})
    assert (await _preflight(client, "https://dash.example.com", "DELETE")).status_code == 400
    get = await client.options("/api/mcp_servers", headers={
        "origin": "https://dash.example.com", "access-control-request-method": "GET",
        "access-control-request-headers": "x-api-key"})
    assert get.status_code == 200 and "GET" in get.headers["access-control-allow-methods"]


async def test_cors_allows_any_origin_by_default(api_factory, monkeypatch) -> None:
    for name in ("MCP_CORS_ORIGINS", "MCP_CORS_METHODS", "MCP_CORS_HEADERS"):
        monkeypatch.delenv(name, raising=False)
    _, client = await api_factory({})
    r = await _preflight(client, "https://anywhere.example.org")
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "*"
