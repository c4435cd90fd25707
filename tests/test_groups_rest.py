"""The Groups REST API (every row of the spec's table), its bad input, persistence, events and metrics."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
from group_helpers import group, pool_server

from lifecycle_helpers import of
from mcp_hangar.events import (
    Event,
    GroupCreated,
    GroupDeleted,
    GroupEvent,
    GroupMemberAdded,
    GroupMemberRemoved,
    GroupUpdated,
)
from mcp_hangar.strategies import STRATEGY_NAMES

JSON = {"Content-Type": "application/json"}


def _envelope(response: httpx.Response, status: int, error: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "message", "status_code"} and body["status_code"] == status, body
    assert body["error"] == error, body
    message: str = body["message"]
    return message


async def test_the_spec_example_create_a_group_with_members_works_verbatim(api_factory: Any) -> None:
    _, client = await api_factory({})
    # "Create a MCP Server", then "Create a Group with Members", exactly as the spec writes them.
    response = await client.post("/api/mcp_servers", headers=JSON, content="""{
    "mcp_server_id": "my-llm",
    "mode": "subprocess",
    "command": ["python", "-m", "llm_server"],
    "idle_ttl_s": 600,
    "description": "LLM inference mcp_server"
  }""")
    assert (response.status_code, response.json()) == (201, {"mcp_server_id": "my-llm", "created": True})
    response = await client.post("/api/groups", headers=JSON, content="""{
    "group_id": "llm-pool",
    "strategy": "round_robin",
    "min_healthy": 1
  }""")
    assert (response.status_code, response.json()) == (201, {"group_id": "llm-pool", "created": True})
    response = await client.post("/api/groups/llm-pool/members", headers=JSON,
                                 content='{"member_id": "my-llm", "weight": 1, "priority": 1}')
    assert response.status_code == 201
    assert response.json() == {"group_id": "llm-pool", "mcp_server_id": "my-llm", "added": True}

    view = (await client.get("/api/groups/llm-pool")).json()
    assert {k: view[k] for k in ("group_id", "description", "state", "strategy", "min_healthy", "healthy_count",
                                 "total_members", "circuit_open")} == {
        "group_id": "llm-pool", "description": "", "state": "inactive", "strategy": "round_robin", "min_healthy": 1,
        "healthy_count": 0, "total_members": 1, "circuit_open": False}
    (member,) = view["members"]
    assert {k: member[k] for k in ("member_id", "state", "in_rotation", "weight", "priority",
                                   "consecutive_failures", "in_flight")} == {
        "member_id": "my-llm", "state": "cold", "in_rotation": True, "weight": 1, "priority": 1,
        "consecutive_failures": 0, "in_flight": 0}
    listed = (await client.get("/api/groups")).json()
    assert [g["group_id"] for g in listed["groups"]] == ["llm-pool"] and listed["total"] == 1


async def test_every_route_of_the_groups_table(api_factory: Any) -> None:
    hangar, client = await api_factory({"a": pool_server(), "b": pool_server()})
    with hangar.bus.subscription(predicate=lambda e: isinstance(e, GroupEvent)) as events:
        assert (await client.post("/api/groups", json={"group_id": "g", "description": "pool"})).status_code == 201
        for member in ({"member_id": "a", "weight": 3}, {"member_id": "b", "priority": 2}):
            assert (await client.post("/api/groups/g/members", json=member)).status_code == 201
        updated = await client.put("/api/groups/g", json={"strategy": "priority", "min_healthy": 2,
                                                          "health": {"unhealthy_threshold": 5}})
        assert updated.json() == {"group_id": "g", "updated": True, "persisted": True,
                                  "changed_fields": ["health", "min_healthy", "strategy"]}
        view = (await client.get("/api/groups/g")).json()
        assert view["strategy"] == "priority" and view["min_healthy"] == 2 and view["source"] == "api"
        assert view["health"] == {"unhealthy_threshold": 5, "healthy_threshold": 1, "check_interval_s": 5.0}
        assert [(m["member_id"], m["weight"], m["priority"]) for m in view["members"]] == [("a", 3, 1), ("b", 1, 2)]

        await hangar.start_server("a")
        rebalanced = (await client.post("/api/groups/g/rebalance")).json()
        assert rebalanced["status"] == "rebalanced" and rebalanced["group_id"] == "g"
        assert rebalanced["group"]["healthy_count"] == 1 and rebalanced["group"]["state"] == "partial"

        removed = await client.delete("/api/groups/g/members/b")
        assert removed.json() == {"group_id": "g", "mcp_server_id": "b", "removed": True}
        assert (await client.delete("/api/groups/g")).json() == {"group_id": "g", "deleted": True}
        assert (await client.get("/api/groups")).json() == {"groups": [], "total": 0}
        kinds = [type(e) for e in await _drain(events)]
    for kind in (GroupCreated, GroupMemberAdded, GroupUpdated, GroupMemberRemoved, GroupDeleted):
        assert kind in kinds
    assert hangar.get("b").server_id == "b"  # deleting a group leaves its servers alone


async def _drain(sub: Any) -> list[Event]:
    items = []
    while sub.pending():
        items.append(await sub.get(timeout=1))
    return items


async def test_unknown_strategy_is_a_422_listing_the_valid_names(api_factory: Any) -> None:
    _, client = await api_factory({})
    message = _envelope(await client.post("/api/groups", json={"group_id": "g", "strategy": "fastest"}),
                        422, "ValidationError")
    assert "fastest" in message and all(name in message for name in STRATEGY_NAMES)
    await client.post("/api/groups", json={"group_id": "g"})
    message = _envelope(await client.put("/api/groups/g", json={"strategy": "fastest"}), 422, "ValidationError")
    assert all(name in message for name in STRATEGY_NAMES)


async def test_bad_member_input(api_factory: Any) -> None:
    _, client = await api_factory({"a": pool_server()})
    await client.post("/api/groups", json={"group_id": "g"})
    for body in ({"member_id": "a", "weight": -1}, {"member_id": "a", "weight": 0},
                 {"member_id": "a", "priority": -1}, {"member_id": "a", "extra": 1}, {"weight": 1}):
        message = _envelope(await client.post("/api/groups/g/members", json=body), 422, "ValidationError")
        assert message
    message = _envelope(await client.post("/api/groups/g/members", json={"member_id": "ghost"}),
                        404, "McpServerNotFoundError")
    assert "ghost" in message
    _envelope(await client.post("/api/groups/nope/members", json={"member_id": "a"}), 404, "GroupNotFoundError")
    assert (await client.post("/api/groups/g/members", json={"member_id": "a"})).status_code == 201
    _envelope(await client.post("/api/groups/g/members", json={"member_id": "a"}), 409, "ConflictError")
    _envelope(await client.delete("/api/groups/g/members/ghost"), 404, "GroupMemberNotFoundError")
    await client.post("/api/groups", json={"group_id": "h"})
    _envelope(await client.post("/api/groups/g/members", json={"member_id": "h"}), 422, "ValidationError")


async def test_bad_group_input(api_factory: Any) -> None:
    _, client = await api_factory({"a": pool_server()})
    assert (await client.post("/api/groups", json={"group_id": "g"})).status_code == 201
    _envelope(await client.post("/api/groups", json={"group_id": "g"}), 409, "ConflictError")
    _envelope(await client.post("/api/groups", json={"group_id": "a"}), 409, "ConflictError")  # a server's id
    _envelope(await client.post("/api/mcp_servers", json={"mcp_server_id": "g", **pool_server()}), 409, "ConflictError")
    for body in ({"group_id": "bad id!"}, {"group_id": "g2", "min_healthy": 0}, {"group_id": "g2", "nope": 1},
                 {"group_id": "g2", "retry": {"max_attempts": 0}}, {"group_id": "g2", "health": {"typo": 1}}, {}):
        _envelope(await client.post("/api/groups", json=body), 422, "ValidationError")
    for method, path in (("GET", "/api/groups/nope"), ("PUT", "/api/groups/nope"), ("DELETE", "/api/groups/nope"),
                         ("POST", "/api/groups/nope/rebalance"), ("DELETE", "/api/groups/nope/members/a")):
        response = await client.request(method, path, json={} if method == "PUT" else None)
        _envelope(response, 404, "GroupNotFoundError")


async def test_concurrent_changes_do_not_race(api_factory: Any) -> None:
    _, client = await api_factory({"a": pool_server()})
    creates = await asyncio.gather(*(client.post("/api/groups", json={"group_id": "g"}) for _ in range(5)))
    assert sorted(r.status_code for r in creates) == [201, 409, 409, 409, 409]
    adds = await asyncio.gather(*(client.post("/api/groups/g/members", json={"member_id": "a"}) for _ in range(5)))
    assert sorted(r.status_code for r in adds) == [201, 409, 409, 409, 409]
    assert (await client.get("/api/groups/g")).json()["total_members"] == 1


async def test_deleting_a_member_server_removes_it_from_its_groups(api_factory: Any, tmp_path: Path) -> None:
    hangar, client = await api_factory({}, data_dir=tmp_path / "data")
    for sid in ("a", "b"):
        await client.post("/api/mcp_servers", json={"mcp_server_id": sid, **pool_server()})
    for gid in ("g1", "g2"):
        await client.post("/api/groups", json={"group_id": gid})
        for sid in ("a", "b"):
            await client.post(f"/api/groups/{gid}/members", json={"member_id": sid})
    with hangar.bus.subscription(predicate=of(GroupMemberRemoved)) as removed:
        assert (await client.delete("/api/mcp_servers/a")).json() == {"mcp_server_id": "a", "deleted": True}
        events = [await removed.get(timeout=1), await removed.get(timeout=1)]
    assert sorted((e.group_id, e.member_id, e.reason) for e in events) == [  # type: ignore[attr-defined]
        ("g1", "a", "server_deleted"), ("g2", "a", "server_deleted")]
    for gid in ("g1", "g2"):
        assert [m["member_id"] for m in (await client.get(f"/api/groups/{gid}")).json()["members"]] == ["b"]
    await hangar.aclose()
    _, client = await api_factory({}, data_dir=tmp_path / "data")  # and it stays removed after a restart
    assert [m["member_id"] for m in (await client.get("/api/groups/g1")).json()["members"]] == ["b"]


async def test_groups_created_through_rest_survive_a_restart(api_factory: Any, tmp_path: Path) -> None:
    servers = {"a": pool_server(), "b": pool_server()}
    hangar, client = await api_factory(servers, data_dir=tmp_path / "data",
                                       extra={"groups": {"from-file": group("a")}})
    await client.post("/api/groups", json={"group_id": "kept", "strategy": "random", "min_healthy": 2,
                                           "description": "saved", "circuit_breaker": {"failure_threshold": 4}})
    await client.post("/api/groups/kept/members", json={"member_id": "a", "weight": 7, "priority": 3})
    await client.post("/api/groups/kept/members", json={"member_id": "b"})
    await client.put("/api/groups/kept", json={"strategy": "least_connections"})
    await client.post("/api/groups", json={"group_id": "gone"})
    await client.delete("/api/groups/gone")
    file_group = await client.put("/api/groups/from-file", json={"strategy": "random"})
    assert file_group.json()["persisted"] is False  # the file's groups belong to the file
    before = (await client.get("/api/groups/kept")).json()
    await hangar.aclose()

    _, client = await api_factory(servers, data_dir=tmp_path / "data", extra={"groups": {"from-file": group("a")}})
    after = (await client.get("/api/groups/kept")).json()
    for key in ("strategy", "min_healthy", "description", "circuit_breaker", "source", "total_members"):
        assert after[key] == before[key], key
    assert after["strategy"] == "least_connections"
    assert [(m["member_id"], m["weight"], m["priority"]) for m in after["members"]] == [("a", 7, 3), ("b", 1, 1)]
    assert (await client.get("/api/groups/gone")).status_code == 404
    assert (await client.get("/api/groups/from-file")).json()["strategy"] == "round_robin"


async def test_group_metrics(api_factory: Any) -> None:
    hangar, client = await api_factory({"a": pool_server(), "b": pool_server()},
                                       extra={"groups": {"pool": group("a", "b")}})
    for _ in range(4):
        await hangar.call_tool("pool", "echo", {"text": "x"})
    text = (await client.get("/metrics")).text
    assert 'mcp_hangar_group_state{group="pool",state="healthy"} 1.0' in text
    assert 'mcp_hangar_group_members_in_rotation{group="pool"} 2.0' in text
    assert 'mcp_hangar_group_circuit_open{group="pool"} 0.0' in text
    assert 'mcp_hangar_group_calls_total{group="pool",member="a",outcome="success"} 2.0' in text
    assert 'mcp_hangar_group_calls_total{group="pool",member="b",outcome="success"} 2.0' in text
    await client.delete("/api/groups/pool")
    assert 'mcp_hangar_group_state{group="pool"' not in (await client.get("/metrics")).text
