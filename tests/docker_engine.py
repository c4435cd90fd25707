"""A real Docker engine for the tests: Debian's dockerd on a private socket, and a test image built
locally with no registry (an empty image; the host's /usr and /lib are bind-mounted read-only, so the
container runs the host's Python)."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

IMAGE = "hangar-test-empty:latest"
FIXTURES = Path(__file__).parent / "fixtures"
HOST_RUNTIME_VOLUMES = ["/usr:/usr:ro", "/lib:/lib:ro", "/lib64:/lib64:ro", f"{FIXTURES}:/fixtures:ro"]


def docker_cli() -> str | None:
    return shutil.which("docker")


def _wait(predicate: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


@contextlib.contextmanager
def private_engine() -> Iterator[str]:
    """Start dockerd on a socket of our own; yields the DOCKER_HOST URL. Stops it by PID at the end."""
    dockerd = shutil.which("dockerd")
    cli = docker_cli()
    if dockerd is None or cli is None:
        pytest.skip("no Docker engine here: install Debian's docker.io (the CI script does)")
    if os.geteuid() != 0:
        pytest.skip("dockerd needs root here")
    root = Path(tempfile.mkdtemp(prefix="hangar-dockerd-", dir="/tmp"))
    sock = root / "docker.sock"
    log = open(root / "dockerd.log", "wb")  # noqa: SIM115 (closed below)
    proc = subprocess.Popen(
        [dockerd, "--host", f"unix://{sock}", "--data-root", str(root / "data"), "--exec-root", str(root / "exec"),
         "--pidfile", str(root / "docker.pid"), "--iptables=false", "--bridge=none", "--ip-masq=false"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    host = f"unix://{sock}"
    env = {**os.environ, "DOCKER_HOST": host}
    try:
        ready = _wait(lambda: proc.poll() is None and subprocess.run(
            [cli, "version"], env=env, capture_output=True).returncode == 0, 60)
        if not ready:
            pytest.skip(f"dockerd did not start here: {(root / 'dockerd.log').read_text()[-500:]}")
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w"):
            pass
        subprocess.run([cli, "import", "-", IMAGE], input=buf.getvalue(), env=env, check=True, capture_output=True)
        yield host
    finally:
        with contextlib.suppress(Exception):
            ids = subprocess.run([cli, "ps", "-aq"], env=env, capture_output=True, text=True, timeout=20).stdout.split()
            if ids:
                subprocess.run([cli, "rm", "-f", *ids], env=env, capture_output=True, timeout=60)
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()
        with contextlib.suppress(OSError):
            subprocess.run(["umount", "-R", str(root / "data")], capture_output=True, timeout=20)
        shutil.rmtree(root, ignore_errors=True)


def containers(host: str, *filters: str) -> list[str]:
    """Names of the containers on the engine (all states), optionally filtered."""
    cli = docker_cli()
    assert cli is not None
    args = [cli, "ps", "-a", "--format", "{{.Names}}"]
    for f in filters:
        args += ["--filter", f]
    out = subprocess.run(args, env={**os.environ, "DOCKER_HOST": host}, capture_output=True, text=True, timeout=20)
    return [n for n in out.stdout.split() if n]
