"""A response's head and body leave in one write (``web.coalesce``), over real sockets; nothing is lost,
reordered or left behind."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import httpx
import uvicorn

from conftest import free_port
from mcp_hangar.web.coalesce import HOLD_MAX, CoalescingHttpToolsProtocol, CoalescingTransport


class _Sink(asyncio.Protocol):
    pass


async def _pair() -> tuple[CoalescingTransport, socket.socket, Any]:
    ours, theirs = socket.socketpair()
    theirs.setblocking(False)
    loop = asyncio.get_running_loop()
    transport, _ = await loop.connect_accepted_socket(_Sink, ours)
    return CoalescingTransport(transport, loop), theirs, transport


def _received(peer: socket.socket) -> bytes:
    out = b""
    while True:
        try:
            chunk = peer.recv(1 << 20)
        except BlockingIOError:
            return out
        if not chunk:
            return out
        out += chunk


async def _next_turn() -> None:
    await asyncio.sleep(0)
    await asyncio.sleep(0)


async def test_a_write_is_held_until_the_next_one_and_both_leave_together() -> None:
    wrapped, peer, real = await _pair()
    try:
        wrapped.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
        assert _received(peer) == b""  # held: the head alone never goes out
        assert wrapped.get_write_buffer_size() > 0
        wrapped.write(b"{}")
        assert _received(peer) == b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"  # at once, together
        wrapped.write(b"alone")  # a write with no second one in its turn leaves at the end of the turn
        assert _received(peer) == b""
        await _next_turn()
        assert _received(peer) == b"alone"
    finally:
        real.close()
        peer.close()


async def test_order_is_kept_through_large_writes_writelines_and_close() -> None:
    wrapped, peer, real = await _pair()
    big = b"x" * (HOLD_MAX + 1)
    try:
        wrapped.write(b"a")
        wrapped.write(big)  # the held write goes first, with it
        wrapped.write(b"b")
        wrapped.writelines([b"c", b"d"])  # flushes what is held, then its own
        wrapped.write(big)  # large, nothing held: at once
        wrapped.write(b"e")
        wrapped.close()  # flushes what is held before closing
        got = b""
        async with asyncio.timeout(5):
            while not got.endswith(b"e"):
                got += _received(peer)
                await asyncio.sleep(0.001)
        assert got == b"a" + big + b"bcd" + big + b"e"
    finally:
        real.close()
        peer.close()


async def test_abort_drops_what_is_held() -> None:
    wrapped, peer, real = await _pair()
    try:
        wrapped.write(b"never")
        wrapped.abort()
        await _next_turn()
        assert _received(peer) == b""
        assert real.is_closing()
    finally:
        peer.close()


async def test_the_gateway_served_on_it_answers_mcp_rest_sse_and_keeps_connections_alive(hangar_factory) -> None:
    from conftest import raw_server
    from mcp_hangar.web.gateway import Gateway

    hangar = await hangar_factory({"raw": raw_server()})
    gateway = Gateway(hangar, manage_lifecycle=False)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(gateway, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="on", http=CoalescingHttpToolsProtocol))
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(10):
            while not server.started:
                await asyncio.sleep(0.01)
        headers = {"accept": "application/json, text/event-stream", "mcp-protocol-version": "2026-07-28",
                   "mcp-method": "tools/call", "mcp-name": "raw__echo"}
        meta = {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientCapabilities": {}}
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            for i in range(20):  # one keep-alive connection, many answers
                r = await client.post("/mcp", headers=headers, json={
                    "jsonrpc": "2.0", "id": i, "method": "tools/call",
                    "params": {"name": "raw__echo", "arguments": {"text": f"t{i}"}, "_meta": meta}})
                assert r.status_code == 200 and r.json()["result"]["content"][0]["text"] == f"t{i}"
            assert (await client.get("/health/live")).status_code == 200
            listed = await client.get("/api/mcp_servers")  # the REST app, loaded on first use
            assert listed.status_code == 200 and listed.json()["mcp_servers"][0]["mcp_server_id"] == "raw"
            missing = await client.get("/api/mcp_servers/nope")
            assert missing.status_code == 404 and missing.json()["error"]
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
