"""The ``mcp-hangar`` command line as users run it: exit codes, messages, config lookup, logging,
and state that survives a restart."""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from conftest import raw_server
from mcp_hangar import __version__

from .conftest import StartHangar
from .harness import free_port, json_body, run_cli, wait_until

WriteConfig = Callable[..., Path]


@contextlib.contextmanager
def listening_on_loopback() -> Iterator[int]:
    """Hold a listener on 127.0.0.1:<port> and give the port."""
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        yield sock.getsockname()[1]


# --------------------------------------------------------------------------- version, config check


def test_version(tmp_path: Path) -> None:
    result = run_cli("--version", cwd=tmp_path, home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"mcp-hangar {__version__}\n"


def test_config_check_accepts_a_valid_file(tmp_path: Path, write_config: WriteConfig) -> None:
    path = write_config({"a": raw_server(), "b": raw_server()})
    result = run_cli("config", "check", str(path), cwd=tmp_path, home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "valid (2 MCP servers)" in result.stdout


def test_config_check_lists_every_problem_with_file_line_and_suggestion(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "mcp_servers:\n"
        "  a:\n"
        "    command: [x]\n"
        "    idle_ttl: 5\n"  # line 4: misspelt
        "  b:\n"
        "    comand: [y]\n"  # line 6: misspelt
        "  c:\n"
        "    command: [z]\n"
        "    max_concurrency: 0\n",  # line 9: out of range
        "utf-8",
    )
    result = run_cli("config", "check", str(path), cwd=tmp_path, home=tmp_path)
    assert result.returncode == 1
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 3, result.stderr
    assert any(f"{path}:4:" in e and "idle_ttl" in e and "did you mean 'idle_ttl_s'" in e for e in errors)
    assert any(f"{path}:6:" in e and "comand" in e and "did you mean 'command'" in e for e in errors)
    assert any(f"{path}:9:" in e and "max_concurrency" in e for e in errors)
    assert result.stdout == ""


def test_config_check_missing_file_exits_2(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    result = run_cli("config", "check", str(missing), cwd=tmp_path, home=tmp_path)
    assert result.returncode == 2
    assert str(missing) in result.stderr and "no such file" in result.stderr


@pytest.mark.parametrize("content", [
    b"mcp_servers: [unclosed\n",
    b"mcp_servers:\n  a:\n\t- tab indented\n",
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe",
], ids=["unclosed-bracket", "tab-indent", "binary"])
def test_config_check_non_yaml_exits_2(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "weird.yaml"
    path.write_bytes(content)
    result = run_cli("config", "check", str(path), cwd=tmp_path, home=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"error: {path}")


# --------------------------------------------------------------------------- serve refusals


def test_non_loopback_host_without_auth_is_refused_before_binding(tmp_path: Path) -> None:
    # Someone holds 127.0.0.1:port, so binding 0.0.0.0:port would fail with exit 2; exit 1 proves
    # that Hangar refused before it tried to bind, or to create its data directory.
    data_dir = tmp_path / "data"
    with listening_on_loopback() as port:
        result = run_cli("serve", "--http", "--host", "0.0.0.0", "--port", str(port),
                         "--data-dir", str(data_dir), cwd=tmp_path, home=tmp_path)
    assert result.returncode == 1, result.stderr
    assert "refusing to serve on non-loopback address '0.0.0.0'" in result.stderr
    assert "--unsafe-no-auth" in result.stderr
    assert not data_dir.exists()


def test_port_in_use_exits_2_with_a_clear_message(tmp_path: Path) -> None:
    with listening_on_loopback() as port:
        result = run_cli("serve", "--http", "--port", str(port), "--data-dir", str(tmp_path / "data"),
                         cwd=tmp_path, home=tmp_path)
    assert result.returncode == 2, result.stderr
    assert f"error: cannot listen on 127.0.0.1:{port}: Address already in use" in result.stderr
    assert "Traceback" not in result.stderr


def test_invalid_config_refuses_to_serve(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("mcp_servers:\n  a:\n    command: [x]\n    colour: blue\n", "utf-8")
    result = run_cli("serve", "--http", "--port", str(free_port()), "-c", str(path),
                     "--data-dir", str(tmp_path / "data"), cwd=tmp_path, home=tmp_path)
    assert result.returncode == 1
    assert f"error: {path}:4: mcp_servers.a.colour: unknown key 'colour'" in result.stderr


def test_missing_config_file_exits_2(tmp_path: Path) -> None:
    result = run_cli("serve", "--http", "-c", str(tmp_path / "absent.yaml"), cwd=tmp_path, home=tmp_path)
    assert result.returncode == 2
    assert "no such file" in result.stderr


def test_unusable_state_database_exits_2_without_a_traceback(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    (data_dir / "hangar.db").mkdir(parents=True)  # a directory where the database file should be
    result = run_cli("serve", "--http", "--port", str(free_port()), "--data-dir", str(data_dir),
                     cwd=tmp_path, home=tmp_path)
    assert result.returncode == 2
    assert f"error: cannot open the state database {data_dir / 'hangar.db'}" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_log_level_is_refused(tmp_path: Path) -> None:
    result = run_cli("serve", "--http", "--log-level", "loud", cwd=tmp_path, home=tmp_path)
    assert result.returncode == 1
    assert "--log-level: unknown level 'loud'" in result.stderr


# --------------------------------------------------------------------------- config lookup order

LEVELS = ("flag", "env", "cwd", "home", "embedded")


@pytest.mark.parametrize("expected", LEVELS)
def test_config_lookup_order(tmp_path: Path, hangar_cli: StartHangar, write_config: WriteConfig,
                             expected: str) -> None:
    """--config, else $MCP_CONFIG, else ./config.yaml, else ~/.config/mcp-hangar/config.yaml, else the
    embedded default: every level below the expected one exists too, and loses."""
    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    home.mkdir()
    files = {
        "flag": write_config({"from-flag": raw_server()}, "flag.yaml"),
        "env": write_config({"from-env": raw_server()}, "env.yaml"),
        "cwd": write_config({"from-cwd": raw_server()}, "config.yaml", folder=work),
        "home": write_config({"from-home": raw_server()}, "config.yaml", folder=home / ".config" / "mcp-hangar"),
    }
    below = LEVELS[LEVELS.index(expected):]
    for level, path in files.items():
        if level not in below:
            path.unlink()
    hangar = hangar_cli(config=files["flag"] if expected == "flag" else None, cwd=work, home=home,
                        env={"MCP_CONFIG": str(files["env"])} if "env" in below else None)
    system = json_body(hangar.client.get("/api/system"))["system"]
    ids = {s["mcp_server_id"] for s in json_body(hangar.client.get("/api/mcp_servers"))["mcp_servers"]}
    if expected == "embedded":
        assert system["config_source"] == "<embedded default>"
        assert ids == {"math"}
    else:
        assert Path(system["config_source"]).resolve() == files[expected].resolve()
        assert ids == {f"from-{expected}"}


# --------------------------------------------------------------------------- logging, lenient


def _json_lines(text: str) -> list[dict[str, object]]:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    records = [json.loads(ln) for ln in lines]  # every line must be JSON
    assert all(isinstance(r, dict) and {"ts", "level", "logger", "message"} <= r.keys() for r in records)
    return records


def test_json_logs_are_json_lines_on_stderr(hangar_cli: StartHangar) -> None:
    hangar = hangar_cli("--json-logs")
    assert hangar.client.get("/api/mcp_servers/nothing").status_code == 404
    hangar.send(signal.SIGTERM)
    hangar.wait(10)
    records = _json_lines(hangar.stderr())
    messages = [str(r["message"]) for r in records]
    assert any(m.startswith(f"serving http://127.0.0.1:{hangar.port}") for m in messages)
    assert "Application shutdown complete." in messages
    assert hangar.stdout() == ""


def test_config_logging_section_turns_on_json_logs(hangar_cli: StartHangar, write_config: WriteConfig) -> None:
    # An unknown key under --lenient gives one warning to look at; info lines are below the level.
    config = write_config({"a": raw_server()}, logging={"json": True, "level": "warning"}, colour="blue")
    hangar = hangar_cli("--lenient", config=config)
    hangar.send(signal.SIGTERM)
    hangar.wait(10)
    records = _json_lines(hangar.stderr())
    assert [r["level"] for r in records] == ["warning"]
    assert "unknown key 'colour'" in str(records[0]["message"])


def test_json_logs_report_fatal_errors_as_json(tmp_path: Path) -> None:
    with listening_on_loopback() as port:
        result = run_cli("serve", "--http", "--json-logs", "--port", str(port),
                         "--data-dir", str(tmp_path / "data"), cwd=tmp_path, home=tmp_path)
    assert result.returncode == 2
    errors = [r for r in _json_lines(result.stderr) if r["level"] == "error"]
    assert len(errors) == 1 and "cannot listen on" in str(errors[0]["message"])


@pytest.mark.parametrize(("flag", "json_expected"), [(None, True), ("--no-json-logs", False)])
def test_command_line_wins_over_the_config_logging_section(tmp_path: Path, write_config: WriteConfig,
                                                           flag: str | None, json_expected: bool) -> None:
    config = write_config({"a": raw_server()}, logging={"json": True})
    with listening_on_loopback() as port:  # fails fast, after logging is set up
        result = run_cli("serve", "--http", "-c", str(config), "--port", str(port), *([flag] if flag else []),
                         "--data-dir", str(tmp_path / "data"), cwd=tmp_path, home=tmp_path)
    assert result.returncode == 2
    if json_expected:
        assert _json_lines(result.stderr)[-1]["level"] == "error"
    else:
        lines = result.stderr.splitlines()
        assert lines[-1].startswith("error: cannot listen on")
        assert not any(ln.startswith("{") for ln in lines)


def test_lenient_turns_an_unknown_key_into_a_warning(hangar_cli: StartHangar, tmp_path: Path) -> None:
    path = tmp_path / "lenient.yaml"
    path.write_text(f"mcp_servers:\n  a:\n    command: {json.dumps(raw_server()['command'])}\n"
                    "    colour: blue\n", "utf-8")
    hangar = hangar_cli("--lenient", config=path)
    ids = {s["mcp_server_id"] for s in json_body(hangar.client.get("/api/mcp_servers"))["mcp_servers"]}
    assert ids == {"a"}
    assert hangar.client.post("/api/mcp_servers/a/start").status_code == 200
    warning = [ln for ln in hangar.stderr().splitlines() if "unknown key 'colour'" in ln]
    assert len(warning) == 1 and "WARNING" in warning[0] and f"{path}:4:" in warning[0]


# --------------------------------------------------------------------------- signals, durability


def test_sigterm_ends_open_mcp_streams_instead_of_waiting_for_them(hangar_cli: StartHangar) -> None:
    hangar = hangar_cli()
    headers = {"Accept": "application/json, text/event-stream", "MCP-Protocol-Version": "2025-11-25"}
    r = hangar.client.post("/mcp", headers=headers, json={
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "e2e", "version": "1"}}})
    assert r.status_code == 200, r.text
    headers["Mcp-Session-Id"] = r.headers["mcp-session-id"]
    hangar.client.post("/mcp", headers=headers, json={"jsonrpc": "2.0", "method": "notifications/initialized"})
    with httpx.Client(base_url=hangar.base_url, timeout=10.0) as client, \
            client.stream("GET", "/mcp", headers={**headers, "Accept": "text/event-stream"}) as stream:
        assert stream.status_code == 200
        began = time.monotonic()
        hangar.send(signal.SIGTERM)
        stream.read()  # the server ends the stream cleanly; no RemoteProtocolError
        assert hangar.wait(10) == 0
        # well under uvicorn's 3 s graceful timeout, which a stream left open would use up
        assert time.monotonic() - began < 2.5


def test_sighup_does_not_stop_the_http_server(hangar_cli: StartHangar) -> None:
    hangar = hangar_cli()
    hangar.send(signal.SIGHUP)
    assert hangar.client.get("/health/ready").status_code == 200  # answered after the signal arrived
    assert hangar.proc.poll() is None


def test_servers_created_through_rest_survive_a_restart(hangar_cli: StartHangar, tmp_path: Path) -> None:
    data_dir = tmp_path / "state"
    first = hangar_cli(data_dir=data_dir)
    spec = {"mcp_server_id": "durable", **raw_server(description="made through REST")}
    r = first.client.post("/api/mcp_servers", json=spec)
    assert r.status_code == 201, r.text
    first.send(signal.SIGTERM)
    first.wait(10)

    second = hangar_cli(data_dir=data_dir)
    listed = {s["mcp_server_id"]: s for s in json_body(second.client.get("/api/mcp_servers"))["mcp_servers"]}
    assert listed["durable"]["source"] == "api"
    assert listed["durable"]["description"] == "made through REST"
    assert listed["math"]["source"] == "config"
    r = second.client.post("/api/mcp_servers/durable/start")
    assert r.status_code == 200 and "echo" in json_body(r)["tools"]


# --------------------------------------------------------------------------- the REST API loads on demand


@pytest.mark.parametrize("preload", [False, True])
def test_the_rest_api_loads_at_its_first_request_or_at_boot_with_preload(hangar_cli: StartHangar,
                                                                          preload: bool) -> None:
    hangar = hangar_cli(*(["--preload-api"] if preload else []), ready=False)  # the usual wait asks /api

    def ready() -> bool:
        with contextlib.suppress(httpx.TransportError):
            return hangar.client.get("/health/ready").status_code == 200
        return False

    wait_until(ready, 30, "/health/ready")
    loaded = "REST API loaded in"
    assert hangar.client.get("/metrics").status_code == 200
    assert (loaded in hangar.stderr()) is preload
    assert json_body(hangar.client.get("/api/system"))["system"]["pid"] == hangar.pid
    servers = json_body(hangar.client.get("/api/mcp_servers"))["mcp_servers"]
    assert [s["mcp_server_id"] for s in servers] == ["math"]  # the embedded default
    assert hangar.stderr().count(loaded) == 1
