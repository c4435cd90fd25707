"""Helpers for the group tests: member specs, group configs, and who served a call."""

from __future__ import annotations

from collections import Counter
from typing import Any

from conftest import FIXTURES, PYTHON
from lifecycle_helpers import text_of
from mcp_hangar.hangar import Hangar

POOL_SERVER = FIXTURES / "pool_server.py"


def pool_server(*flags: str, **spec: Any) -> dict[str, Any]:
    """A server spec running the raw fixture server with the group flags of ``pool_server.py``
    (``--idempotent``, ``--call-delay S``, ``--refuse-start PATH``) and any raw_server flag."""
    return {"mode": "subprocess", "command": [PYTHON, str(POOL_SERVER), *flags], **spec}


def group(*members: str | dict[str, Any], **settings: Any) -> dict[str, Any]:
    """A ``groups:`` entry; a member is an id or a ``{member_id, weight, priority}`` dict."""
    return {**settings, "members": [{"member_id": m} if isinstance(m, str) else m for m in members]}


async def start_all(hangar: Hangar, *server_ids: str) -> dict[int, str]:
    """Start the servers (sharing any start already running) and map each one's PID to its id."""
    pids: dict[int, str] = {}
    for sid in server_ids:
        server = await hangar.start_server(sid)
        assert server.pid is not None
        pids[server.pid] = sid
    return pids


async def served_by(hangar: Hangar, group_id: str, pids: dict[int, str]) -> str:
    """Call the ``pid`` tool through the group; the member whose process answered."""
    return pids[int(text_of(await hangar.call_tool(group_id, "pid", {})))]


def spread(counts: Counter[str], members: list[str]) -> dict[str, int]:
    return {m: counts.get(m, 0) for m in members}
