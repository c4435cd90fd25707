"""The stdio front's output: answers written in one loop turn leave together, a client that does not read
holds Hangar back without losing or tearing a line, and answers still leave after stdin closes."""

from __future__ import annotations

import asyncio
import fcntl
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import orjson
import yaml

from conftest import raw_server, stdio_hangar

HANGAR = str(Path(sys.executable).parent / "mcp-hangar")
INIT = {"jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t"}}}


async def _hangar(tmp_path: Path) -> asyncio.subprocess.Process:
    return await stdio_hangar(tmp_path, {"raw": raw_server()}, limit=4 * 1024 * 1024)


async def _stop(proc: asyncio.subprocess.Process) -> int:
    try:
        return await asyncio.wait_for(proc.wait(), 15)
    except TimeoutError:
        proc.kill()
        return await proc.wait()


def _call(i: int, tool: str, arguments: dict[str, object]) -> bytes:
    return orjson.dumps({"jsonrpc": "2.0", "id": i, "method": "tools/call",
                         "params": {"name": tool, "arguments": arguments}}) + b"\n"


def _available(fd: int) -> int:
    return struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0]


def test_a_client_that_reads_late_gets_every_answer_whole(tmp_path: Path) -> None:
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump({"mcp_servers": {"raw": raw_server()}}))
    proc = subprocess.Popen([HANGAR, "serve", "-c", str(cfg), "--data-dir", str(tmp_path / "d"), "--log-level",
                             "WARNING"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdin is not None and proc.stdout is not None
    size, count = 256 * 1024, 40  # 10 MiB of answers: far more than a pipe and the queue limit hold
    try:
        proc.stdin.write(orjson.dumps(INIT) + b"\n" + b"".join(_call(i, "raw__big", {"bytes": size})
                                                               for i in range(1, count + 1)))
        proc.stdin.flush()
        # Wait until the pipe is full (its level stays put): from then on Hangar must hold its answers back.
        deadline, level, steady = time.monotonic() + 60, -1, 0
        while steady < 20:
            assert time.monotonic() < deadline, "Hangar never filled its stdout"
            now = _available(proc.stdout.fileno())
            steady = steady + 1 if now == level and now >= 32 * 1024 else 0
            level = now
            time.sleep(0.01)
        answers = [orjson.loads(proc.stdout.readline()) for _ in range(count + 1)]
        by_id = {a["id"]: a for a in answers}
        assert set(by_id) == set(range(count + 1))
        for i in range(1, count + 1):
            assert by_id[i]["result"]["content"][0]["text"] == "x" * size
        proc.stdin.write(_call(99, "raw__echo", {"text": "still served"}))
        proc.stdin.flush()
        last = orjson.loads(proc.stdout.readline())
        assert last["id"] == 99 and last["result"]["content"][0]["text"] == "still served"
    finally:
        proc.stdin.close()
        try:
            assert proc.wait(15) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


async def test_answers_leave_after_stdin_closes(tmp_path: Path) -> None:
    proc = await _hangar(tmp_path)
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(orjson.dumps(INIT) + b"\n" + b"".join(_call(i, "raw__echo", {"text": f"t{i}"})
                                                           for i in range(1, 21)))
    proc.stdin.close()  # at once: the answers are produced after end of input
    out = await asyncio.wait_for(proc.stdout.read(), 60)
    assert await _stop(proc) == 0
    answers = [orjson.loads(line) for line in out.splitlines()]
    texts = {a["id"]: a["result"]["content"][0]["text"] for a in answers if a["id"]}
    assert texts == {i: f"t{i}" for i in range(1, 21)}
