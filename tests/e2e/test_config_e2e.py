"""Configuration as code with the real CLI: SIGHUP reload, export from a running instance and a second
instance started on it, ``config diff``, secrets kept out of the logs, and the durable store surviving
``kill -9`` in the middle of heavy writes (on SQLite and on PostgreSQL, which skips when no server answers)."""

from __future__ import annotations

import contextlib
import json
import signal
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import yaml

from conftest import raw_server

from .conftest import StartHangar
from .harness import json_body, run_cli, stdio_hangar, wait_until

QUIET = {"config_reload": {"enabled": False}}


def _write(path: Path, doc: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(doc, sort_keys=False), "utf-8")
    return path


def _ids(client: httpx.Client) -> set[str]:
    return {s["mcp_server_id"] for s in json_body(client.get("/api/mcp_servers"))["mcp_servers"]}


def test_sighup_reloads_the_file(hangar_cli: StartHangar, tmp_path: Path) -> None:
    path = _write(tmp_path / "hangar.yaml", {"mcp_servers": {"a": raw_server()}, **QUIET})
    hangar = hangar_cli(config=path)
    assert hangar.client.post("/api/mcp_servers/a/start").status_code == 200
    pid = json_body(hangar.client.get("/api/mcp_servers/a"))["pid"]
    _write(path, {"mcp_servers": {"a": raw_server(), "b": raw_server()}, **QUIET})
    hangar.send(signal.SIGHUP)
    wait_until(lambda: "b" in _ids(hangar.client), 15, "SIGHUP to add server b")
    assert json_body(hangar.client.get("/api/mcp_servers/a"))["pid"] == pid
    assert hangar.proc.poll() is None
    assert "config reloaded (sighup)" in hangar.stderr()


@contextlib.contextmanager
def _config_events(base_url: str) -> Iterator[Any]:
    """A WebSocket on the event stream, subscribed to the reload outcomes."""
    from websockets.sync.client import connect

    with connect(base_url.replace("http://", "ws://") + "/api/ws/events", open_timeout=10) as ws:
        ws.send(json.dumps({"type": "subscribe",
                            "event_types": ["ConfigurationReloaded", "ConfigurationReloadFailed"]}))
        while json.loads(ws.recv(10)).get("type") != "subscribed":
            pass
        yield ws


def _next_event(ws: Any) -> dict[str, Any]:
    while True:
        message: dict[str, Any] = json.loads(ws.recv(15))
        if "event_type" in message:
            return message


def test_edit_the_file_and_diff_reload_and_the_event_stream_tell_the_truth(hangar_cli: StartHangar,
                                                                           tmp_path: Path) -> None:
    path = _write(tmp_path / "hangar.yaml", {"mcp_servers": {"a": raw_server()}, **QUIET})
    hangar = hangar_cli(config=path)
    assert json_body(hangar.client.get("/api/config/diff"))["has_diff"] is False
    _write(path, {"mcp_servers": {"a": raw_server(), "b": raw_server()}, **QUIET})
    diff = json_body(hangar.client.get("/api/config/diff"))
    assert [(d["id"], d["change"], d["origin"]) for d in diff["differences"]] == [("b", "removed", "file")]
    with _config_events(hangar.base_url) as ws:
        result = json_body(hangar.client.post("/api/config/reload"))["result"]
        event = _next_event(ws)
    assert result["mcp_servers_added"] == ["b"]
    assert event["event_type"] == "ConfigurationReloaded" and event["mcp_servers_added"] == ["b"]
    assert json_body(hangar.client.get("/api/config/diff"))["has_diff"] is False


def test_the_watcher_of_the_real_cli_applies_a_save_and_refuses_a_bad_one(hangar_cli: StartHangar,
                                                                          tmp_path: Path) -> None:
    path = _write(tmp_path / "hangar.yaml", {"mcp_servers": {"a": raw_server()}})
    hangar = hangar_cli(config=path)
    with _config_events(hangar.base_url) as ws:
        _write(path, {"mcp_servers": {"a": raw_server(), "b": raw_server()}})
        applied = _next_event(ws)
        path.write_text("mcp_servers:\n  a: {mode: subprocess, command: [x], colour: red}\n", "utf-8")
        refused = _next_event(ws)
    assert applied["event_type"] == "ConfigurationReloaded" and applied["trigger"] == "watcher"
    assert applied["mcp_servers_added"] == ["b"]
    assert refused["event_type"] == "ConfigurationReloadFailed"
    assert f"{path}:2: mcp_servers.a.colour: unknown key 'colour'" in refused["problems"][0]
    assert _ids(hangar.client) == {"a", "b"}


