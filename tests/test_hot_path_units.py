"""Small pieces of the hot path keep their contracts: an event's JSON is exactly its dict, and the
serving process settles its boot heap into the collector's permanent generation."""

from __future__ import annotations

import gc

import orjson

from mcp_hangar.cli import settle_heap
from mcp_hangar.events import McpServerUpdated, ToolInvocationCompleted, ToolInvocationFailed


def test_event_json_is_its_dict_in_order() -> None:
    events = [
        ToolInvocationCompleted(mcp_server_id="a", tool_name="t", correlation_id="c", duration_ms=1.5,
                                result_size_bytes=3, is_error=False, arguments_size_bytes=2, principal=None),
        ToolInvocationFailed(mcp_server_id="a", tool_name="t", correlation_id="c", duration_ms=2.0,
                             error_type="UpstreamTimeoutError", error_message="é \"quoted\"",
                             arguments_size_bytes=0, principal="user:x"),
        McpServerUpdated(mcp_server_id="b", changed_fields=["command", "env"], restart_required=True),
    ]
    for event in events:
        as_json = orjson.loads(event.to_json())
        assert as_json == orjson.loads(orjson.dumps(event.to_dict(), default=str))
        assert list(as_json) == list(event.to_dict())  # same key order: event_type first


def test_settle_heap_freezes_what_boot_built() -> None:
    try:
        settle_heap()
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
