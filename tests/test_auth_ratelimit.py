"""Rate limits: a burst beyond a bucket gives 429 with Retry-After (a JSON-RPC error on /mcp) and calls
succeed again once it refills; repeated authentication failures lock a client out for a while; the
Prometheus families count it all."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from auth_helpers import McpHttp, auth_on, key_for
from conftest import raw_server


def _limits(**rate_limit: Any) -> dict[str, Any]:
    return auth_on(rate_limit=rate_limit)


async def test_a_burst_of_rest_mutations_gets_429_then_succeeds_again(api_factory: Any) -> None:
    hangar, client = await api_factory({"math": raw_server()},
                                       extra=_limits(mutations={"rps": 2, "burst": 3}))
    headers = {"x-api-key": await key_for(hangar, "user:dev", "developer")}
    for _ in range(3):
        assert (await client.post("/api/mcp_servers/math/stop", headers=headers)).status_code == 200
    refused = await client.post("/api/mcp_servers/math/stop", headers=headers)
    assert refused.status_code == 429
    assert refused.json() == {"error": "RateLimitExceeded", "message": refused.json()["message"], "status_code": 429}
    assert int(refused.headers["retry-after"]) >= 1
    assert (await client.get("/api/mcp_servers", headers=headers)).status_code == 200  # reads are not charged
    other = {"x-api-key": await key_for(hangar, "user:other", "developer")}
    assert (await client.post("/api/mcp_servers/math/stop", headers=other)).status_code == 200  # per principal
    async with asyncio.timeout(10):
        while (await client.post("/api/mcp_servers/math/stop", headers=headers)).status_code == 429:
            await asyncio.sleep(0.1)


async def test_a_burst_of_tool_calls_gets_a_json_rpc_error_then_succeeds_again(http_factory: Any) -> None:
    limits = _limits(tool_calls={"rps": 2, "burst": 3}, per_tool={"math__echo": {"rps": 0.5, "burst": 1}})
    hangar, base = await http_factory({"math": raw_server()}, extra=limits)
    key = await key_for(hangar, "user:dev", "developer")
    async with httpx.AsyncClient(timeout=30) as client:
        mcp = McpHttp(client, base, key)
        await mcp.open()
        with hangar.bus.subscription() as events:
            for _ in range(3):
                assert (await mcp.call("math__add", {"a": 1, "b": 1}))["result"]["isError"] is False
            refused = await mcp.call("math__add", {"a": 1, "b": 1})
            assert refused["error"]["code"] == -32029
            assert refused["error"]["data"]["error_type"] == "RateLimitExceeded"
            assert refused["error"]["data"]["retry_after_s"] > 0
            hit = await events.wait_for(lambda e: e.event_type == "RateLimitHit", 5)
            assert hit.to_dict()["bucket"] == "tool_calls" and hit.to_dict()["principal_id"] == "user:dev"
        async with asyncio.timeout(10):
            while "error" in await mcp.call("math__add", {"a": 1, "b": 1}):
                await asyncio.sleep(0.1)
        fresh = McpHttp(client, base, await key_for(hangar, "user:dev2", "developer"))
        await fresh.open()
        assert "result" in await fresh.call("math__echo", {"text": "a"})  # the per-tool bucket holds one
        second = await fresh.call("math__echo", {"text": "b"})
        assert second["error"]["code"] == -32029 and "tool:math__echo" in second["error"]["message"]
        assert "result" in await fresh.call("math__add", {"a": 1, "b": 1})


async def test_repeated_failures_lock_a_client_out_for_a_while(api_factory: Any) -> None:
    hangar, client = await api_factory({}, extra=_limits(max_attempts=3, window_seconds=60, lockout_seconds=1.5))
    good = {"x-api-key": await key_for(hangar, "user:v", "viewer")}
    for _ in range(5):  # a client that sends no key is not guessing: it is not locked out
        assert (await client.get("/api/mcp_servers")).status_code == 401
    assert (await client.get("/api/mcp_servers", headers=good)).status_code == 200
    with hangar.bus.subscription() as events:
        for _ in range(3):
            bad = await client.get("/api/mcp_servers", headers={"x-api-key": "mcp_wrong"})
            assert bad.status_code == 401
        locked = await client.get("/api/mcp_servers", headers=good)
        assert locked.status_code == 429 and locked.json()["error"] == "RateLimitExceeded"
        assert int(locked.headers["retry-after"]) >= 1
        lockout = await events.wait_for(lambda e: e.event_type == "RateLimitLockout", 5)
        assert lockout.to_dict()["failures"] == 3
    async with asyncio.timeout(10):
        while (await client.get("/api/mcp_servers", headers=good)).status_code == 429:
            await asyncio.sleep(0.1)
    assert (await client.get("/api/mcp_servers", headers=good)).status_code == 200


async def test_auth_metrics_move(api_factory: Any) -> None:
    hangar, client = await api_factory({}, extra=_limits(mutations={"rps": 1, "burst": 1}))
    viewer = {"x-api-key": await key_for(hangar, "user:v", "viewer")}
    await client.get("/api/mcp_servers", headers={"x-api-key": "mcp_nope"})  # AuthenticationFailed
    await client.post("/api/groups", headers=viewer, json={"group_id": "g"})  # AuthorizationDenied
    admin = {"x-api-key": await key_for(hangar, "user:a", "admin")}
    await client.post("/api/groups", headers=admin, json={"group_id": "g"})
    await client.post("/api/groups", headers=admin, json={"group_id": "h"})  # RateLimitHit
    text = (await client.get("/metrics")).text
    for family in ("mcp_hangar_auth_failures_total", "mcp_hangar_auth_denials_total",
                   "mcp_hangar_rate_limit_hits_total"):
        value = next(line for line in text.splitlines() if line.startswith(family + " "))
        assert float(value.split()[1]) >= 1, value


async def test_defaults_do_not_bite_an_interactive_burst(api_factory: Any) -> None:
    hangar, client = await api_factory({"math": raw_server()}, extra=auth_on())
    headers = {"x-api-key": await key_for(hangar, "user:dev", "developer")}
    answers = [await client.post("/api/mcp_servers/math/stop", headers=headers) for _ in range(50)]
    assert {a.status_code for a in answers} == {200}


async def test_calls_inside_hangar_call_are_charged_like_tool_calls(http_factory: Any) -> None:
    limits = _limits(tool_calls={"rps": 0.5, "burst": 3}, per_tool={"math__echo": {"rps": 0.5, "burst": 1}})
    hangar, base = await http_factory({"math": raw_server()}, extra=limits)
    await hangar.start_server("math")  # its tools, hence the names clients see, are known
    async with httpx.AsyncClient(timeout=30) as client:
        mcp = McpHttp(client, base, await key_for(hangar, "user:dev", "developer"))
        await mcp.open()
        calls = [{"mcp_server": "math", "tool": "echo", "arguments": {"text": "a"}},
                 {"mcp_server": "math", "tool": "echo", "arguments": {"text": "b"}},
                 {"mcp_server": "math", "tool": "add", "arguments": {"a": 1, "b": 2}},
                 {"mcp_server": "math", "tool": "add", "arguments": {"a": 1, "b": 2}}]
        answer = await mcp.call("hangar_call", {"calls": calls, "max_concurrency": 1})
        results = answer["result"]["structuredContent"]["results"]
        assert [r["success"] for r in results] == [True, False, True, False]
        assert {results[1]["error_type"], results[3]["error_type"]} == {"RateLimitExceeded"}
        assert "tool:math__echo" in results[1]["error"] and "tool_calls" in results[3]["error"]


async def test_per_tool_buckets_in_hangar_call_apply_before_the_targets_tools_are_known(http_factory: Any) -> None:
    limits = _limits(per_tool={"math__echo": {"rps": 0.01, "burst": 1}})
    hangar, base = await http_factory({"math": raw_server()}, extra=limits)
    assert hangar.servers["math"].tools_origin == "unknown"  # never started: no catalogue name yet
    async with httpx.AsyncClient(timeout=30) as client:
        mcp = McpHttp(client, base, await key_for(hangar, "user:dev", "developer"))
        await mcp.open()
        calls = [{"mcp_server": "math", "tool": "echo", "arguments": {"text": "a"}},
                 {"mcp_server": "math", "tool": "echo", "arguments": {"text": "b"}}]
        answer = await mcp.call("hangar_call", {"calls": calls, "max_concurrency": 1})
        results = answer["result"]["structuredContent"]["results"]
        # The first call, made while the tools were unknown, took the bucket's only token.
        assert [r["success"] for r in results] == [True, False], results
        assert results[1]["error_type"] == "RateLimitExceeded" and "tool:math__echo" in results[1]["error"]
        direct = await mcp.call("math__echo", {"text": "c"})  # the same bucket as a tools/call by name
        assert direct["error"]["code"] == -32029 and "tool:math__echo" in direct["error"]["message"]
