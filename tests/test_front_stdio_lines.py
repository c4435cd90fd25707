"""The stdio front's line splitting: lines across reads, blank lines, lines too large, a real client."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson

from conftest import raw_server, stdio_hangar
from mcp_hangar.front.stdio import _LineReader


async def test_lines_are_split_wherever_the_reads_cut_them() -> None:
    lines: list[bytes] = []
    too_large: list[int] = []
    reader = _LineReader(lines.append, lambda: too_large.append(1), max_line=10)
    for chunk in (b'{"a":1}\n{"b"', b":2}\n\n", b"12345", b"67890\n", b"x\ny\n"):
        reader.data_received(chunk)
    assert lines == [b'{"a":1}', b'{"b":2}', b"", b"1234567890", b"x", b"y"] and not too_large
    reader.data_received(b"unfinished")
    reader.eof_received()
    assert reader.closed.done() and lines[-1] == b"y"  # a last line without its newline is no message


async def test_a_line_too_large_is_dropped_whole_and_said_once() -> None:
    lines: list[bytes] = []
    too_large: list[int] = []
    reader = _LineReader(lines.append, lambda: too_large.append(1), max_line=10)
    reader.data_received(b"0123456789ABC\nok\n")  # within one read
    assert lines == [b"ok"] and len(too_large) == 1
    for chunk in (b"01234", b"56789", b"AB", b"CDEF", b"GH\nnext\n"):  # across reads, skipped until its end
        reader.data_received(chunk)
    assert lines == [b"ok", b"next"] and len(too_large) == 2
    reader.data_received(b"0123456")
    reader.data_received(b"789AB\nlast\n")  # completed past the limit by its final piece
    assert lines == [b"ok", b"next", b"last"] and len(too_large) == 3


async def test_bad_lines_get_a_parse_error_and_the_session_goes_on(tmp_path: Path) -> None:
    proc = await stdio_hangar(tmp_path, {"raw": raw_server()})
    assert proc.stdin is not None and proc.stdout is not None
    try:
        init = {"jsonrpc": "2.0", "id": 0, "method": "initialize",
                "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t"}}}
        call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                "params": {"name": "raw__echo", "arguments": {"text": "after"}}}
        data = orjson.dumps(init) + b"\n\n   \nnot json\n" + orjson.dumps(call)
        proc.stdin.write(data[:7])  # the first line arrives in pieces
        await proc.stdin.drain()
        proc.stdin.write(data[7:] + b"\n")
        await proc.stdin.drain()
        async with asyncio.timeout(30):
            answers = [orjson.loads(await proc.stdout.readline()) for _ in range(3)]
        by_id = {a.get("id"): a for a in answers}
        assert by_id[0]["result"]["protocolVersion"]
        assert by_id[None]["error"]["code"] == -32700 and "not valid JSON" in by_id[None]["error"]["message"]
        assert by_id[1]["result"]["content"][0]["text"] == "after"
        proc.stdin.close()
        async with asyncio.timeout(30):
            assert await proc.wait() == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
