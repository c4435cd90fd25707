"""Tool access policies: property tests of the semantics (deny wins, a non-empty allow list restricts,
narrower scopes only remove, globs), and on a real front the filtered tools/list matches exactly what
tools/call and hangar_call let through, for every tool; policies from the file, from REST, durable."""

from __future__ import annotations

import asyncio
import fnmatch
import itertools
from pathlib import Path
from typing import Any

import pytest
from config_helpers import NO_WATCH, write_config
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import FIXTURES, PYTHON, loaded_config
from mcp_hangar.auth.policy import PolicyEngine, normalize_scope
from mcp_hangar.config import load_config
from mcp_hangar.errors import ConfigError
from mcp_hangar.front.session import Front, FrontSession
from mcp_hangar.hangar import Hangar

NAMED = FIXTURES / "named_tools_server.py"
TOOLS = ["read_file", "read_dir", "write_file", "delete_file", "admin_reset", "admin_status", "search",
         "search_docs", "Add", "add", "add2", "x"]
_ids = itertools.count(1)

globs = st.text(alphabet="abdr_*?[]x", min_size=1, max_size=8)
patterns = st.lists(st.one_of(st.sampled_from(["*", "read_*", "*_file", "admin_*", "add?", "[Aa]dd", "search*",
                                               "x", "nothing"]), globs), max_size=4)
tool_names = st.one_of(st.sampled_from(TOOLS), st.text(alphabet="abdrxA_2", min_size=1, max_size=8))


def reference(tool: str, allow: list[str], deny: list[str]) -> bool:
    """The documented rule, written the plain way: deny wins; a non-empty allow list restricts."""
    if any(fnmatch.fnmatchcase(tool, p) for p in deny):
        return False
    return not allow or any(fnmatch.fnmatchcase(tool, p) for p in allow)


def engine(groups: dict[str, list[str]] | None = None) -> PolicyEngine:
    groups = groups or {}
    return PolicyEngine(lambda target: groups.get(target))


@given(tool=tool_names, allow=patterns, deny=patterns)
def test_one_policy_follows_the_rule(tool: str, allow: list[str], deny: list[str]) -> None:
    policies = engine()
    policies.set_rest("mcp_server", "s", allow, deny)
    refusal = policies.judge("s", tool)
    assert (refusal is None) == reference(tool, allow, deny)
    if refusal is not None:
        if refusal.list_name == "deny_list":
            assert refusal.pattern in deny and fnmatch.fnmatchcase(tool, refusal.pattern)
        else:
            assert allow and refusal.pattern is None


@given(tool=tool_names, allow=patterns, deny=st.lists(globs, min_size=1, max_size=3))
def test_deny_wins_over_any_allow(tool: str, allow: list[str], deny: list[str]) -> None:
    policies = engine()
    policies.set_rest("mcp_server", "s", [*allow, tool, "*"], [*deny, tool])
    refusal = policies.judge("s", tool)
    assert refusal is not None and refusal.list_name == "deny_list"


@given(tool=tool_names, server=st.tuples(patterns, patterns), group=st.tuples(patterns, patterns),
       member=st.tuples(patterns, patterns))
def test_narrower_scopes_only_remove_tools(tool: str, server: tuple[list[str], list[str]],
                                           group: tuple[list[str], list[str]],
                                           member: tuple[list[str], list[str]]) -> None:
    policies = engine({"g": ["m1", "m2"]})
    policies.set_rest("mcp_server", "m1", *server)
    direct = policies.judge("m1", tool) is None
    through_group = policies.judge("g", tool) is None
    policies.set_rest("group", "g", *group)
    with_group = policies.judge("g", tool) is None
    policies.set_rest("member", "m2", *member)
    with_member = policies.judge("g", tool) is None
    assert through_group <= direct  # the group can offer only what its member's server policy allows
    assert with_group <= through_group and with_member <= with_group  # each narrower scope only removes
    assert policies.judge("m1", tool) is None or not direct  # members' own calls are untouched by group scopes
    assert with_member == (reference(tool, *server) and reference(tool, *group) and reference(tool, *member))


def test_the_provider_alias_and_clearing_restores_the_file_policy() -> None:
    assert normalize_scope("provider") == "mcp_server" and normalize_scope("tenant") is None
    policies = engine()
    policies.set_config_policies({("mcp_server", "s"): ([], ["write_*"])})
    assert policies.judge("s", "write_file") is not None and policies.judge("s", "read_file") is None
    policies.set_rest("mcp_server", "s", ["read_file"], [])
    assert policies.judge("s", "write_file") is not None and policies.judge("s", "search") is not None
    assert policies.judge("s", "read_file") is None
    policies.clear_rest("mcp_server", "s")
    assert policies.judge("s", "search") is None and policies.get("mcp_server", "s").source == "config"


def _named(**spec: Any) -> dict[str, Any]:
    return {"mode": "subprocess", "command": [PYTHON, str(NAMED)], **spec}


