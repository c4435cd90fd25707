"""``benchmarks.timeline`` never rots: its probe still finds every point a warm stdio call passes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.timeline import PHASES

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(120)
def test_timeline_times_every_phase_of_each_call() -> None:
    proc = subprocess.run([sys.executable, "-m", "benchmarks.timeline", "--calls", "60", "--rounds", "1", "--json"],
                          cwd=ROOT, capture_output=True, text=True, timeout=100)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    results = json.loads(proc.stdout)
    (row,) = results["rounds"]
    assert row["errors"] == 0 and row["direct_p50_ms"] > 0 and row["hangar_p50_ms"] > 0
    phases = row["phases_us"]
    assert phases["calls_timed"] == 60  # every timed call passed every point, in order
    for label, _, _ in PHASES:
        assert phases[label] > 0, label
    inside = phases["inside Hangar, in all"]
    assert inside >= max(phases[label] for label, _, _ in PHASES[:-1])
