"""No container outlives Hangar: SIGTERM stops and removes them; after SIGKILL the watchdog removes them."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from docker_engine import containers

from conftest import docker_server
from e2e.conftest import StartHangar

BUDGET_S = 5.0


def _wait_no_containers(host: str, label: str, timeout: float) -> float:
    began = time.monotonic()
    while containers(host, label):
        if time.monotonic() - began > timeout:
            break
        time.sleep(0.05)
    return time.monotonic() - began


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_no_container_survives_hangar(hangar_cli: StartHangar, write_config: Callable[..., Path],
                                      docker_host: str, sig: int) -> None:
    hangar = hangar_cli(config=write_config({"a": docker_server(docker_host), "b": docker_server(docker_host)}))
    for server_id in ("a", "b"):
        assert hangar.client.post(f"/api/mcp_servers/{server_id}/start").status_code == 200
    label = "label=mcp.hangar.managed=true"
    assert len(containers(docker_host, label)) == 2
    hangar.send(sig)
    hangar.wait(BUDGET_S)
    elapsed = _wait_no_containers(docker_host, label, BUDGET_S)
    assert containers(docker_host, label) == [], f"containers left {elapsed:.2f} s after {signal.Signals(sig).name}"
