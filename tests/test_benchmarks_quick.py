"""The benchmark harness never rots: a --quick run produces numbers for every scenario (no timing asserted)."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(300)
def test_quick_run_produces_every_scenario(tmp_path: Path) -> None:
    out = tmp_path / "results"
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "run", "--quick", "--out", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    files = list(out.glob("*.json"))
    assert len(files) == 1
    results = json.loads(files[0].read_text())
    scenarios = {"direct_stdio", "hangar_stdio", "bare_asgi", "hangar_http_modern", "hangar_http_legacy"}
    cells = {(c["scenario"], c["concurrency"]): c for c in results["summary"]}
    assert set(cells) == {(s, c) for s in scenarios for c in (1, 8, 32)}
    for cell in cells.values():
        assert cell["calls"] == 100 and cell["errors"] == 0
        for key in ("p50_ms", "p90_ms", "p99_ms", "throughput_per_s"):
            assert isinstance(cell[key], float) and math.isfinite(cell[key]) and cell[key] > 0
        assert len(results["samples_ms"][f"{cell['scenario']}@{cell['concurrency']}"]) == 100
    for name in ("bare_asgi", "hangar_http_modern"):
        assert results["throughput"][name]["calls"] > 0
        if shutil.which("wrk"):
            assert results["throughput_wrk"][name]["calls"] > 0
    assert results["boot"]["boot_to_ready_ms_median"] > 0 and results["boot"]["idle_rss_mib"] > 0
    assert results["hangar_http_rss_idle_mib"] > 0
    assert results["environment"]["python"] and results["ratios"]
    assert "<!-- benchmarks:start -->" in (out / "summary.md").read_text()
