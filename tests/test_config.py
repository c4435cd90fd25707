"""The config file: models, interpolation, located errors, lenient mode, lookup order."""

from __future__ import annotations

from pathlib import Path

import pytest

from mcp_hangar.config import (
    ConfigFileMissing,
    ConfigSyntaxError,
    find_config_path,
    load_config,
    parse_config_text,
)
from mcp_hangar.errors import ConfigError


def test_embedded_default_declares_math() -> None:
    loaded = load_config(None)
    spec = loaded.config.mcp_servers["math"]
    assert spec.mode == "subprocess"
    assert spec.command is not None and spec.command[-1] == "mcp_hangar.demo.math_server"
    assert loaded.source == "<embedded default>"


def test_defaults_are_applied() -> None:
    cfg, _, _ = parse_config_text("mcp_servers:\n  a:\n    command: [x]\n", "f.yaml")
    spec = cfg.mcp_servers["a"]
    assert (spec.idle_ttl_s, spec.health_check_interval_s, spec.max_consecutive_failures) == (300, 60, 3)


def test_unknown_key_names_file_line_and_suggestion() -> None:
    text = "mcp_servers:\n  a:\n    command: [x]\n    idle_ttl: 5\n"
    with pytest.raises(ConfigError) as info:
        parse_config_text(text, "conf.yaml")
    (problem,) = info.value.problems
    assert problem.startswith("conf.yaml:4:")
    assert "mcp_servers.a.idle_ttl" in problem
    assert "did you mean 'idle_ttl_s'" in problem


def test_every_problem_is_listed() -> None:
    text = (
        "mcp_servers:\n  a:\n    comand: [x]\n    idle_ttl_s: -1\n"
        "  'bad id!':\n    command: [y]\nlogging: {levl: INFO}\n"
    )
    with pytest.raises(ConfigError) as info:
        parse_config_text(text, "c.yaml")
    problems = "\n".join(info.value.problems)
    assert "c.yaml:3" in problems and "did you mean 'command'" in problems
    assert "c.yaml:5" in problems and "invalid MCP server id" in problems
    assert "c.yaml:7" in problems and "did you mean 'level'" in problems


def test_lenient_turns_unknown_keys_into_warnings() -> None:
    text = "mcp_servers:\n  a:\n    command: [x]\n    colour: blue\nextra_section: 1\n"
    cfg, _, warnings = parse_config_text(text, "c.yaml", lenient=True)
    assert "a" in cfg.mcp_servers
    assert len(warnings) == 2
    assert any("colour" in w and "c.yaml:4" in w for w in warnings)


def test_lenient_still_rejects_invalid_values() -> None:
    with pytest.raises(ConfigError):
        parse_config_text("mcp_servers:\n  a:\n    command: [x]\n    idle_ttl_s: nope\n", "c", lenient=True)


def test_env_interpolation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOKEN_X", "s3cret")
    monkeypatch.delenv("UNSET_Y", raising=False)
    text = ("mcp_servers:\n  a:\n    command: [x]\n    env:\n      T: ${TOKEN_X}\n"
            "      D: ${UNSET_Y:-fallback}\n      L: cost $$5\n")
    cfg, raw, _ = parse_config_text(text, "c.yaml")
    assert cfg.mcp_servers["a"].env == {"T": "s3cret", "D": "fallback", "L": "cost $5"}
    assert raw["mcp_servers"]["a"]["env"]["T"] == "${TOKEN_X}"  # the raw document keeps references


def test_missing_env_variable_is_located(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOPE_VAR", raising=False)
    with pytest.raises(ConfigError) as info:
        parse_config_text("mcp_servers:\n  a:\n    command: [x]\n    env: {K: '${NOPE_VAR}'}\n", "c.yaml")
    assert "c.yaml:4" in info.value.problems[0] and "NOPE_VAR" in info.value.problems[0]


def test_mode_requirements() -> None:
    for body, needle in (("mode: subprocess", "command"), ("mode: docker", "image"),
                         ("mode: remote", "endpoint"), ("mode: remote\n    endpoint: ftp://x", "http"),
                         ("mode: teleport", "subprocess")):
        with pytest.raises(ConfigError) as info:
            parse_config_text(f"mcp_servers:\n  a:\n    {body}\n", "c.yaml")
        assert needle in info.value.problems[0], body


def test_command_string_is_split_and_env_values_stringified() -> None:
    cfg, _, _ = parse_config_text(
        "mcp_servers:\n  a:\n    command: python -m 'my server'\n    env: {PORT: 8080, DEBUG: true}\n", "c")
    spec = cfg.mcp_servers["a"]
    assert spec.command == ["python", "-m", "my server"]
    assert spec.env == {"PORT": "8080", "DEBUG": "true"}


def test_not_yaml_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("mcp_servers: [unclosed\n")
    with pytest.raises(ConfigSyntaxError):
        load_config(bad)
    with pytest.raises(ConfigFileMissing):
        load_config(tmp_path / "missing.yaml")


def test_duplicate_keys_are_errors() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config_text("mcp_servers:\n  a: {command: [x]}\n  a: {command: [y]}\n", "c.yaml")
    assert "duplicate key 'a'" in info.value.problems[0]


def test_empty_file_is_an_empty_fleet() -> None:
    cfg, _, _ = parse_config_text("", "c.yaml")
    assert cfg.mcp_servers == {}


def test_lookup_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MCP_CONFIG", raising=False)
    assert find_config_path(None) is None
    user = tmp_path / "home" / ".config" / "mcp-hangar" / "config.yaml"
    user.parent.mkdir(parents=True)
    user.write_text("mcp_servers: {}\n")
    assert find_config_path(None) == user
    local = tmp_path / "config.yaml"
    local.write_text("mcp_servers: {}\n")
    assert find_config_path(None) == local
    monkeypatch.setenv("MCP_CONFIG", str(tmp_path / "env.yaml"))
    assert find_config_path(None) == tmp_path / "env.yaml"
    assert find_config_path("explicit.yaml") == Path("explicit.yaml")
