"""Discovery from a watched folder of YAML files: pending, quarantine with located errors, approval,
rejection, authoritative removal, limits and conflicts. Real files, real watching, real servers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from discovery_helpers import discovery_block, fs_source, manual_block, next_event, watching

from conftest import raw_server
from mcp_hangar.models import State

pytestmark = pytest.mark.timeout(120)


def drop(folder: Path, name: str, spec: dict[str, Any]) -> Path:
    path = folder / f"{name}.yaml"
    tmp = folder / f".{name}.tmp"  # written aside and renamed, as tooling does: the watcher sees one change
    tmp.write_text(yaml.safe_dump(spec))
    tmp.rename(path)
    return path


async def test_a_dropped_valid_file_becomes_pending(api_factory: Any, tmp_path: Path) -> None:
    hangar, client = await api_factory({}, extra=discovery_block(fs_source(tmp_path)))
    await watching(hangar, "files")
    with hangar.bus.subscription() as sub:
        drop(tmp_path, "alpha", raw_server(description="from a file"))
        event = await next_event(sub, "McpServerDiscovered", "alpha")
    assert event.status == "pending" and event.source_id == "files"  # type: ignore[attr-defined]
    pending = (await client.get("/api/discovery/pending")).json()["pending"]
    assert [p["name"] for p in pending] == ["alpha"]
    assert pending[0]["source_type"] == "filesystem" and pending[0]["spec"]["description"] == "from a file"
    assert "add" in pending[0]["tools"]  # seen by the health check
    assert "alpha" not in hangar.servers  # nothing joins the fleet before approval


async def test_an_invalid_file_is_quarantined_with_the_validation_message(api_factory: Any, tmp_path: Path) -> None:
    hangar, client = await api_factory({}, extra=discovery_block(fs_source(tmp_path)))
    await watching(hangar, "files")
    where = f"{tmp_path / 'broken.yaml'}:3: comand: unknown key 'comand' (did you mean 'command'?)"
    with hangar.bus.subscription() as sub:
        # The watcher may catch the file half-written (empty) first; what counts is the reason it settles on.
        (tmp_path / "broken.yaml").write_text("name: broken\nmode: subprocess\ncomand: [python3]\n")
        await next_event(sub, "McpServerQuarantined", "broken", reason=where)
    body = (await client.get("/api/discovery/quarantined")).json()
    assert body["quarantined"]["broken"]["reason"] == where
    assert body["quarantined"]["broken"]["spec"] is None
    refused = await client.post("/api/discovery/approve/broken")
    assert refused.status_code == 422 and refused.json()["error"] == "ValidationError"


async def test_a_file_that_is_not_yaml_is_quarantined_with_its_line(hangar_factory: Any, tmp_path: Path) -> None:
    (tmp_path / "garbage.yaml").write_text("name: garbage\ncommand: [unclosed\n")
    hangar = await hangar_factory({}, extra=manual_block(fs_source(tmp_path)))
    result = await hangar.discovery.scan("files")
    assert result["quarantined"] == ["garbage"]
    reason = hangar.discovery.records["garbage"].reason
    assert reason.startswith(f"{tmp_path / 'garbage.yaml'}:") and "not valid YAML" in reason


async def test_a_server_failing_its_health_check_is_quarantined_with_the_reason(hangar_factory: Any,
                                                                              tmp_path: Path) -> None:
    drop(tmp_path, "crashy", raw_server("--exit-on-initialize"))
    hangar = await hangar_factory({}, extra=manual_block(fs_source(tmp_path)))
    result = await hangar.discovery.scan("files")
    assert result["quarantined"] == ["crashy"] and result["pending"] == []
    assert "health check failed" in hangar.discovery.records["crashy"].reason


async def test_approval_registers_the_server_cold_and_its_tools_work(api_factory: Any, tmp_path: Path) -> None:
    drop(tmp_path, "alpha", raw_server())
    hangar, client = await api_factory({}, extra=manual_block(fs_source(tmp_path)))
    await hangar.discovery.scan("files")
    with hangar.bus.subscription() as sub:
        answer = await client.post("/api/discovery/approve/alpha")
        await next_event(sub, "McpServerApproved", "alpha", automatic=False)
    assert answer.status_code == 200
    assert answer.json() == {"mcp_server_id": "alpha", "approved": True, "rejected": False, "status": "approved",
                             "source_id": "files", "state": "cold"}
    server = hangar.get("alpha")
    assert server.source == "discovery" and server.state == State.COLD
    assert (await client.get("/api/mcp_servers/alpha")).json()["source"] == "discovery"
    result = await hangar.call_tool("alpha", "add", {"a": 2, "b": 3})
    assert result["structuredContent"] == {"result": 5}
    assert (await client.get("/api/discovery/pending")).json()["pending"] == []
    again = await client.post("/api/discovery/approve/alpha")
    assert again.status_code == 404 and again.json()["error"] == "DiscoveredServerNotFoundError"


async def test_a_rejection_is_remembered_until_the_file_changes(api_factory: Any, tmp_path: Path) -> None:
    path = drop(tmp_path, "alpha", raw_server())
    hangar, client = await api_factory({}, extra=manual_block(fs_source(tmp_path)))
    await hangar.discovery.scan("files")
    with hangar.bus.subscription() as sub:
        assert (await client.post("/api/discovery/reject/alpha")).json()["rejected"] is True
        await next_event(sub, "McpServerRejected", "alpha")
    result = (await client.post("/api/discovery/sources/files/scan")).json()
    assert result["discovered"] == ["alpha"] and result["pending"] == []
    assert hangar.discovery.records["alpha"].status == "rejected"
    path.write_text(yaml.safe_dump(raw_server(description="changed")))
    result = (await client.post("/api/discovery/sources/files/scan")).json()
    assert result["pending"] == ["alpha"]


async def test_deleting_a_file_in_authoritative_mode_removes_the_server_after_the_grace_period(
        hangar_factory: Any, tmp_path: Path) -> None:
    path = drop(tmp_path, "alpha", raw_server())
    hangar = await hangar_factory({}, extra=discovery_block(fs_source(tmp_path, "authoritative"),
                                                            grace_period_s=1.0))
    await hangar.discovery.scan("files")
    await hangar.discovery.approve("alpha")
    await hangar.call_tool("alpha", "echo", {"text": "hi"})
    pid = hangar.get("alpha").pid
    await watching(hangar, "files")
    with hangar.bus.subscription() as sub:
        path.unlink()
        lost = await next_event(sub, "McpServerDiscoveryLost", "alpha")
        stopped = await next_event(sub, "McpServerStopped", "alpha")
        gone = await next_event(sub, "McpServerDeregistered", "alpha")
    assert lost.action == "removal_scheduled"  # type: ignore[attr-defined]
    assert stopped.reason == "discovery_lost" and gone.reason == "discovery_lost"  # type: ignore[attr-defined]
    assert gone.occurred_at - lost.occurred_at >= 1.0  # the grace period
    assert "alpha" not in hangar.servers and "alpha" not in hangar.discovery.records
    import psutil

    assert pid is not None and not psutil.pid_exists(pid)


async def test_in_additive_mode_a_vanished_server_stays(api_factory: Any, tmp_path: Path) -> None:
    path = drop(tmp_path, "alpha", raw_server())
    hangar, client = await api_factory({}, extra=manual_block(fs_source(tmp_path), grace_period_s=0))
    await hangar.discovery.scan("files")
    await hangar.discovery.approve("alpha")
    path.unlink()
    await client.post("/api/discovery/sources/files/scan")
    assert hangar.discovery.records["alpha"].present is False
    await client.post("/api/discovery/sources/files/scan")  # later cycles do not remove it either
    assert "alpha" in hangar.servers
    row = (await client.get("/api/discovery/sources")).json()["sources"][0]
    assert row["mcp_servers"] == [{"name": "alpha", "status": "approved", "present": False, "registered": True}]
    result = await hangar.call_tool("alpha", "add", {"a": 1, "b": 1})  # the spec is Hangar's: it still runs
    assert result["structuredContent"] == {"result": 2}


async def test_a_vanished_pending_server_is_dropped(hangar_factory: Any, tmp_path: Path) -> None:
    path = drop(tmp_path, "alpha", raw_server())
    hangar = await hangar_factory({}, extra=manual_block(fs_source(tmp_path)))
    await hangar.discovery.scan("files")
    path.unlink()
    with hangar.bus.subscription() as sub:
        await hangar.discovery.scan("files")
        lost = await next_event(sub, "McpServerDiscoveryLost", "alpha", timeout=1)
    assert lost.action == "dropped" and hangar.discovery.pending() == []  # type: ignore[attr-defined]


async def test_auto_register_adds_servers_that_pass_the_checks(hangar_factory: Any, tmp_path: Path) -> None:
    drop(tmp_path, "alpha", raw_server())
    drop(tmp_path, "crashy", raw_server("--exit-on-initialize"))
    hangar = await hangar_factory({}, extra=manual_block(fs_source(tmp_path), auto_register=True))
    with hangar.bus.subscription() as sub:
        await hangar.discovery.scan("files")
        await next_event(sub, "McpServerApproved", "alpha", automatic=True, timeout=1)
    assert hangar.get("alpha").source == "discovery"
    assert "crashy" not in hangar.servers and hangar.discovery.records["crashy"].status == "quarantined"


async def test_more_servers_than_max_servers_per_source_are_refused_with_an_event(hangar_factory: Any,
                                                                                 tmp_path: Path) -> None:
    for name in ("a1", "a2", "a3"):
        drop(tmp_path, name, raw_server())
    block = manual_block(fs_source(tmp_path), security={"max_servers_per_source": 2,
                                                           "require_health_check": False})
    hangar = await hangar_factory({}, extra=block)
    with hangar.bus.subscription() as sub:
        result = await hangar.discovery.scan("files")
        refused = await next_event(sub, "McpServerDiscoveryRefused", "a3", timeout=1)
    assert refused.reason == "max_servers_per_source"  # type: ignore[attr-defined]
    assert result["pending"] == ["a1", "a2"] and result["refused"] == {"a3": "max_servers_per_source"}
    with hangar.bus.subscription() as sub:  # the next cycle refuses it again, without a second announcement
        again = await hangar.discovery.scan("files")
        assert again["refused"] == {"a3": "max_servers_per_source"} and sub.pending() >= 1
        assert not [e for e in _drain(sub) if e.event_type == "McpServerDiscoveryRefused"]


async def test_proposals_faster_than_the_rate_are_refused_with_an_event(hangar_factory: Any, tmp_path: Path) -> None:
    for name in ("b1", "b2", "b3", "b4"):
        drop(tmp_path, name, raw_server())
    block = manual_block(fs_source(tmp_path), security={"max_registrations_per_minute": 2,
                                                           "require_health_check": False})
    hangar = await hangar_factory({}, extra=block)
    with hangar.bus.subscription() as sub:
        result = await hangar.discovery.scan("files")
        events = [e for e in _drain(sub) if e.event_type == "McpServerDiscoveryRefused"]
    assert result["pending"] == ["b1", "b2"]
    assert sorted(e.mcp_server_id for e in events) == ["b3", "b4"]  # type: ignore[attr-defined]
    assert {e.reason for e in events} == {"max_registrations_per_minute"}  # type: ignore[attr-defined]
    assert (await hangar.discovery.scan("files"))["pending"] == ["b1", "b2"]  # still refused, nothing broke
    assert hangar.discovery.sources["files"].is_healthy


async def test_a_server_of_the_config_file_wins_over_a_discovered_one(hangar_factory: Any, tmp_path: Path) -> None:
    drop(tmp_path, "alpha", raw_server(description="discovered"))
    hangar = await hangar_factory({"alpha": raw_server(description="declared")},
                                  extra=manual_block(fs_source(tmp_path)))
    result = await hangar.discovery.scan("files")
    assert result["pending"] == [] and result["refused"] == {"alpha": "conflict"}
    assert hangar.get("alpha").spec.description == "declared" and hangar.get("alpha").source == "config"


async def test_between_sources_the_higher_priority_wins(hangar_factory: Any, tmp_path: Path) -> None:
    drop(tmp_path, "alpha", raw_server(description="from the folder"))
    static = {"id": "plugin", "source_type": "static", "mode": "additive",
              "config": {"servers": {"alpha": raw_server(description="from the plug-in")}}}
    hangar = await hangar_factory({}, extra=discovery_block(static, fs_source(tmp_path), enabled=False))
    first = await hangar.discovery.scan("plugin")
    assert first["pending"] == ["alpha"]
    await hangar.discovery.scan("files")  # filesystem (3) outranks a plug-in (99): it takes the proposal over
    assert hangar.discovery.records["alpha"].source_id == "files"
    assert (await hangar.discovery.scan("plugin"))["refused"] == {"alpha": "conflict"}


def _drain(sub: Any) -> list[Any]:
    out = []
    while sub.pending():
        out.append(sub._queue.popleft())
    return out


async def test_a_server_quarantined_by_its_health_check_is_checked_again_later(hangar_factory: Any,
                                                                              tmp_path: Path) -> None:
    folder, workdir = tmp_path / "specs", tmp_path / "not-yet"
    folder.mkdir()
    drop(folder, "late", raw_server(cwd=str(workdir)))  # cannot start until its working directory exists
    hangar = await hangar_factory({}, extra=discovery_block(fs_source(folder), enabled=False))  # scans on request
    assert (await hangar.discovery.scan("files", "event"))["quarantined"] == ["late"]
    workdir.mkdir()
    assert (await hangar.discovery.scan("files", "event"))["quarantined"] == ["late"]  # events do not re-check
    assert (await hangar.discovery.scan("files", "interval"))["pending"] == ["late"]  # cycles do
