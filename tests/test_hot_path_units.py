"""Small pieces of the hot path keep their contracts: an event's JSON is exactly its dict, and the
serving process settles its boot heap into the collector's permanent generation and collects its young
generation less often."""

from __future__ import annotations

import contextlib
import gc
from typing import Any

import orjson

from mcp_hangar.cli import YOUNG_GC_THRESHOLD, settle_heap
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


def test_settle_heap_freezes_what_boot_built_and_raises_the_young_threshold() -> None:
    before = gc.get_threshold()
    try:
        settle_heap()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == (YOUNG_GC_THRESHOLD, *before[1:])
        # Objects kept alive below the threshold start no collection; past it they do.
        collected: list[int] = []
        gc.callbacks.append(lambda phase, info: collected.append(info["generation"]) if phase == "start" else None)
        try:
            kept: list[list[int]] = [[] for _ in range(YOUNG_GC_THRESHOLD // 2)]
            assert 0 not in collected
            kept += [[] for _ in range(YOUNG_GC_THRESHOLD)]
            assert 0 in collected
        finally:
            gc.callbacks.pop()
        del kept
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def test_a_boot_with_the_collector_off_is_frozen_without_a_collection_and_collects_again() -> None:
    before = gc.get_threshold()
    frozen_before = gc.get_freeze_count()
    collected: list[int] = []
    gc.callbacks.append(lambda phase, info: collected.append(info["generation"]) if phase == "start" else None)
    gc.disable()  # as launch does for `serve`
    try:
        boot_heap = [[i] for i in range(5_000)]
        settle_heap()
        assert collected == []  # the boot heap is frozen, not walked
        assert gc.isenabled() and gc.get_freeze_count() >= frozen_before + len(boot_heap)
        garbage = [[] for _ in range(2 * YOUNG_GC_THRESHOLD)]
        assert 0 in collected  # the collector runs again, at the raised threshold
        del garbage, boot_heap
    finally:
        gc.callbacks.pop()
        gc.enable()
        gc.unfreeze()
        gc.set_threshold(*before)


def test_launch_turns_the_collector_off_for_serve_only(monkeypatch: Any) -> None:
    import sys

    from mcp_hangar import cli, launch

    seen: list[bool] = []
    monkeypatch.setattr(cli, "main", lambda: seen.append(gc.isenabled()))
    try:
        for argv in (["mcp-hangar", "serve", "--http"], ["mcp-hangar", "config", "check", "c.yaml"],
                     ["mcp-hangar", "--version"]):
            gc.enable()
            monkeypatch.setattr(sys, "argv", argv)
            launch.main()
        assert seen == [False, True, True]
    finally:
        gc.enable()


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


def test_insert_rows_writes_every_row_in_order_whatever_the_batch_size(tmp_path: Any) -> None:
    from mcp_hangar.sqlite import connect_wal, insert_rows

    conn = connect_wal(tmp_path / "t.db", "CREATE TABLE t (n INTEGER PRIMARY KEY AUTOINCREMENT, k INTEGER, "
                                          "v TEXT, f REAL);", "test database")
    expected: list[tuple[Any, ...]] = []
    for size in (0, 1, 5, 255, 256, 257, 600):  # every statement size, alone and combined
        rows = [(len(expected) + i, None if i % 7 == 0 else f"v'\"{i}", i / 3) for i in range(size)]
        insert_rows(conn, "INSERT INTO t (k, v, f)", 3, rows)
        expected += rows
    assert conn.execute("SELECT k, v, f FROM t ORDER BY n").fetchall() == expected
    conn.close()


def test_a_stored_event_is_its_dict_with_produced_by() -> None:
    from mcp_hangar.event_log import event_json

    event = ToolInvocationFailed(mcp_server_id="a", tool_name="t", correlation_id="c", duration_ms=2.0,
                                 error_type="E", error_message="é \"q\"", principal=None)
    for produced_by in ("", "host \"x\" é"):
        stored = orjson.loads(event_json(event, produced_by))
        assert stored == {**orjson.loads(orjson.dumps(event.to_dict())), "produced_by": produced_by}
        assert list(stored) == [*event.to_dict(), "produced_by"]


def test_http_headers_are_read_in_one_pass_and_a_repeated_routing_header_is_named() -> None:
    from mcp_hangar.front.http import decode_headers

    headers, duplicated = decode_headers([(b"Host", b"h"), (b"Mcp-Name", b" a "), (b"x-other", b"1"),
                                           (b"x-other", b"2")])
    assert headers == {"host": "h", "mcp-name": "a", "x-other": "2"} and duplicated is None
    _, duplicated = decode_headers([(b"mcp-method", b"tools/call"), (b"MCP-Method", b"tools/list")])
    assert duplicated == "mcp-method"


async def test_a_request_gets_a_disconnect_watcher_only_once_it_runs_long() -> None:
    import asyncio

    from mcp_hangar.front.http import _DisconnectWatch

    watch = _DisconnectWatch()
    gone = asyncio.Event()

    async def receive() -> dict[str, Any]:
        await gone.wait()
        return {"type": "http.disconnect"}

    seen: list[Any] = []

    async def request(hold: asyncio.Event) -> None:
        current = asyncio.current_task()
        assert current is not None
        watched = watch.enter(current, receive)
        seen.append(watched)
        try:
            await hold.wait()
        finally:
            watch.leave(watched)

    quick_hold = asyncio.Event()
    quick = asyncio.create_task(request(quick_hold))
    await asyncio.sleep(0)
    quick_hold.set()
    await quick
    assert seen[0].watcher is None  # answered before anyone watched: no task was started for it
    slow = asyncio.create_task(request(asyncio.Event()))
    gone.set()  # the client leaves at once; the watcher, started later, still sees it
    async with asyncio.timeout(10):
        with contextlib.suppress(asyncio.CancelledError):
            await slow
    assert slow.cancelled() and seen[1].gone
    assert not watch.in_flight


def test_a_typed_listener_hears_only_its_kinds_and_delivery_keeps_registration_order() -> None:
    from mcp_hangar.events import EventBus, GroupDeleted, GroupEvent, McpServerEvent, ToolInvocationRequested

    bus = EventBus()
    heard: list[tuple[str, str]] = []

    def everything(event: Any) -> None:
        heard.append(("all", event.event_type))

    def groups(event: Any) -> None:
        heard.append(("groups", event.event_type))

    bus.add_listener(groups, (GroupEvent,))
    bus.add_listener(everything)
    bus.add_listener(lambda e: heard.append(("servers", e.event_type)), (McpServerEvent,))
    bus.publish(ToolInvocationRequested(mcp_server_id="s", tool_name="t", correlation_id="c"))
    bus.publish(GroupDeleted(group_id="g"))  # a subclass of a declared kind is heard
    assert heard == [("all", "ToolInvocationRequested"), ("servers", "ToolInvocationRequested"),
                     ("groups", "GroupDeleted"), ("all", "GroupDeleted")]
    bus.remove_listener(groups)
    heard.clear()
    bus.publish(GroupDeleted(group_id="g"))
    assert heard == [("all", "GroupDeleted")]
