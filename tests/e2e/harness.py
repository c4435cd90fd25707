"""Run the real ``mcp-hangar`` CLI as a subprocess and watch its process tree.

Everything here stops what it starts by PID. Waiting is event-based where the kernel offers an event
(``Popen.wait``, pidfds); only readiness and processes without a pidfd use a deadline-bounded poll.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

POLL_INTERVAL_S = 0.02
READY_TIMEOUT_S = 20.0


def cli_path() -> str:
    """The venv's ``mcp-hangar`` console script (the one next to the running interpreter)."""
    beside = Path(sys.executable).parent / "mcp-hangar"
    if beside.exists():
        return str(beside)
    found = shutil.which("mcp-hangar")
    if found is None:
        raise RuntimeError("the mcp-hangar console script is not installed (pip install -e '.[test]')")
    return found


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    """The test's environment without any ``MCP_*`` variable, with HOME pointing at ``home``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCP_")}
    env["HOME"] = str(home)
    env.update(extra)
    return env


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``predicate`` until it holds; for conditions with no event to wait on."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(POLL_INTERVAL_S)


def free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def port_is_free(port: int) -> bool:
    """Whether a new listener can take 127.0.0.1:port (TIME_WAIT leftovers do not count)."""
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            s.listen(1)
        except OSError:
            return False
        return True


# --------------------------------------------------------------------------- process trees


@dataclass
class Watched:
    """One process of a tree, pinned by a pidfd so a reused PID can never be mistaken for it."""

    proc: psutil.Process
    pidfd: int | None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def describe(self) -> str:
        try:
            return f"{self.pid} [{self.proc.status()}] {' '.join(self.proc.cmdline())[:160]}"
        except psutil.Error:
            return f"{self.pid} [gone]"

    def close(self) -> None:
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None


def _pidfd(pid: int) -> int | None:
    if not hasattr(os, "pidfd_open"):
        return None
    try:
        return os.pidfd_open(pid)
    except OSError:
        return None


def watch(processes: Sequence[psutil.Process]) -> list[Watched]:
    """Pin each process that is still the one psutil saw (same PID and start time)."""
    watched = []
    for proc in processes:
        fd = _pidfd(proc.pid)
        if not proc.is_running():  # exited, or the PID was reused before the pidfd was taken
            if fd is not None:
                os.close(fd)
            continue
        watched.append(Watched(proc, fd))
    return watched


def has_exited(w: Watched) -> bool:
    """True when the process has terminated.

    A zombie has terminated: it holds no memory, files or sockets, only a PID table entry that its
    current parent (init once Hangar is gone) reaps. A zombie whose parent is this test process would
    be our own leak, so that one counts as alive until we reap it.
    """
    if w.pidfd is not None:
        poller = select.poll()
        poller.register(w.pidfd, select.POLLIN)
        if not poller.poll(0):  # a pidfd turns readable when its process terminates
            return False
    try:
        if not w.proc.is_running():
            return True
        return w.proc.status() == psutil.STATUS_ZOMBIE and w.proc.ppid() != os.getpid()
    except psutil.NoSuchProcess:
        return True


def wait_all_exited(watched: Sequence[Watched], timeout: float) -> list[Watched]:
    """Wait until every process has exited or ``timeout`` passes; return the survivors."""
    deadline = time.monotonic() + timeout
    pending = [w for w in watched if not has_exited(w)]
    while pending:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        fds = [w.pidfd for w in pending if w.pidfd is not None]
        if fds and len(fds) == len(pending):
            poller = select.poll()
            for fd in fds:
                poller.register(fd, select.POLLIN)
            poller.poll(max(1, int(left * 1000)))  # wakes when any of them exits
        else:  # no pidfd support: fall back to polling
            time.sleep(POLL_INTERVAL_S)
        pending = [w for w in pending if not has_exited(w)]
    return pending


def kill_survivors(watched: Sequence[Watched]) -> None:
    """SIGKILL every watched process that is still running (by PID, identity checked by psutil)."""
    for w in watched:
        if not has_exited(w):
            with contextlib.suppress(psutil.Error):
                w.proc.kill()


# --------------------------------------------------------------------------- the CLI as a process


@dataclass
class HangarProcess:
    """One running ``mcp-hangar serve --http``; ``client`` talks to it over loopback."""

    proc: subprocess.Popen[bytes]
    port: int
    log_dir: Path
    client: httpx.Client
    known: dict[int, psutil.Process] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stderr(self) -> str:
        return (self.log_dir / "stderr.log").read_text("utf-8", "replace")

    def stdout(self) -> str:
        return (self.log_dir / "stdout.log").read_text("utf-8", "replace")

    def tree(self) -> list[psutil.Process]:
        """Every descendant now (remembered, so teardown can kill them even after Hangar is gone)."""
        children = psutil.Process(self.pid).children(recursive=True)
        for child in children:
            self.known.setdefault(child.pid, child)
        return children

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        """Poll /health/ready until 200; fail at once if the process exits."""
        deadline = time.monotonic() + timeout
        while True:
            code = self.proc.poll()
            if code is not None:
                raise RuntimeError(f"mcp-hangar exited with {code} before it was ready:\n{self.stderr()}")
            with contextlib.suppress(httpx.TransportError):
                if self.client.get("/health/ready", timeout=2.0).status_code == 200 and self._answers_as_us():
                    return
            if time.monotonic() >= deadline:
                raise TimeoutError(f"mcp-hangar was not ready within {timeout:g} s:\n{self.stderr()}")
            time.sleep(POLL_INTERVAL_S)

    def _answers_as_us(self) -> bool:
        # Another server (on this machine, say another test run) may have taken the port first.
        r = self.client.get("/api/system", timeout=2.0)
        return r.status_code == 200 and r.json().get("system", {}).get("pid") == self.pid

    def send(self, sig: int) -> None:
        if self.proc.poll() is None:
            os.kill(self.pid, sig)

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after a grace period; then kill any descendant left behind."""
        self.client.close()
        if self.proc.poll() is None:
            with contextlib.suppress(psutil.Error):
                self.tree()
            watched = watch(list(self.known.values()))
            try:
                self.send(signal.SIGTERM)
                try:
                    self.proc.wait(8)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(5)
                wait_all_exited(watched, 3.0)
                kill_survivors(watched)
            finally:
                for w in watched:
                    w.close()
        else:
            watched = watch(list(self.known.values()))
            kill_survivors(watched)
            for w in watched:
                w.close()