async def _request(session: FrontSession, method: str, params: dict[str, Any]) -> dict[str, Any]:
    response = await session.handle({"jsonrpc": "2.0", "id": next(_ids), "method": method, "params": params})
    assert response is not None
    return response


def test_filtered_tools_list_matches_what_tools_call_allows(tmp_path: Path) -> None:
    """Hypothesis draws the policies; each example runs on one event loop kept across examples, so the
    upstream servers stay warm."""
    runner = asyncio.Runner()
    config = loaded_config({"a": _named(), "b": _named(), "c": _named()},
                           {"groups": {"pool": {"members": ["a", "b"], "auto_start": False}}})
    hangar = Hangar(config, tmp_path / "data")

    async def start() -> tuple[Front, FrontSession]:
        await hangar.start()
        for sid in ("a", "b", "c"):
            await hangar.start_server(sid)
        front = Front(hangar)
        session = FrontSession(front)
        await _request(session, "initialize", {"protocolVersion": "2025-11-25", "capabilities": {},
                                               "clientInfo": {}})
        return front, session

    front, session = runner.run(start())
    upstream = [t["name"] for t in front.catalog.tools() if not t["name"].startswith("hangar_")]
    # The group's tools and c's; the members a and b are callable by their own names but not listed.
    assert sorted(upstream) == sorted(f"{t}__{n}" for t in ("c", "pool") for n in TOOLS)
    Lists = tuple[list[str], list[str]]

    async def one(a: Lists, c: Lists, pool: Lists, member: Lists) -> None:
        policies = hangar.auth.policies
        policies.set_rest("mcp_server", "a", *a)
        policies.set_rest("mcp_server", "c", *c)
        policies.set_rest("group", "pool", *pool)
        policies.set_rest("member", "b", *member)

        def allowed(target: str, tool: str) -> bool:
            return {"a": reference(tool, *a), "b": True, "c": reference(tool, *c),
                    "pool": reference(tool, *a) and reference(tool, *pool) and reference(tool, *member)}[target]

        listed = {t["name"] for t in (await _request(session, "tools/list", {}))["result"]["tools"]}
        for name in upstream:
            target, _, tool = name.partition("__")
            assert (name in listed) == allowed(target, tool), name
            answer = await _request(session, "tools/call", {"name": name, "arguments": {}})
            if name in listed:
                assert answer["result"]["content"][0]["text"] == tool, answer
            else:
                assert answer["error"]["code"] == -32003 and "rule" in answer["error"]["data"], answer
        calls = [{"mcp_server": target, "tool": tool} for target in ("a", "b", "c", "pool") for tool in TOOLS]
        batch = await _request(session, "tools/call", {"name": "hangar_call", "arguments": {
            "calls": calls, "max_concurrency": 10}})
        entries = batch["result"]["structuredContent"]["results"]
        assert len(entries) == len(calls)
        for entry in entries:
            assert entry["success"] == allowed(entry["mcp_server"], entry["tool"]), entry
            if not entry["success"]:
                assert entry["error_type"] == "ToolAccessDeniedError"

    lists = st.tuples(patterns, patterns)

    @settings(max_examples=30, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(a=lists, c=lists, pool=lists, member=lists)
    def check(a: Lists, c: Lists, pool: Lists, member: Lists) -> None:
        runner.run(one(a, c, pool, member))

    try:
        check()
    finally:
        front.close()
        runner.run(hangar.aclose())
        runner.close()


async def test_a_refused_call_names_the_rule_in_the_error_and_the_event(hangar_factory: Any) -> None:
    hangar = await hangar_factory({"a": _named(tools={"deny_list": ["delete_*"], "allow_list": ["*_file"]})})
    front = Front(hangar)
    session = FrontSession(front)
    await _request(session, "initialize", {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {}})
    try:
        with hangar.bus.subscription() as events:
            denied = await _request(session, "tools/call", {"name": "a__delete_file", "arguments": {}})
            event = await events.wait_for(lambda e: e.event_type == "ToolCallRefused", 5)
        assert denied["error"]["code"] == -32003
        assert "deny_list pattern 'delete_*'" in denied["error"]["message"]
        rule = {"scope": "mcp_server", "target_id": "a", "list": "deny_list", "pattern": "delete_*",
                "source": "config"}
        assert denied["error"]["data"]["rule"] == rule
        assert event.to_dict()["rule"] == rule and event.to_dict()["tool_name"] == "delete_file"
        unlisted = await _request(session, "tools/call", {"name": "a__search", "arguments": {}})
        assert "matches no allow_list pattern" in unlisted["error"]["message"]
        ok = await _request(session, "tools/call", {"name": "a__read_file", "arguments": {}})
        assert ok["result"]["content"][0]["text"] == "read_file"
    finally:
        front.close()


async def test_policies_set_through_rest_are_audited_and_survive_a_restart(api_factory: Any, tmp_path: Path) -> None:
    data = tmp_path / "p"
    hangar, client = await api_factory({"a": _named()}, data_dir=data)
    with hangar.bus.subscription() as events:
        made = await client.post("/api/auth/policies/provider/a", json={"deny_list": ["admin_*"]})
        assert made.json() == {"scope": "mcp_server", "target_id": "a", "allow_list": [], "deny_list": ["admin_*"],
                               "set": True, "source": "api"}  # only the flag that applies
        bad = await client.post("/api/auth/policies/tenant/a", json={})
        assert bad.status_code == 422 and bad.json()["error"] == "ValidationError"
        await events.wait_for(lambda e: e.event_type == "ToolAccessPolicySet", 5)
    _, again = await api_factory({"a": _named()}, data_dir=data)
    got = (await again.get("/api/auth/policies/mcp_server/a")).json()
    assert got["found"] is True and got["deny_list"] == ["admin_*"]
    cleared = (await again.delete("/api/auth/policies/mcp_server/a")).json()
    assert cleared == {"scope": "mcp_server", "target_id": "a", "allow_list": [], "deny_list": [], "source": None,
                       "cleared": True}
    assert (await again.get("/api/auth/policies/mcp_server/a")).json()["found"] is False


async def test_rest_and_hangar_tools_list_only_what_the_policy_permits(api_factory: Any) -> None:
    hangar, client = await api_factory({"a": _named(tools={"deny_list": ["admin_*", "delete_*"]})})
    await client.post("/api/mcp_servers/a/start")
    names = [t["name"] for t in (await client.get("/api/mcp_servers/a/tools")).json()["tools"]]
    assert names == [n for n in TOOLS if not n.startswith(("admin_", "delete_"))]
    front = Front(hangar)
    try:
        result = await front.management.call("hangar_tools", {"mcp_server": "a"})
        assert [t["name"] for t in result["structuredContent"]["tools"]] == names
    finally:
        front.close()


def test_the_tools_key_takes_a_declared_list_or_a_policy_mapping() -> None:
    config = loaded_config({"declared": _named(tools=[{"name": "read_file"}]),
                            "guarded": _named(tools={"allow_list": ["read_*"]})},
                           {"groups": {"pool": {"members": ["guarded"], "tools": {"deny_list": ["read_dir"]}}}})
    servers = config.config.mcp_servers
    assert [t.name for t in servers["declared"].tools or []] == ["read_file"]
    assert servers["declared"].tool_access is None
    assert servers["guarded"].tools is None and servers["guarded"].tool_access is not None
    assert servers["guarded"].tool_access.allow_list == ["read_*"]
    assert config.config.groups["pool"].tools is not None
    with pytest.raises(ConfigError, match="tool access policy once"):
        loaded_config({"both": _named(tools={"deny_list": ["x"]}, tool_access={"deny_list": ["y"]})})
    with pytest.raises(ConfigError, match="allow_lists"):
        loaded_config({"typo": _named(tools={"allow_lists": ["x"]})})


async def test_file_policies_on_groups_apply_after_start(hangar_factory: Any) -> None:
    hangar = await hangar_factory({"a": _named(tools={"allow_list": ["read_*"]})},
                                  extra={"groups": {"pool": {"members": ["a"], "auto_start": False,
                                                             "tools": {"deny_list": ["read_dir"]}}}})
    policies = hangar.auth.policies
    assert policies.get("group", "pool").source == "config"  # type: ignore[union-attr]
    assert policies.judge("pool", "read_file") is None
    assert policies.judge("pool", "read_dir") is not None and policies.judge("a", "read_dir") is None
    assert policies.judge("pool", "search") is not None


async def test_a_reloaded_file_policy_applies_without_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "hangar.yaml"
    doc: dict[str, Any] = {"mcp_servers": {"a": _named(tools={"deny_list": ["admin_*"]})},
                           "groups": {"pool": {"members": ["a"], "auto_start": False}}, **NO_WATCH}
    write_config(path, doc)
    hangar = Hangar(load_config(path), tmp_path / "data")
    await hangar.start()
    try:
        await hangar.start_server("a")
        pid = hangar.servers["a"].pid
        assert hangar.auth.policies.judge("a", "admin_reset") is not None
        doc["mcp_servers"]["a"]["tools"] = {"deny_list": ["delete_*"]}
        doc["groups"]["pool"]["tools"] = {"allow_list": ["read_*"]}
        write_config(path, doc)
        result = await hangar.reloader.reload("test")
        assert result["restart_required"] == [] and result["mcp_servers_restarted"] == []
        assert hangar.servers["a"].pid == pid  # a policy change does not restart the server
        assert hangar.auth.policies.judge("a", "admin_reset") is None
        assert hangar.auth.policies.judge("a", "delete_file") is not None
        assert hangar.auth.policies.judge("pool", "search") is not None
        assert hangar.auth.policies.judge("pool", "read_file") is None
    finally:
        await hangar.aclose()
