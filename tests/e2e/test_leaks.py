"""Nothing leaks: the real CLI with three running servers (one with a grandchild) leaves no process
behind when it is stopped with SIGTERM or SIGINT, or killed with SIGKILL.

The tree is taken from psutil (every descendant of Hangar: the reaper watchdog, the three servers,
the grandchild) and pinned with pidfds before the signal, so a PID reused later is never confused
with one of ours. A process has left once it has terminated; see ``harness.has_exited`` for zombies.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import pytest

from conftest import raw_server, sdk_server
from mcp_hangar import reaper

from .conftest import StartHangar
from .harness import HangarProcess, Watched, json_body, port_is_free, wait_all_exited, wait_until, watch

BUDGET_S = 5.0
GRANDCHILD_RE = re.compile(r"^grandchild (\d+)$")


@dataclass
class Fleet:
    hangar: HangarProcess
    watched: list[Watched]
    server_pids: dict[str, int]
    grandchild: int
    reaper: int


@pytest.fixture
def fleet(hangar_cli: StartHangar, write_config: Callable[..., Path]) -> Iterator[Fleet]:
    """Hangar with math (official SDK), raw --grandchild and sdk running, and its tree pinned."""
    config = write_config({
        "math": {"mode": "subprocess", "command": ["${HANGAR_PYTHON}", "-m", "mcp_hangar.demo.math_server"]},
        "raw": raw_server("--grandchild"),
        "sdk": sdk_server(),
    })
    hangar = hangar_cli(config=config)
    ids = ("math", "raw", "sdk")

    def start(server_id: str) -> int:
        with httpx.Client(base_url=hangar.base_url, timeout=30.0) as client:
            return client.post(f"/api/mcp_servers/{server_id}/start").status_code

    with ThreadPoolExecutor(len(ids)) as pool:
        assert list(pool.map(start, ids)) == [200, 200, 200]
    listed = json_body(hangar.client.get("/api/mcp_servers"))["mcp_servers"]
    server_pids = {s["mcp_server_id"]: s["pid"] for s in listed}
    assert all(server_pids[i] for i in ids), listed

    found: list[int] = []

    def grandchild_logged() -> bool:
        logs = json_body(hangar.client.get("/api/mcp_servers/raw/logs"))["logs"]
        found[:] = [int(m.group(1)) for ln in logs if (m := GRANDCHILD_RE.match(ln["content"]))]
        return bool(found)

    wait_until(grandchild_logged, BUDGET_S, "the raw server's 'grandchild <pid>' log line")
    tree = hangar.tree()
    pids = {p.pid for p in tree}
    assert set(server_pids.values()) <= pids
    assert found[0] in pids, "the grandchild must be part of Hangar's process tree"
    reapers = [p for p in psutil.Process(hangar.pid).children() if p.cmdline()[1:3] == ["-S", "-c"]]
    assert len(reapers) == 1, "Hangar runs exactly one reaper watchdog"
    assert len(tree) == 5, [p.cmdline() for p in tree]  # the reaper, three servers, the grandchild
    watched = watch(tree)
    assert len(watched) == len(tree)
    try:
        yield Fleet(hangar, watched, server_pids, found[0], reapers[0].pid)
    finally:
        for w in watched:
            w.close()


def _survivors(fleet: Fleet, began: float) -> list[str]:
    left = wait_all_exited(fleet.watched, max(0.0, began + BUDGET_S - time.monotonic()))
    return [w.describe() for w in left]


@pytest.mark.parametrize(("sig", "exit_code"), [(signal.SIGTERM, 0), (signal.SIGINT, 130)],
                         ids=["SIGTERM", "SIGINT"])
def test_graceful_signal_leaves_no_process(fleet: Fleet, sig: int, exit_code: int) -> None:
    began = time.monotonic()
    fleet.hangar.send(sig)
    assert fleet.hangar.wait(BUDGET_S) == exit_code
    assert _survivors(fleet, began) == []
    assert port_is_free(fleet.hangar.port)
    assert "Application shutdown complete" in fleet.hangar.stderr()


def test_sigkill_leaves_no_process_and_the_watchdog_exits(fleet: Fleet) -> None:
    began = time.monotonic()
    fleet.hangar.send(signal.SIGKILL)
    assert fleet.hangar.wait(BUDGET_S) == -signal.SIGKILL
    survivors = _survivors(fleet, began)
    assert survivors == []
    assert fleet.reaper in {w.pid for w in fleet.watched}  # the watchdog was counted, and it is gone
    assert port_is_free(fleet.hangar.port)


def test_stopping_a_server_ends_its_grandchild(hangar_cli: StartHangar, write_config: Callable[..., Path]) -> None:
    hangar = hangar_cli(config=write_config({"raw": raw_server("--grandchild"), "other": raw_server()}))
    for server_id in ("raw", "other"):
        assert hangar.client.post(f"/api/mcp_servers/{server_id}/start").status_code == 200
    pids = {s["mcp_server_id"]: s["pid"] for s in json_body(hangar.client.get("/api/mcp_servers"))["mcp_servers"]}
    raw_tree = [psutil.Process(pids["raw"]), *psutil.Process(pids["raw"]).children(recursive=True)]
    assert [p.name() for p in raw_tree[1:]] == ["sleep"]
    raw = watch(raw_tree)
    other = watch([psutil.Process(pids["other"])])
    try:
        began = time.monotonic()
        r = hangar.client.post("/api/mcp_servers/raw/stop")
        assert r.status_code == 200 and json_body(r)["was_running"] is True
        left = wait_all_exited(raw, max(0.0, began + BUDGET_S - time.monotonic()))
        assert [w.describe() for w in left] == []
        assert wait_all_exited(other, 0) == other, "the other server keeps running"
    finally:
        for w in raw + other:
            w.close()


def test_a_child_whose_parent_already_died_gives_up_before_exec(monkeypatch: pytest.MonkeyPatch) -> None:
    # The parent-death signal is only armed if the parent is still alive when the child asks for it;
    # a child forked by a Hangar that died in between must not run on, untracked.
    argv = [sys.executable, "-c", "raise SystemExit(0)"]
    monkeypatch.setattr(reaper, "_owner_pid", os.getpid())
    assert subprocess.run(argv, preexec_fn=reaper.set_parent_death_signal, timeout=10).returncode == 0
    monkeypatch.setattr(reaper, "_owner_pid", os.getpid() + 1)  # "the parent is not the owner any more"
    assert subprocess.run(argv, preexec_fn=reaper.set_parent_death_signal, timeout=10).returncode == 1