def test_an_export_from_a_running_instance_starts_an_identical_one(hangar_cli: StartHangar, tmp_path: Path) -> None:
    path = _write(tmp_path / "hangar.yaml", {
        "mcp_servers": {"a": raw_server(env={"API_TOKEN": "${E2E_TOKEN}"})},
        "groups": {"pool": {"members": ["a"], "auto_start": False}}, **QUIET})
    env = {"E2E_TOKEN": "e2e-token-value-31"}
    first = hangar_cli(config=path, env=env, data_dir=tmp_path / "one")
    assert first.client.post("/api/mcp_servers", json={"mcp_server_id": "rest1", **raw_server()}).status_code == 201
    assert first.client.post("/api/groups", json={"group_id": "g2", "strategy": "random"}).status_code == 201
    assert first.client.post("/api/groups/g2/members", json={"member_id": "rest1"}).status_code == 201
    exported = tmp_path / "exported.yaml"
    out = run_cli("config", "export", "--url", first.base_url, "-o", str(exported), cwd=tmp_path, home=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "${E2E_TOKEN}" in exported.read_text() and "e2e-token-value-31" not in exported.read_text()

    second = hangar_cli(config=exported, env=env, data_dir=tmp_path / "two")
    assert json_body(second.client.get("/api/config")) == json_body(first.client.get("/api/config"))
    assert json_body(second.client.get("/api/groups"))["groups"][0]["group_id"] == "g2"
    assert _ids(second.client) == {"a", "rest1"}
    in_sync = run_cli("config", "diff", "--url", second.base_url, cwd=tmp_path, home=tmp_path)
    assert in_sync.returncode == 0 and in_sync.stdout == "", in_sync.stdout + in_sync.stderr
    differs = run_cli("config", "diff", "--url", first.base_url, cwd=tmp_path, home=tmp_path)
    assert differs.returncode == 1 and "+++ in-memory" in differs.stdout
    assert "added mcp_servers rest1 [api]" in differs.stderr


def test_config_export_and_diff_of_files(tmp_path: Path) -> None:
    a = _write(tmp_path / "a.yaml", {"mcp_servers": {"x": raw_server(env={"DB_PASSWORD": "lit-pw-9"})}})
    b = _write(tmp_path / "b.yaml", {"mcp_servers": {"x": raw_server(idle_ttl_s=5)}})
    out = run_cli("config", "export", str(a), cwd=tmp_path, home=tmp_path)
    assert out.returncode == 0 and "lit-pw-9" not in out.stdout
    assert "${HANGAR_REDACTED_MCP_SERVERS_X_ENV_DB_PASSWORD}" in out.stdout
    assert "redacted: mcp_servers.x.env.DB_PASSWORD" in out.stderr
    literal = run_cli("config", "export", str(a), "--include-secrets", cwd=tmp_path, home=tmp_path)
    assert "lit-pw-9" in literal.stdout
    diff = run_cli("config", "diff", str(a), str(b), "--json", cwd=tmp_path, home=tmp_path)
    assert diff.returncode == 1
    assert yaml.safe_load(diff.stdout)[0]["fields"] == ["env", "idle_ttl_s"]
    assert run_cli("config", "diff", str(a), str(a), cwd=tmp_path, home=tmp_path).returncode == 0
    assert run_cli("config", "check", str(a), cwd=tmp_path, home=tmp_path).returncode == 0
    missing = run_cli("config", "export", "--url", "http://127.0.0.1:9", cwd=tmp_path, home=tmp_path)
    assert missing.returncode == 2 and "cannot reach" in missing.stderr


def test_secrets_stay_out_of_the_logs_of_a_real_instance(hangar_cli: StartHangar, tmp_path: Path) -> None:
    secrets = ("env-secret-4411", "literal-secret-5522", "rest-secret-6633")
    path = _write(tmp_path / "hangar.yaml", {"mcp_servers": {
        "a": raw_server(env={"API_TOKEN": "${E2E_SECRET}", "DB_PASSWORD": secrets[1]})}})
    hangar = hangar_cli("--log-level", "DEBUG", config=path, env={"E2E_SECRET": secrets[0]})
    hangar.client.post("/api/mcp_servers", json={"mcp_server_id": "r", **raw_server(env={"SERVICE_KEY": secrets[2]})})
    hangar.client.post("/api/mcp_servers/a/start")
    _write(path, {"mcp_servers": {"a": raw_server(env={"API_TOKEN": "${E2E_SECRET}", "DB_PASSWORD": "x"}),
                                  "b": {"mode": "subprocess", "command": ["x"], "idle_ttl_s": "bad"}}})
    wait_until(lambda: "refused" in hangar.stderr(), 15, "the watcher to refuse the invalid file")
    bodies = [hangar.client.get("/api/config").text, hangar.client.get("/api/config/diff").text,
              hangar.client.post("/api/config/export").text, hangar.client.post("/api/config/reload").text]
    logs = hangar.stderr() + hangar.stdout()
    assert "DEBUG" in logs
    for secret in secrets:
        assert secret not in logs
        assert all(secret not in body for body in bodies)


# --------------------------------------------------------------------------- durability


def _query(db: Path, store: dict[str, Any], query: str) -> list[tuple[Any, ...]]:
    """What another process sees committed right now (a read-only connection, as a backup tool would)."""
    if not store:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10) as conn:
            return conn.execute(query).fetchall()
    import psycopg
    from psycopg import sql

    with psycopg.connect(store["dsn"], autocommit=True) as pg:
        pg.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(store["pg_schema"])))
        return pg.execute(query).fetchall()


