"""Python import time of a real boot: ``mcp-hangar serve --http`` under ``-X importtime`` until ready.

Every module imported before ``/health/ready`` answers is counted (the lazy ones loaded at start-up too),
so the figures say what a boot pays for; the top entries by cumulative and by self time are kept."""

from __future__ import annotations

import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from . import procs

BOOT = "import sys; from mcp_hangar.launch import main; sys.argv[0] = 'mcp-hangar'; main()"


def parse(stderr: str) -> list[dict[str, Any]]:
    """Rows of ``import time: self [us] | cumulative | imported package`` as dicts (microseconds)."""
    rows = []
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        fields = line.removeprefix("import time:").split("|")
        if len(fields) != 3:
            continue
        name = fields[2].rstrip()
        rows.append({"module": name.strip(), "depth": (len(name) - len(name.lstrip())) // 2,
                     "self_us": int(fields[0]), "cumulative_us": int(fields[1])})
    return rows


def measure(top: int = 15) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="hangar-bench-imports-") as tmp:
        folder = Path(tmp)
        port = procs.free_port()
        log = folder / "importtime.txt"
        argv = [procs.PYTHON, "-X", "importtime", "-c", BOOT, "serve", "--http", "--port", str(port),
                "--data-dir", str(folder / "data")]
        began = time.perf_counter()
        with log.open("wb") as err:
            proc = subprocess.Popen(argv, cwd=folder, env=procs.clean_env(folder), stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=err)
        try:
            boot_s = procs.wait_ready(proc, port, began, "mcp-hangar under -X importtime")
        finally:
            procs.stop(proc)
        rows = parse(log.read_text(errors="replace"))
    top_level = [r for r in rows if r["depth"] == 0]
    total_us = sum(r["cumulative_us"] for r in top_level)
    by_cumulative = sorted(rows, key=lambda r: -r["cumulative_us"])[:top]
    by_self = sorted(rows, key=lambda r: -r["self_us"])[:top]
    return {"modules": len(rows), "total_import_ms": round(total_us / 1000, 1),
            "boot_to_ready_under_importtime_ms": round(boot_s * 1000, 1),
            "top_cumulative": by_cumulative, "top_self": by_self,
            "top_level": sorted(top_level, key=lambda r: -r["cumulative_us"])[:top]}
