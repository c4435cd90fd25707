"""The benchmark harness never rots: a --quick run produces numbers for every scenario (no timing asserted)."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
LATENCY_SCENARIOS = {"direct_stdio", "hangar_stdio", "direct_stdio_rr", "hangar_stdio_group", "bare_asgi",
                     "hangar_http_modern", "hangar_http_legacy", "hangar_http_group", "sdk_direct", "sdk_hangar_stdio",
                     "sdk_hangar_http"}


def _positive(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


@pytest.fixture(scope="module")
def quick_results(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    out = tmp_path_factory.mktemp("bench") / "results"
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "run", "--quick", "--out", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    files = list(out.glob("*.json"))
    assert len(files) == 1
    return json.loads(files[0].read_text()), out


@pytest.mark.timeout(300)
def test_quick_run_measures_every_latency_cell(quick_results: tuple[dict[str, Any], Path]) -> None:
    results, out = quick_results
    cells = {(c["scenario"], c["concurrency"]): c for c in results["summary"]}
    assert set(cells) == {(s, c) for s in LATENCY_SCENARIOS for c in (1, 8, 32)}  # no peer without --peer
    for cell in cells.values():
        assert cell["calls"] == 100 and cell["errors"] == 0
        for key in ("p50_ms", "p90_ms", "p99_ms", "throughput_per_s"):
            assert _positive(cell[key])
        assert len(results["samples_ms"][f"{cell['scenario']}@{cell['concurrency']}"]) == 100
    assert {(r["front"], r["concurrency"]) for r in results["ratios"]} == {
        (s, c) for s, base in results["baselines"].items() if base and s in LATENCY_SCENARIOS for c in (1, 8, 32)}
    assert results["environment"]["python"] and "peer" not in results
    section = (out / "summary.md").read_text()
    assert "<!-- benchmarks:start -->" in section and "| cold start" in section
    if results.get("chart_file"):
        assert (out / Path(results["chart_file"]).name).stat().st_size > 0


@pytest.mark.timeout(300)
def test_quick_run_measures_throughput_boot_memory_and_fleet(quick_results: tuple[dict[str, Any], Path]) -> None:
    results, _ = quick_results
    ins = results["instructions"]
    if shutil.which("valgrind"):
        assert "skipped" not in ins, ins.get("skipped")  # installed, so it must count
        assert ins["calls"] == 40 and ins["hangar"]["errors"] == 0 and ins["bare"]["errors"] == 0
        assert _positive(ins["ratio"]) and _positive(ins["loop_ratio"])
        # Hangar relays each call to an upstream and records it; the bare endpoint answers it itself.
        assert (ins["hangar"]["instructions_per_call"] > ins["hangar"]["main_thread_per_call"]
                > ins["bare"]["instructions_per_call"])
        stdio = ins["stdio"]
        assert stdio["errors"] == 0 and stdio["instructions_per_call"] > stdio["main_thread_per_call"] > 0
    else:
        assert "valgrind" in ins["skipped"]
    for name in ("bare_asgi", "hangar_http_modern"):
        assert results["throughput"][name]["calls"] > 0 and results["throughput"][name]["errors"] == 0
        if shutil.which("wrk"):
            assert results["throughput_wrk"][name]["calls"] > 0
    if shutil.which("wrk"):  # the same front, through a server whose max_concurrency (10) binds
        limited = results["throughput_wrk"]["hangar_http_modern_default_limit"]
        assert limited["calls"] > 0 and limited["errors"] == 0
    assert _positive(results["boot"]["boot_to_ready_ms_median"]) and _positive(results["boot"]["idle_rss_mib"])
    assert results["imports"]["modules"] > 0 and results["imports"]["top_cumulative"]
    growth = results["growth"]
    assert growth["calls"] == 2000 and growth["errors"] == 0 and _positive(growth["rss_after_mib"])
    assert len(growth["rss_steps_mib"]) == 5
    cold = results["fleet"]["cold_start"]
    assert cold["ok"] == cold["concurrent_calls"] == 10 and cold["lone_ok"]
    assert cold["spawns_counted_by_process"] == 1 and cold["spawns_counted_by_hangar"] == 1  # one spawn
    many = results["fleet"]["many_servers"]
    assert many["listed"] == many["servers"] and _positive(many["rss_cold_mib"]) and _positive(many["rss_running_mib"])
    assert _positive(many["list_servers"]["p50_ms"])
    catalogue = results["fleet"]["catalogue"]
    assert catalogue["listed_tools"] >= catalogue["upstream_tools"] and _positive(catalogue["full_list"]["p50_ms"])
    assert _positive(catalogue["full_list_httpx"]["p50_ms"])
