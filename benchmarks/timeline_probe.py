"""Run ``mcp-hangar`` with timestamps at the points a warm stdio call passes (``benchmarks.timeline``).

    python benchmarks/timeline_probe.py OUT.json -- serve -c CONFIG ...

Recording starts at SIGUSR1 and stops at SIGUSR2; as Hangar exits (its stdin closed), one object per
recorded call is written to ``OUT.json`` (``time.perf_counter_ns`` at each point). The hooks wrap
Hangar's own functions in place: a wrapper adds about a microsecond per call of its own, so compare
the phases, not the total with an unprobed run.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

from mcp_hangar.front import session, stdio
from mcp_hangar.upstream import stdio as upstream_stdio

now = time.perf_counter_ns
calls: list[dict[str, int]] = []
current: dict[str, int] = {}
recording = False


def _mark(point: str) -> None:
    if recording:
        current[point] = now()


def _around(cls: type, name: str, before: Callable[[Any], str | None], after: str | None = None) -> None:
    """Mark ``before(self)`` (a point name, or None for no mark) at entry, ``after`` at return."""
    original = getattr(cls, name)

    def wrapper(self: Any, *args: Any) -> Any:
        point = before(self) if recording else None
        if point:
            current[point] = now()
        result = original(self, *args)
        if after and recording and point:
            current[after] = now()
        return result

    setattr(cls, name, wrapper)


def _install() -> None:
    _around(stdio._LineReader, "data_received", lambda self: "line_read")
    _around(upstream_stdio.StdioUpstream, "_flush", lambda self: "upstream_write" if self._out else None,
            "upstream_written")

    original_pipe = upstream_stdio._ProcessProtocol.pipe_data_received

    def pipe_data_received(self: Any, fd: int, data: bytes) -> None:
        if fd == 1:
            _mark("answer_read")
        original_pipe(self, fd, data)

    upstream_stdio._ProcessProtocol.pipe_data_received = pipe_data_received  # type: ignore[method-assign]

    original_request = upstream_stdio.StdioUpstream.request

    async def request(self: Any, *args: Any) -> Any:
        _mark("upstream_request")
        return await original_request(self, *args)

    upstream_stdio.StdioUpstream.request = request  # type: ignore[method-assign]

    original_handle = session.FrontSession.handle

    async def handle(self: Any, *args: Any, **kwargs: Any) -> Any:
        _mark("handle")
        result = await original_handle(self, *args, **kwargs)
        _mark("handled")
        return result

    session.FrontSession.handle = handle  # type: ignore[method-assign]

    original_flush = stdio._StdoutWriter._flush

    def flush(self: Any) -> None:
        writing = recording and bool(self._chunks)
        if writing:
            current["client_write"] = now()
        original_flush(self)
        if writing:
            current["client_written"] = now()
            calls.append(dict(current))
            current.clear()

    stdio._StdoutWriter._flush = flush  # type: ignore[method-assign]


def main() -> None:
    out, rest = sys.argv[1], sys.argv[sys.argv.index("--") + 1:]

    def start(*_: Any) -> None:
        global recording
        current.clear()
        recording = True

    def stop(*_: Any) -> None:
        global recording
        recording = False

    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)
    _install()
    from mcp_hangar.launch import main as hangar_main

    sys.argv = ["mcp-hangar", *rest]
    try:
        hangar_main()
    finally:
        with open(out, "w") as f:
            json.dump(calls, f)


if __name__ == "__main__":
    main()
