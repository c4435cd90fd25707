"""Nothing leaks: process groups, the stdin close -> SIGTERM -> SIGKILL ladder, grandchildren, shutdown, kill -9."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml

from conftest import PYTHON, raw_server
from lifecycle_helpers import gone, wait_until
from mcp_hangar.errors import UpstreamCrashedError
from mcp_hangar.hangar import Hangar
from mcp_hangar.models import State
from mcp_hangar.upstream.stdio import StdioUpstream, child_environment

# A minimal MCP server that outlives the close of its stdin, and with --ignore-term also SIGTERM.
STUBBORN_SERVER = r"""
import json, signal, sys, time
if "--ignore-term" in sys.argv:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
for line in sys.stdin:
    msg = json.loads(line)
    if msg.get("method") == "initialize":
        result = {"protocolVersion": "2025-11-25", "capabilities": {}, "serverInfo": {"name": "stubborn"}}
        print(json.dumps({"jsonrpc": "2.0", "id": msg["id"], "result": result}), flush=True)
while True:
    time.sleep(60)
"""

# Runs a Hangar with one --grandchild server, prints "<server pid> <grandchild pid> <reaper pid>", then waits.
HANGAR_SCRIPT = r"""
import asyncio, re, sys
from pathlib import Path
from mcp_hangar.config import LoadedConfig, parse_config_text
from mcp_hangar.hangar import Hangar
from mcp_hangar.models import State

