"""The WebSocket event stream of the real CLI: SIGTERM with open sockets exits promptly, and the latency
from an upstream state change to its WebSocket message (printed)."""

from __future__ import annotations

import base64
import contextlib
import os
import signal
import socket
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from conftest import raw_server

from .conftest import StartHangar
from .harness import HangarProcess

WriteConfig = Callable[..., Path]
STATES = "McpServerStateChanged"


def ws_connect(hangar: HangarProcess) -> ClientConnection:
    return connect(f"ws://127.0.0.1:{hangar.port}/api/ws/events", open_timeout=10, ping_interval=None)


def subscribe(ws: ClientConnection, **fields: Any) -> dict[str, Any]:
    ws.send(orjson.dumps({"type": "subscribe", **fields}).decode())
    while True:
        message = orjson.loads(ws.recv(timeout=10))
        if message.get("type") == "subscribed":
            return message


def wait_for(ws: ClientConnection, predicate: Callable[[dict[str, Any]], bool],
             timeout: float = 15.0) -> tuple[float, dict[str, Any]]:
    """The first message matching ``predicate`` and when it arrived (epoch seconds)."""
    deadline = time.monotonic() + timeout
    while True:
        message = orjson.loads(ws.recv(timeout=max(0.01, deadline - time.monotonic())))
        if predicate(message):
            return time.time(), message


@contextlib.contextmanager
def stalled_socket(port: int) -> Iterator[socket.socket]:
    """A WebSocket client that completes the handshake and never reads again."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    try:
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall((f"GET /api/ws/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                      f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        answer = b""
        while b"\r\n\r\n" not in answer:
            answer += sock.recv(1)
        assert answer.startswith(b"HTTP/1.1 101"), answer
        yield sock
    finally:
        sock.close()


def test_sigterm_with_three_open_websockets_exits_within_5_seconds(hangar_cli: StartHangar,
                                                                   write_config: WriteConfig) -> None:
    hangar = hangar_cli(config=write_config({"s": raw_server()}))
    with ws_connect(hangar) as streaming, ws_connect(hangar) as idle:
        with stalled_socket(hangar.port):
            subscribe(streaming, event_types=[STATES], mcp_server_ids=["s"])
            assert hangar.client.post("/api/mcp_servers/s/start").status_code == 200
            wait_for(streaming, lambda m: m.get("new_state") == "ready")
            began = time.monotonic()
            hangar.send(signal.SIGTERM)
            code = hangar.wait(10)
            elapsed = time.monotonic() - began
        print(f"\nSIGTERM with 3 open WebSockets (one streaming, one idle, one not reading): exit {code} "
              f"in {elapsed:.2f} s")
        assert code == 0
        assert elapsed < 5.0
        for ws in (streaming, idle):
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    ws.recv(timeout=5)
            assert closed.value.rcvd is None or closed.value.rcvd.code in (1001, 1012)


def _summary(values: list[float]) -> str:
    ms = sorted(v * 1000 for v in values)
    p95 = statistics.quantiles(ms, n=20, method="inclusive")[-1]
    return f"p50 {statistics.median(ms):.2f} ms, p95 {p95:.2f} ms, max {ms[-1]:.2f} ms (n={len(ms)})"


def test_latency_from_an_upstream_state_change_to_its_websocket_message(hangar_cli: StartHangar,
                                                                        write_config: WriteConfig) -> None:
    hangar = hangar_cli(config=write_config({"s": raw_server()}))
    with ws_connect(hangar) as ws:
        subscribe(ws, event_types=[STATES], mcp_server_ids=["s"])
        published: list[float] = []  # from the event's own timestamp to its arrival at the client
        crashed: list[float] = []  # from SIGKILL of the upstream process to the arrival of ready -> dead
        for _ in range(15):
            assert hangar.client.post("/api/mcp_servers/s/start").status_code == 200
            arrived, message = wait_for(ws, lambda m: m.get("new_state") == "ready")
            published.append(arrived - message["occurred_at"])
            pid = hangar.client.get("/api/mcp_servers/s").json()["pid"]
            killed = time.time()
            os.kill(pid, signal.SIGKILL)
            arrived, message = wait_for(ws, lambda m: m.get("new_state") == "dead")
            crashed.append(arrived - killed)
            published.append(arrived - message["occurred_at"])
        print(f"\nstate change published -> WebSocket message: {_summary(published)}")
        print(f"upstream killed -> WebSocket message (detection included): {_summary(crashed)}")
        assert statistics.median(published) < 0.1
        assert statistics.median(crashed) < 0.5