def start_hangar(
    tmp: Path,
    *args: str,
    config: Path | None = None,
    data_dir: Path | None = None,
    cwd: Path | None = None,
    home: Path | None = None,
    env: dict[str, str] | None = None,
    port: int | None = None,
    ready: bool = True,
) -> HangarProcess:
    """Start ``mcp-hangar serve --http`` on a free loopback port and (by default) wait until ready.

    A port found free can be taken by someone else before Hangar binds it; then, when the port was
    picked here, Hangar exits 2 at once and the start is retried on another port.
    """
    for _ in range(2 if port is None else 0):
        try:
            return _start(tmp, args, config, data_dir, cwd, home, env, free_port(), ready)
        except PortTaken:
            continue
    return _start(tmp, args, config, data_dir, cwd, home, env, port or free_port(), ready)


class PortTaken(RuntimeError):
    """Hangar could not listen on the port it was given."""


def _start(tmp: Path, args: tuple[str, ...], config: Path | None, data_dir: Path | None, cwd: Path | None,
           home: Path | None, env: dict[str, str] | None, port: int, ready: bool) -> HangarProcess:
    log_dir = tmp / f"hangar-{port}"
    log_dir.mkdir(parents=True, exist_ok=True)
    argv = [cli_path(), "serve", "--http", "--host", "127.0.0.1", "--port", str(port),
            "--data-dir", str(data_dir or tmp / "data")]
    if config is not None:
        argv += ["-c", str(config)]
    argv += list(args)
    environment = clean_env(home or tmp)
    environment.update(env or {})
    with (log_dir / "stdout.log").open("wb") as out, (log_dir / "stderr.log").open("wb") as err:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                cwd=cwd or tmp, env=environment)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30.0)
    hangar = HangarProcess(proc, port, log_dir, client)
    if ready:
        try:
            hangar.wait_ready()
        except BaseException:
            hangar.stop()
            if hangar.proc.returncode == 2 and f"cannot listen on 127.0.0.1:{port}" in hangar.stderr():
                raise PortTaken(port) from None
            raise
    return hangar


def run_cli(*args: str, cwd: Path, home: Path, env: dict[str, str] | None = None,
            timeout: float = 20.0) -> subprocess.CompletedProcess[str]:
    """Run ``mcp-hangar ARGS`` to completion; a run that outlives ``timeout`` is killed by PID."""
    environment = clean_env(home)
    environment.update(env or {})
    proc = subprocess.Popen([cli_path(), *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=cwd, env=environment, text=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def json_body(response: httpx.Response) -> Any:
    assert response.headers.get("content-type", "").startswith("application/json"), response.text
    return response.json()


class StdioHangar:
    """``mcp-hangar serve`` on the stdio front, asked one JSON-RPC request at a time."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc

    def ask(self, request_id: int, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """Send one request and return the next line Hangar writes (the answer: nothing else is pending)."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        line = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}
        self.proc.stdin.write(json.dumps(line).encode() + b"\n")
        self.proc.stdin.flush()
        answer: dict[str, Any] = json.loads(self.proc.stdout.readline())
        return answer


@contextlib.contextmanager
def stdio_hangar(config: Path, tmp: Path) -> Iterator[StdioHangar]:
    """Run the CLI on ``config`` over stdio (data and HOME in ``tmp``); on exit close its stdin, which
    ends it, and kill it by PID if it has not exited within 15 s."""
    proc = subprocess.Popen([cli_path(), "serve", "-c", str(config), "--data-dir", str(tmp / "d")],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            env=clean_env(tmp), cwd=tmp)
    try:
        yield StdioHangar(proc)
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
