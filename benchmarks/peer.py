"""The older implementation (PyPI ``mcp-hangar==2.34.4``) as a peer, measured in the same run (``--peer``).

It is installed once by pip into its own virtual environment outside the repository, under
``$MCP_HANGAR_BENCH_CACHE`` (default ``~/.cache/mcp-hangar-bench``), and reused by later runs.
Its config raises the command-bus rate limit (10 calls/s with bursts of 20 by default, which would
refuse a benchmark loop) and serves the same fast upstream as ours. Its MCP front is egress-style:
upstream tools are reached through its ``hangar_call`` tool (``calls: [{mcp_server, tool, arguments}]``),
which Hangar offers with the same shape, so both are measured with that call and the same raw client.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from . import procs

VERSION = "2.34.4"
PACKAGE = f"mcp-hangar=={VERSION}"


def cache_dir() -> Path:
    return Path(os.environ.get("MCP_HANGAR_BENCH_CACHE", Path.home() / ".cache" / "mcp-hangar-bench"))


def venv() -> Path:
    return cache_dir() / f"peer-{VERSION}"


def cli() -> Path:
    return venv() / "bin" / "mcp-hangar"


def install() -> dict[str, object]:
    """Create the peer's virtual environment and install it, unless a working one is already there."""
    began = time.perf_counter()
    if cli().exists():
        check = subprocess.run([str(cli()), "--version"], capture_output=True, text=True, timeout=60)
        if check.returncode == 0 and VERSION in check.stdout:
            return {"path": str(venv()), "installed_now": False, "version": check.stdout.strip()}
    venv().parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv())], check=True, timeout=300)
    subprocess.run([str(venv() / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", PACKAGE],
                   check=True, timeout=1200)
    version = subprocess.run([str(cli()), "--version"], capture_output=True, text=True, check=True,
                             timeout=60).stdout.strip()
    return {"path": str(venv()), "installed_now": True, "version": version,
            "install_s": round(time.perf_counter() - began, 1)}


def write_config(path: Path, upstream_argv: list[str]) -> Path:
    """The peer's config: the same fast upstream as ours, the rate limit out of the way, quiet logs."""
    argv = ", ".join(procs.yaml_str(a) for a in upstream_argv)
    path.write_text("mcp_servers:\n"
                    f"  fast: {{mode: subprocess, command: [{argv}]}}\n"
                    "rate_limit: {rps: 1000000, burst: 1000000}\n"
                    "logging: {level: WARNING}\n")
    return path


def argv(config: Path, port: int) -> list[str]:
    return [str(cli()), "serve", "-c", str(config), "--http", "--port", str(port), "--log-level", "WARNING"]


def measure_boot(folder: Path, config: Path, runs: int) -> dict[str, float]:
    """Boot of the peer's ``serve --http`` to its ``/health/ready`` (median of ``runs``) and its idle RSS."""
    boots: list[float] = []
    rss = 0.0
    for i in range(runs):
        port = procs.free_port()
        with procs.http_process(argv(config, port), folder, port, folder / f"peer-boot{i}.log") as (proc, boot_s):
            boots.append(boot_s)
            time.sleep(1.0)
            rss = procs.rss_mib(proc.pid)
    boots.sort()
    return {"boot_to_ready_ms_median": round(boots[len(boots) // 2] * 1000, 1),
            "boot_to_ready_ms_min": round(boots[0] * 1000, 1), "idle_rss_mib": rss, "runs": runs}