async def main():
    cfg, raw, warnings = parse_config_text(sys.argv[1], "<test>")
    hangar = Hangar(LoadedConfig(cfg, None, raw, warnings), Path(sys.argv[2]))
    await hangar.start()
    server = await hangar.start_server("s")
    while not any(line.content.startswith("grandchild ") for line in server.logs):
        await asyncio.sleep(0.01)
    grandchild = next(line.content.split()[1] for line in server.logs if line.content.startswith("grandchild "))
    print(server.pid, grandchild, hangar.reaper.pid, flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""

GRANDCHILD_RE = re.compile(r"^grandchild (\d+)$")


async def grandchild_of(hangar: Hangar, server_id: str) -> int:
    """The PID the --grandchild fixture reports on stderr (captured in the server's logs)."""
    logs = hangar.get(server_id).logs
    await wait_until(lambda: any(GRANDCHILD_RE.match(line.content) for line in logs), 3, "the grandchild's PID")
    match = next(m for line in logs if (m := GRANDCHILD_RE.match(line.content)))
    return int(match.group(1))


def stubborn(*flags: str) -> StdioUpstream:
    return StdioUpstream(
        "stubborn",
        [PYTHON, "-c", STUBBORN_SERVER, *flags],
        env=child_environment({}, inherit_all=False),
        cwd=None,
        max_message_bytes=1 << 20,
        reaper=None,
        on_stderr=lambda _line: None,
        era="legacy",  # it answers only initialize and tools/list
    )


# ---------------------------------------------------------------- process groups


async def test_each_server_runs_in_its_own_process_group_and_session(hangar_factory) -> None:
    hangar = await hangar_factory({"a": raw_server(), "b": raw_server()})
    await hangar.start_server("a")
    await hangar.start_server("b")
    pids = [hangar.get("a").pid, hangar.get("b").pid]
    for pid in pids:
        assert pid is not None
        assert os.getpgid(pid) == pid != os.getpgrp()
        assert os.getsid(pid) == pid
    assert pids[0] != pids[1]


async def test_stop_ends_the_grandchild_too(hangar_factory) -> None:
    hangar = await hangar_factory({"s": raw_server("--grandchild")})
    await hangar.start_server("s")
    pid = hangar.get("s").pid
    grandchild = await grandchild_of(hangar, "s")
    assert pid is not None and os.getpgid(grandchild) == pid
    began = time.monotonic()
    await hangar.stop_server("s")
    assert gone(pid)
    assert gone(grandchild)
    # Not slowed down by a killed grandchild that its new parent has not reaped yet (a zombie).
    assert time.monotonic() - began < 0.5


async def test_a_crash_reaps_the_grandchild_without_a_stop(hangar_factory) -> None:
    hangar = await hangar_factory({"s": raw_server("--grandchild")})
    await hangar.start_server("s")
    grandchild = await grandchild_of(hangar, "s")
    with pytest.raises(UpstreamCrashedError):
        await hangar.call_tool("s", "crash")
    await wait_until(lambda: gone(grandchild), 3, "the crashed server's grandchild to be killed")


async def test_a_stop_right_after_a_crash_waits_for_the_group_to_be_reaped(hangar_factory) -> None:
    hangar = await hangar_factory({"s": raw_server("--grandchild")})
    await hangar.start_server("s")
    grandchild = await grandchild_of(hangar, "s")
    with pytest.raises(UpstreamCrashedError):
        await hangar.call_tool("s", "crash")
    await hangar.stop_server("s")
    assert gone(grandchild)
    assert hangar.get("s").state == State.DEAD  # a stop does not hide why it died


# ---------------------------------------------------------------- the stop ladder


async def test_close_sends_sigterm_to_a_server_that_ignores_stdin_close() -> None:
    upstream = stubborn()
    try:
        await upstream.start(5)
        pid = upstream.pid
        assert pid is not None
    finally:
        code = await upstream.close(grace=0.3)
    assert code == -signal.SIGTERM
    assert gone(pid)


async def test_close_sends_sigkill_to_a_server_that_ignores_sigterm() -> None:
    upstream = stubborn("--ignore-term")
    try:
        await upstream.start(5)
        pid = upstream.pid
        assert pid is not None
    finally:
        code = await upstream.close(grace=0.3)
    assert code == -signal.SIGKILL
    assert gone(pid)


# ---------------------------------------------------------------- shutdown


async def test_aclose_leaves_no_process_behind(hangar_factory) -> None:
    hangar = await hangar_factory(
        {
            "plain": raw_server(),
            "family": raw_server("--grandchild"),
            "busy": raw_server(),
            "cold": raw_server(),
        }
    )
    for sid in ("plain", "family", "busy"):
        await hangar.start_server(sid)
    grandchild = await grandchild_of(hangar, "family")
    hanging = asyncio.create_task(hangar.call_tool("busy", "hang"))
    await wait_until(lambda: hangar.get("busy").in_flight == 1, 2, "the hanging call to be in flight")
    # Hangar's own tree: the reaper and each server with its descendants (other fixtures of the session,
    # such as a private dockerd, are children of pytest too and are not Hangar's).
    servers = [psutil.Process(hangar.get(s).pid) for s in ("plain", "family", "busy")]
    roots = [psutil.Process(hangar.reaper.pid), *servers]
    pids = {p.pid for root in roots for p in (root, *root.children(recursive=True))}
    assert grandchild in pids and hangar.reaper.pid in pids
    assert {hangar.get(s).pid for s in ("plain", "family", "busy")} <= pids
    await hangar.aclose()
    with pytest.raises(UpstreamCrashedError):
        await asyncio.wait_for(hanging, 1)
    assert [pid for pid in pids if not gone(pid)] == []


async def test_killing_hangar_with_sigkill_leaves_no_process_behind(tmp_path: Path) -> None:
    config = yaml.safe_dump({"mcp_servers": {"s": raw_server("--grandchild")}})
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        HANGAR_SCRIPT,
        config,
        str(tmp_path / "data"),
        stdout=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 10)
        server, grandchild, reaper = (int(x) for x in line.split())
        assert not gone(server) and not gone(grandchild) and not gone(reaper)
    finally:
        proc.kill()
        await proc.wait()
    await wait_until(lambda: gone(server) and gone(grandchild) and gone(reaper), 5, "every process to end")
