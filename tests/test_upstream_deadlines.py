"""Request timeouts on a stdio upstream share one timer: each request still fails at its own deadline,
in deadline order whatever the order of sending, answered requests never time out, and the upstream is
told to stop working on each request that timed out."""

from __future__ import annotations

import asyncio
import os
import sys

import pytest

from mcp_hangar.errors import UpstreamTimeoutError
from mcp_hangar.upstream.stdio import StdioUpstream

# Answers initialize and "seen" (the ids it was told to cancel); never answers "hang".
SERVER = r"""
import json, sys
cancelled = []
for line in sys.stdin:
    msg = json.loads(line)
    method = msg.get("method")
    if method == "notifications/cancelled":
        cancelled.append(msg["params"]["requestId"])
    elif method == "initialize":
        result = {"protocolVersion": "2025-11-25", "capabilities": {}, "serverInfo": {"name": "t"}}
        print(json.dumps({"jsonrpc": "2.0", "id": msg["id"], "result": result}), flush=True)
    elif method == "seen":
        print(json.dumps({"jsonrpc": "2.0", "id": msg["id"], "result": {"cancelled": cancelled}}), flush=True)
"""


async def test_each_request_times_out_at_its_own_deadline_with_one_shared_timer() -> None:
    upstream = StdioUpstream("t", [sys.executable, "-c", SERVER], env=dict(os.environ), cwd=None,
                             max_message_bytes=1 << 20, reaper=None, on_stderr=lambda _: None, era="legacy")
    await upstream.start(10)
    try:
        failed: list[str] = []

        async def hang(label: str, timeout: float) -> None:
            with pytest.raises(UpstreamTimeoutError, match=f"within {timeout:g} s"):
                await upstream.request("hang", {"label": label}, timeout)
            failed.append(label)

        late = asyncio.create_task(hang("late", 1.5))  # armed first
        await asyncio.sleep(0)
        early = asyncio.create_task(hang("early", 0.3))  # an earlier deadline re-arms the timer
        answered = await upstream.request("seen", {}, 5)  # answered before its deadline: no timeout
        assert answered == {"cancelled": []}
        await early
        assert failed == ["early"] and not late.done()
        await late
        assert failed == ["early", "late"]
        seen = await upstream.request("seen", {}, 5)
        assert len(seen["cancelled"]) == 2  # both hung requests were cancelled upstream
        assert not upstream._pending  # nothing left behind
    finally:
        await upstream.close()
