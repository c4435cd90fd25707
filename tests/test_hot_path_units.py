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


def test_param_header_check_agrees_with_the_sdk_on_every_case() -> None:
    from mcp_hangar.front.inbound import param_header_rejection, sdk

    annotated = {"type": "object", "properties": {
        "region": {"type": "string", "x-mcp-header": "Region"}, "n": {"type": "integer", "x-mcp-header": "N"},
        "free": {"type": "string"}}}
    plain = {"type": "object", "properties": {"region": {"type": "string"}}}
    invalid = {"type": "object", "properties": {"o": {"type": "object", "x-mcp-header": "O"}}}
    cases = [
        (annotated, {"region": "eu", "n": 3}, {"mcp-param-region": "eu", "mcp-param-n": "3"}),
        (annotated, {"region": "eu", "n": 3}, {"mcp-param-region": "us", "mcp-param-n": "3"}),
        (annotated, {"region": "eu"}, {}),
        (annotated, {}, {"mcp-param-region": "eu"}),
        (plain, {"region": "eu"}, {"mcp-param-region": "us"}),
        (plain, {}, {}),
        (invalid, {"o": {}}, {"mcp-param-o": "x"}),
        (None, {}, {"mcp-param-x": "1"}),
    ]
    module = sdk()
    for _ in range(2):  # the second pass answers from the cache
        for schema, arguments, headers in cases:
            ours = param_header_rejection(schema, arguments, headers)
            theirs = module.validate_mcp_param_headers(schema, arguments, headers)
            assert (ours is None) == (theirs is None), (schema, arguments, headers)
            if theirs is not None:
                assert (ours.code, ours.message) == (theirs.code, theirs.message)
    assert param_header_rejection(annotated, {"region": "eu"}, {}) is not None  # the check still bites
