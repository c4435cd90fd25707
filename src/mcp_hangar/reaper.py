"""A tiny watchdog process that kills every upstream process group if Hangar dies, even by SIGKILL.

The kernel's parent-death signal only reaches direct children; an upstream's own children (a shell
pipeline, a Node wrapper) would survive. So Hangar starts one watchdog per run and tells it, over a
pipe, which process groups it owns. When the pipe reaches end-of-file, because Hangar exited in any
way, the watchdog terminates the groups still registered and exits. It imports nothing but ``os``,
``signal`` and ``time`` and starts in a few milliseconds.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Callable

# Runs as `python -S -c REAPER_CODE`; reads "+PGID" / "-PGID" lines, and "c<hex of a NUL-separated argv>" /
# "u<same>" lines registering commands to run after the groups are gone (removing containers).
REAPER_CODE = r"""
import os, signal, time
signal.signal(signal.SIGINT, signal.SIG_IGN)
signal.signal(signal.SIGTERM, signal.SIG_IGN)
groups = set()
commands = set()
buf = b""
while True:
    try:
        chunk = os.read(0, 4096)
    except InterruptedError:
        continue
    except OSError:
        chunk = b""
    if not chunk:
        break
    buf += chunk
    *lines, buf = buf.split(b"\n")
    for line in lines:
        if line[:1] == b"+":
            groups.add(int(line[1:]))
        elif line[:1] == b"-":
            groups.discard(int(line[1:]))
        elif line[:1] == b"c":
            commands.add(line[1:])
        elif line[:1] == b"u":
            commands.discard(line[1:])
def alive(g):
    try:
        os.killpg(g, 0)
    except OSError:
        return False
    # killpg also reaches zombies, which an init that reaps slowly keeps around: on Linux, look for
    # a member that is still running.
    try:
        names = os.listdir("/proc")
    except OSError:
        return True
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open("/proc/" + name + "/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2:].split()
        if len(fields) > 2 and fields[2] == str(g).encode() and fields[0] not in (b"Z", b"X"):
            return True
    return False
for sig in (signal.SIGTERM, signal.SIGKILL):
    for g in list(groups):
        try:
            os.killpg(g, sig)
        except OSError:
            groups.discard(g)
    deadline = time.monotonic() + 1.0
    while groups and time.monotonic() < deadline:
        groups = {g for g in groups if alive(g)}
        if groups:
            time.sleep(0.05)
for command in commands:
    argv = [a.decode() for a in bytes.fromhex(command.decode()).split(b"\0")]
    try:
        os.spawnv(os.P_WAIT, argv[0], argv)
    except OSError:
        pass
"""


class Reaper:
    """Owns the watchdog process. ``track``/``untrack`` are cheap pipe writes."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        global _owner_pid
        if self._proc is not None:
            return
        _owner_pid = os.getpid()
        self._proc = subprocess.Popen(
            [sys.executable, "-S", "-c", REAPER_CODE],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # a Ctrl-C to Hangar's group must not reach it
            close_fds=True,
        )

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def _send(self, line: str) -> None:
        if self._proc is None or self._proc.stdin is None:
            return
        with contextlib.suppress(OSError, ValueError):
            self._proc.stdin.write(line.encode() + b"\n")
            self._proc.stdin.flush()

    def on_death(self, argv: list[str], register: bool = True) -> None:
        """Run ``argv`` (an absolute path first) if Hangar dies before ``on_death(argv, False)``."""
        self._send(("c" if register else "u") + "\0".join(argv).encode().hex())

    def track(self, pgid: int) -> None:
        self._send(f"+{pgid}")

    def untrack(self, pgid: int) -> None:
        self._send(f"-{pgid}")

    def stop(self) -> None:
        """Close the pipe: the watchdog kills whatever is still tracked, then exits."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        with contextlib.suppress(OSError, ValueError):
            if proc.stdin:
                proc.stdin.close()
        try:
            proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def set_parent_death_signal() -> None:
    """Ask the kernel to SIGKILL this process when its parent thread exits (Linux only).

    Runs in the child between fork and exec. If Hangar died before the request took effect, no
    signal will ever come (and the reaper may not know this group yet), so the child gives up.
    """
    if _PRCTL is not None:
        _PRCTL(1, 9)  # PR_SET_PDEATHSIG, SIGKILL
    if _owner_pid is not None and os.getppid() != _owner_pid:
        os._exit(1)


# The process that started the reaper and spawns the upstreams (set by ``Reaper.start``).
_owner_pid: int | None = None


def _load_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        prctl: Callable[..., int] = libc.prctl
        return prctl
    except (OSError, AttributeError):
        return None


_PRCTL: Callable[..., int] | None = _load_prctl()
