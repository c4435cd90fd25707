"""Config reload time of the real CLI: 100 servers in the file, one of them changed.

    .venv/bin/python benchmarks/reload.py [--servers 100] [--running 20] [--runs 5] [--json]

Each run edits the file (one launch-relevant change: the server's ``env``, so it is restarted when
running) and measures:

- ``api``: ``POST /api/config/reload`` round trip, and the ``duration_ms`` Hangar reports (validate the
  whole file, diff 100 servers, apply: stop and start the changed one);
- ``watcher``: the file written (renamed over, as editors do) until the change is visible through REST
  (``GET /api/mcp_servers/<id>``), with the file watcher on.

``--running`` servers are started first, the changed one among them, so the figure includes a restart.
Medians of ``--runs`` runs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import yaml

CLI = str(Path(sys.executable).parent / "mcp-hangar")
FAST_SERVER = Path(__file__).parent / "fast_server.py"


def _free_port() -> int:
    with contextlib.closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _doc(servers: int, generation: int, changed: str, watch: bool) -> dict[str, Any]:
    fleet = {f"s{i:03d}": {"mode": "subprocess", "command": [sys.executable, str(FAST_SERVER)],
                           "env": {"GEN": str(generation if f"s{i:03d}" == changed else 0)}}
             for i in range(servers)}
    return {"mcp_servers": fleet, "config_reload": {"enabled": watch}}


def _write(path: Path, doc: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(yaml.safe_dump(doc, sort_keys=False), "utf-8")
    os.replace(tmp, path)


@contextlib.contextmanager
def _hangar(folder: Path, config: Path) -> Iterator[httpx.Client]:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCP_")}
    with (folder / "hangar.log").open("ab") as log:
        proc = subprocess.Popen([CLI, "serve", "--http", "--port", str(port), "-c", str(config),
                                 "--data-dir", str(folder / "data"), "--log-level", "WARNING"],
                                stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60)
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.TransportError):
                if client.get("/health/ready").status_code == 200:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Hangar did not start: see {folder / 'hangar.log'}")
            time.sleep(0.02)
        yield client
    finally:
        client.close()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _start(client: httpx.Client, count: int) -> None:
    for i in range(count):
        client.post(f"/api/mcp_servers/s{i:03d}/start").raise_for_status()


def measure_api(servers: int, running: int, runs: int) -> dict[str, float]:
    changed = "s000"
    with tempfile.TemporaryDirectory(prefix="hangar-reload-") as scratch:
        folder = Path(scratch)
        config = folder / "config.yaml"
        _write(config, _doc(servers, 0, changed, watch=False))
        with _hangar(folder, config) as client:
            _start(client, running)
            trips, reported = [], []
            for run in range(1, runs + 1):
                _write(config, _doc(servers, run, changed, watch=False))
                began = time.perf_counter()
                r = client.post("/api/config/reload")
                trips.append((time.perf_counter() - began) * 1000)
                r.raise_for_status()
                result = r.json()["result"]
                assert result["mcp_servers_updated"] == [changed], result
                assert len(result["mcp_servers_unchanged"]) == servers - 1
                reported.append(result["duration_ms"])
    return {"round_trip_ms": round(statistics.median(trips), 1), "reported_ms": round(statistics.median(reported), 1)}


def measure_watcher(servers: int, running: int, runs: int) -> dict[str, float]:
    changed = "s000"
    with tempfile.TemporaryDirectory(prefix="hangar-watch-") as scratch:
        folder = Path(scratch)
        config = folder / "config.yaml"
        _write(config, _doc(servers, 0, changed, watch=True))
        with _hangar(folder, config) as client:
            _start(client, running)
            latencies = []
            for run in range(1, runs + 1):
                _write(config, _doc(servers, run, changed, watch=True))
                began = time.perf_counter()
                deadline = time.monotonic() + 30
                while client.get(f"/api/mcp_servers/{changed}").json()["spec"]["env"].get("GEN") != str(run):
                    if time.monotonic() > deadline:
                        raise RuntimeError("the watcher did not apply the change within 30 s")
                    time.sleep(0.01)
                latencies.append((time.perf_counter() - began) * 1000)
    return {"applied_ms": round(statistics.median(latencies), 1), "max_ms": round(max(latencies), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--servers", type=int, default=100)
    parser.add_argument("--running", type=int, default=20)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = {"servers": args.servers, "running": args.running, "runs": args.runs,
              "api": measure_api(args.servers, args.running, args.runs),
              "watcher": measure_watcher(args.servers, args.running, args.runs)}
    if args.json:
        print(json.dumps(result))
        return
    print(f"reload of {args.servers} servers ({args.running} running), one changed, median of {args.runs}:")
    print(f"  POST /api/config/reload: {result['api']['round_trip_ms']} ms round trip, "
          f"{result['api']['reported_ms']} ms reported by Hangar")
    print(f"  file watcher: change visible after {result['watcher']['applied_ms']} ms "
          f"(slowest {result['watcher']['max_ms']} ms)")


if __name__ == "__main__":
    main()