def _load(base_url: str, stop: threading.Event, errors: list[BaseException]) -> None:
    """Start and stop servers as fast as possible: every round writes state changes to the event log."""
    with httpx.Client(base_url=base_url, timeout=10) as client:
        n = 0
        while not stop.is_set():
            try:
                client.post(f"/api/mcp_servers/w{n % 4}/start")
                client.post(f"/api/mcp_servers/w{n % 4}/stop")
                client.put(f"/api/mcp_servers/w{n % 4}", json={"description": f"round {n}"})
            except httpx.HTTPError:
                return  # the server was killed
            except BaseException as exc:  # pragma: no cover - reported by the test
                errors.append(exc)
                return
            n += 1


def test_the_store_survives_kill_9_during_heavy_writes(hangar_cli: StartHangar, tmp_path: Path,
                                                      store_config: dict[str, Any]) -> None:
    data = tmp_path / "state"
    path = _write(tmp_path / "hangar.yaml", {"mcp_servers": {f"w{i}": raw_server() for i in range(4)},
                                             "observability": {"event_log_max_events": 10_000_000},
                                             "event_store": store_config, **QUIET})
    hangar = hangar_cli(config=path, data_dir=data)
    db = data / "events.db"

    def _committed(_: Path) -> dict[int, str]:
        return dict(_query(db, store_config, "SELECT global_position, event_id FROM events"))

    if not store_config:
        wait_until(db.exists, 30, "the event log file")
    stop, errors = threading.Event(), []
    workers = [threading.Thread(target=_load, args=(hangar.base_url, stop, errors)) for _ in range(3)]
    for worker in workers:
        worker.start()
    try:
        wait_until(lambda: len(_committed(db)) > 1500, 60, "1500 committed events")
        seen = _committed(db)
        wait_until(lambda: len(_committed(db)) > len(seen) + 200, 30, "writes still going on")
        hangar.tree()  # remember the upstream processes, so teardown can check they are gone
        last_seen = _committed(db)
        hangar.send(signal.SIGKILL)
        assert hangar.wait(10) == -signal.SIGKILL
    finally:
        stop.set()
        for worker in workers:
            worker.join(15)
    assert not errors
    if not store_config:
        with sqlite3.connect(db) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    after = _committed(db)
    lost = {p: e for p, e in last_seen.items() if after.get(p) != e}
    assert not lost, f"{len(lost)} committed events were lost"
    positions = sorted(after)
    assert positions == list(range(positions[0], positions[-1] + 1))  # no hole
    with sqlite3.connect(data / "hangar.db") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

    again = hangar_cli(config=path, data_dir=data)  # starts on the same files and carries on
    assert again.client.post("/api/mcp_servers/w0/start").status_code == 200
    wait_until(lambda: max(_committed(db)) > positions[-1], 15, "new events after the restart")
    newer = {p: e for p, e in _committed(db).items() if p > positions[-1]}
    assert newer and not set(newer.values()) & set(after.values())
    versions = _query(db, store_config, "SELECT stream_id, stream_version, COUNT(*) FROM events "
                      "GROUP BY stream_id, stream_version HAVING COUNT(*) > 1")
    assert versions == []  # no stream version was handed out twice


def test_sighup_reloads_in_stdio_mode_too(tmp_path: Path) -> None:
    path = _write(tmp_path / "hangar.yaml", {"mcp_servers": {"a": raw_server()}, **QUIET})
    with stdio_hangar(path, tmp_path) as hangar:
        ask = hangar.ask

        def listed() -> set[str]:
            result = ask(9, "tools/call", {"name": "hangar_list", "arguments": {}})["result"]
            return {s["mcp_server_id"] for s in result["structuredContent"]["mcp_servers"]}

        ask(0, "initialize", {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {}})
        assert listed() == {"a"}  # answered: Hangar has started, so SIGHUP now means reload
        _write(path, {"mcp_servers": {"a": raw_server(), "b": raw_server()}, **QUIET})
        hangar.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: listed() == {"a", "b"}, 15, "SIGHUP to add server b")
        assert hangar.proc.poll() is None
