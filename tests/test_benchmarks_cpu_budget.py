"""``benchmarks.cpu_budget`` never rots: it runs wrk against its three servers and reads every figure."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk (Debian package) is not installed; .ci/run installs it")
@pytest.mark.timeout(150)
def test_cpu_budget_reads_every_process_of_each_server() -> None:
    proc = subprocess.run([sys.executable, "-m", "benchmarks.cpu_budget", "--seconds", "1", "--warmup", "1", "--json"],
                          cwd=ROOT, capture_output=True, text=True, timeout=140)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    rows = {row["server"]: row for row in json.loads(proc.stdout)}
    assert set(rows) == {"hangar", "hangar_rows_discarded", "bare_asgi"}
    for row in rows.values():
        assert row["calls"] > 0 and row["errors"] == 0
        assert all(math.isfinite(v) for v in row.values() if isinstance(v, float))
        assert row["loop_busy"] > 0 and row["loop_user_us_per_call"] > 0 and row["wrk_us_per_call"] > 0
    # Hangar relays every call to its upstream process; the bare endpoint has none and answers itself.
    assert rows["hangar"]["upstream_us_per_call"] > 0 and rows["hangar_rows_discarded"]["upstream_us_per_call"] > 0
    assert rows["bare_asgi"]["upstream_us_per_call"] == 0
