"""The ``groups:`` config section, the older inline form, and their located errors."""

from __future__ import annotations

from typing import Any

import pytest
from group_helpers import pool_server

from lifecycle_helpers import text_of
from mcp_hangar.config import parse_config_text
from mcp_hangar.errors import ConfigError
from mcp_hangar.strategies import STRATEGY_NAMES

GROUPS_FORM = """\
mcp_servers:
  pool-1: {mode: subprocess, command: [python3, -m, math_server]}
  pool-2: {mode: subprocess, command: [python3, -m, math_server]}
groups:
  pool:
    strategy: weighted_round_robin
    min_healthy: 1
    auto_start: false
    health: {unhealthy_threshold: 3, healthy_threshold: 2}
    circuit_breaker: {failure_threshold: 5, reset_timeout_s: 15}
    retry: {max_attempts: 2}
    members:
      - {member_id: pool-1, weight: 3, priority: 1}
      - {member_id: pool-2, weight: 1, priority: 2}
"""

INLINE_FORM = """\
mcp_servers:
  pool:
    mode: group
    strategy: weighted_round_robin
    min_healthy: 1
    auto_start: false
    health: {unhealthy_threshold: 3, healthy_threshold: 2}
    circuit_breaker: {failure_threshold: 5, reset_timeout_s: 15}
    retry: {max_attempts: 2}
    members:
      - {id: pool-1, mode: subprocess, command: [python3, -m, math_server], weight: 3, priority: 1}
      - {id: pool-2, mode: subprocess, command: [python3, -m, math_server], weight: 1, priority: 2}
"""


def _problems(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config_text(text, "c.yaml")
    return "\n".join(info.value.problems)


def test_groups_section_loads_every_key() -> None:
    cfg, _, _ = parse_config_text(GROUPS_FORM, "c.yaml")
    spec = cfg.groups["pool"]
    assert (spec.strategy, spec.min_healthy, spec.auto_start) == ("weighted_round_robin", 1, False)
    assert (spec.health.unhealthy_threshold, spec.health.healthy_threshold) == (3, 2)
    assert (spec.circuit_breaker.failure_threshold, spec.circuit_breaker.reset_timeout_s) == (5, 15)
    assert spec.retry.max_attempts == 2
    assert [(m.member_id, m.weight, m.priority) for m in spec.members] == [("pool-1", 3, 1), ("pool-2", 1, 2)]


def test_the_inline_form_loads_into_the_same_model() -> None:
    inline, _, _ = parse_config_text(INLINE_FORM, "c.yaml")
    explicit, _, _ = parse_config_text(GROUPS_FORM, "c.yaml")
    assert inline.groups == explicit.groups
    assert inline.mcp_servers == explicit.mcp_servers  # inline members with a spec became servers
    assert "pool" not in inline.mcp_servers


def test_defaults_and_the_member_shorthand() -> None:
    cfg, _, _ = parse_config_text("mcp_servers: {a: {command: [x]}}\ngroups: {g: {members: [a]}}\n", "c.yaml")
    spec = cfg.groups["g"]
    assert (spec.strategy, spec.min_healthy, spec.auto_start) == ("round_robin", 1, True)
    assert (spec.health.unhealthy_threshold, spec.health.healthy_threshold) == (2, 1)
    assert (spec.circuit_breaker.failure_threshold, spec.retry.max_attempts) == (10, 3)
    assert (spec.members[0].weight, spec.members[0].priority) == (1, 1)


def test_unknown_strategy_names_the_line_and_the_valid_names() -> None:
    problems = _problems(GROUPS_FORM.replace("weighted_round_robin", "fastest"))
    assert "c.yaml:6: groups.pool.strategy: unknown strategy 'fastest'" in problems
    assert all(name in problems for name in STRATEGY_NAMES)


def test_inline_form_errors_are_located_where_they_were_written() -> None:
    problems = _problems(INLINE_FORM.replace("strategy:", "strategi:").replace("command:", "comand:", 1))
    assert "c.yaml:4: mcp_servers.pool.strategi: unknown key 'strategi' (did you mean 'strategy'?)" in problems
    assert "c.yaml:11: mcp_servers.pool.members.0.comand" in problems and "did you mean 'command'" in problems


def test_nested_settings_suggest_the_right_key() -> None:
    problems = _problems(GROUPS_FORM.replace("unhealthy_threshold", "unhealthy_treshold"))
    assert "c.yaml:9: groups.pool.health.unhealthy_treshold" in problems
    assert "did you mean 'unhealthy_threshold'" in problems


def test_members_must_be_servers_and_ids_unique() -> None:
    problems = _problems(GROUPS_FORM.replace("{member_id: pool-2", "{member_id: ghost"))
    assert "c.yaml:14: groups.pool.members.1: member 'ghost' is not a server" in problems
    problems = _problems(GROUPS_FORM + "  pool-1: {members: []}\n")
    assert "'pool-1' is both a server id and a group id" in problems
    problems = _problems(GROUPS_FORM.replace("weight: 1, priority: 2}", "weight: -1}"))
    assert "c.yaml:14" in problems and "greater than or equal to 1" in problems


async def test_a_config_group_serves_calls(hangar_factory: Any) -> None:
    hangar = await hangar_factory({"pool": {"mode": "group", "members": [
        {"id": "p1", **pool_server()}, {"id": "p2", **pool_server()}]}})
    assert sorted(hangar.servers) == ["p1", "p2"] and list(hangar.groups.groups) == ["pool"]
    assert text_of(await hangar.call_tool("pool", "echo", {"text": "inline"})) == "inline"
