"""Processes of a benchmark run: start them on loopback, wait for readiness, measure them, stop them by PID."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx
import psutil

PYTHON = sys.executable
CLI = str(Path(PYTHON).parent / "mcp-hangar")
READY_TIMEOUT_S = 120.0


def free_port() -> int:
    with contextlib.closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


FAST_SERVER = Path(__file__).resolve().parent / "fast_server.py"
# The fast upstream's ``max_concurrency``: as many calls at once as a scenario sends (32). At the default (10)
# Hangar holds 22 of every 32 calls in its queue, a policy the bare endpoint has no counterpart of, and the
# upstream then gets its requests in batches of at most 10: measured, that alone costs 15-20% of the event
# loop's CPU per call under wrk. The harness also measures the throughput at the default (``fast_default``).
FAST_LIMIT = 32


def fast_config(folder: Path, prefix: Sequence[str] = ()) -> Path:
    """A config file in ``folder`` with one server, ``fast``: the fast upstream in the legacy era
    (``prefix`` runs before its command: ``taskset -c 0`` pins it)."""
    cfg = folder / "config.yaml"
    command = ", ".join(yaml_str(part) for part in [*prefix, PYTHON, str(FAST_SERVER)])
    cfg.write_text("mcp_servers:\n  fast:\n    mode: subprocess\n"
                   f"    command: [{command}]\n"
                   f"    protocol: legacy\n    max_concurrency: {FAST_LIMIT}\n")
    return cfg


def compile_bytecode() -> None:
    """Write the bytecode of Hangar's sources, as an installed package has it, so that a boot reads .pyc
    files instead of compiling: with PYTHONDONTWRITEBYTECODE set (as on some machines) every boot would
    otherwise compile each file changed since bytecode was last written."""
    import compileall

    import mcp_hangar

    compileall.compile_dir(str(Path(mcp_hangar.__file__).parent), quiet=1)


def clean_env(folder: Path) -> dict[str, str]:
    """The caller's environment without MCP_* settings, HOME in ``folder`` (no user config in reach)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("MCP_")} | {"HOME": str(folder)}


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop one process this harness started, by its PID: SIGTERM, then SIGKILL after 10 s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_ready(proc: subprocess.Popen[bytes], port: int, began: float, what: str,
               path: str = "/health/ready") -> float:
    """Poll ``path`` until it answers 200 (readiness has no event to wait on); seconds since ``began``."""
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5.0) as client:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{what} exited with {proc.returncode}")
            with contextlib.suppress(httpx.TransportError):
                if client.get(path).status_code == 200:
                    return time.perf_counter() - began
            if time.perf_counter() - began > READY_TIMEOUT_S:
                raise TimeoutError(f"{what} did not become ready")
            time.sleep(0.005)


@contextlib.contextmanager
def http_process(argv: list[str], folder: Path, port: int, log: Path,
                 env: dict[str, str] | None = None) -> Iterator[tuple[subprocess.Popen[bytes], float]]:
    """Start an HTTP server process and wait for /health/ready; yields it and its boot time (s)."""
    began = time.perf_counter()
    with log.open("wb") as err:
        proc = subprocess.Popen(argv, cwd=folder, env=env or clean_env(folder), stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=err)
    try:
        boot_s = wait_ready(proc, port, began, f"{argv[0]} (log {log})")
        yield proc, boot_s
    finally:
        stop(proc)


def hangar_http(folder: Path, config: Path | None, name: str,
                port: int | None = None) -> contextlib.AbstractContextManager[tuple[subprocess.Popen[bytes], float]]:
    """``mcp-hangar serve --http`` with ``config`` (None: the embedded default), data under ``folder``."""
    port = port or free_port()
    argv = [CLI, "serve", "--http", "--port", str(port), "--data-dir", str(folder / f"data-{name}"),
            "--log-level", "WARNING"]
    if config is not None:
        argv += ["-c", str(config)]
    return http_process(argv, folder, port, folder / f"{name}.log")


def port_of(proc: subprocess.Popen[bytes]) -> int:
    """The port given to a process started by :func:`hangar_http`."""
    argv = list(proc.args)  # type: ignore[arg-type]
    return int(argv[argv.index("--port") + 1])


def settle(pid: int, quiet_s: float = 0.3, deadline_s: float = 20.0) -> float:
    """Wait until ``pid`` has used (nearly) no CPU for ``quiet_s`` (its background writers have drained
    what the calls left them); returns the seconds waited. Polls: a process's idleness has no event."""
    proc = psutil.Process(pid)
    began = time.perf_counter()

    def used() -> float:
        t = proc.cpu_times()
        return float(t.user + t.system)

    last = used()
    while time.perf_counter() - began < deadline_s:
        time.sleep(quiet_s)
        now = used()
        if now - last < quiet_s * 0.05:  # under 5% of one CPU
            break
        last = now
    return time.perf_counter() - began


def rss_mib(pid: int) -> float:
    return round(psutil.Process(pid).memory_info().rss / 2**20, 1)


def children_rss_mib(pid: int) -> float:
    return round(sum(c.memory_info().rss for c in psutil.Process(pid).children(recursive=True)) / 2**20, 1)


def yaml_str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'
