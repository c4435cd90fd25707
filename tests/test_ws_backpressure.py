"""Back-pressure on /api/ws/events: a client that never reads holds at most its bounded queue in Hangar's
memory, and another client keeps getting every event on time. Prints the measured figures."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import socket
import statistics
import time
import tracemalloc
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import orjson

from mcp_hangar.events import HealthCheckPassed
from mcp_hangar.web.app import create_app
from ws_helpers import EventClient, open_stream, serve_app

QUEUE = 1024
BATCH = 100


@contextlib.asynccontextmanager
async def stalled_client(base: str) -> AsyncIterator[socket.socket]:
    """A WebSocket client that subscribes to everything and then never reads (tiny receive buffer)."""
    loop = asyncio.get_running_loop()
    parts = urlsplit(base)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    try:
        await loop.sock_connect(sock, (parts.hostname, parts.port))
        key = base64.b64encode(os.urandom(16)).decode()
        await loop.sock_sendall(sock, (
            f"GET /api/ws/events HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        answer = b""
        async with asyncio.timeout(10):
            while b"\r\n\r\n" not in answer:
                answer += await loop.sock_recv(sock, 1)  # byte by byte: read nothing beyond the handshake
        assert answer.startswith(b"HTTP/1.1 101"), answer
        payload = orjson.dumps({"type": "subscribe", "event_types": ["HealthCheckPassed"]})
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        await loop.sock_sendall(sock, bytes([0x81, 0x80 | len(payload)]) + mask + masked)
        yield sock
    finally:
        sock.close()


async def run_batches(hangar, fast: EventClient, start: int, batches: int) -> list[float]:
    """Publish ``batches`` batches of events; the fast client's delay for the last event of each (s)."""
    delays = []
    n = start
    for _ in range(batches):
        for _ in range(BATCH):
            hangar.bus.publish(HealthCheckPassed(mcp_server_id="s", duration_ms=float(n)))
            n += 1
        published = time.perf_counter()
        await fast.until(lambda m, last=n - 1: m.get("duration_ms") == last)
        delays.append(time.perf_counter() - published)
    return delays


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else values[0]


async def fill(hangar, fast: EventClient, slow, start: int) -> int:
    """Publish until the stalled client's queue is full and dropping; return the next event number."""
    n = start
    while not slow.outbox.dropped:
        await run_batches(hangar, fast, n, 10)
        n += 10 * BATCH
    return n


@contextlib.asynccontextmanager
async def stalled_connection(app, base: str) -> AsyncIterator[object]:
    """A stalled client, and its connection inside Hangar once it has subscribed."""
    stream = app.state.events
    existing = set(stream.connections)
    async with stalled_client(base):
        async with asyncio.timeout(10):
            while not (stream.connections - existing) or not (stream.connections - existing).pop().subscribed.is_set():
                await asyncio.sleep(0.01)  # nothing to wait on from outside the server's connection
        yield (stream.connections - existing).pop()


async def test_a_client_that_never_reads_is_bounded_and_does_not_delay_another(hangar_factory) -> None:
    hangar = await hangar_factory({})
    app = create_app(hangar, manage_lifecycle=False)
    async with serve_app(app) as base:
        fast = await open_stream(base)
        await fast.subscribe(event_types=["HealthCheckPassed"])
        fast.keep = False
        await run_batches(hangar, fast, 0, 10)  # warm-up

        # Delay of the fast client, alone and beside a stalled client whose queue is full.
        alone = await run_batches(hangar, fast, 10_000, 100)
        async with stalled_connection(app, base) as slow:
            n = await fill(hangar, fast, slow, 100_000)
            with_slow = await run_batches(hangar, fast, n, 100)
            queued, dropped = len(slow.outbox.items), slow.outbox.dropped

        # Hangar's heap for one stalled client, and its growth while the client misses 20 000 more events.
        tracemalloc.start()
        try:
            await hangar.event_log.flush()  # its batch buffer would blur the comparison
            before = tracemalloc.take_snapshot()
            async with stalled_connection(app, base) as slow:
                n = await fill(hangar, fast, slow, 1_000_000)
                await run_batches(hangar, fast, n, 10)
                await hangar.event_log.flush()
                after_fill = tracemalloc.take_snapshot()
                await run_batches(hangar, fast, n + 10 * BATCH, 200)
                await hangar.event_log.flush()
                after_more = tracemalloc.take_snapshot()
        finally:
            tracemalloc.stop()
        filled = _diff_kib(after_fill, before)
        growth = _diff_kib(after_more, after_fill)
        print(f"\nfast client delay per batch of {BATCH} events: alone p50 {pct(alone, 50) * 1000:.2f} ms "
              f"p95 {pct(alone, 95) * 1000:.2f} ms; beside a stalled client p50 {pct(with_slow, 50) * 1000:.2f} ms "
              f"p95 {pct(with_slow, 95) * 1000:.2f} ms")
        print(f"stalled client: queue {queued}/{QUEUE}, {dropped} dropped; Hangar heap held for it "
              f"{filled:.0f} KiB; growth over 20 000 more events {growth:.0f} KiB")
        assert queued == QUEUE and dropped > 0
        # Proportional growth would be ~20 000 x 200 B = 4 MB; what remains is allocator noise.
        assert growth < 1024, "memory grew with the number of events a stalled client missed"
        assert filled < 2048
        assert pct(with_slow, 50) < pct(alone, 50) * 3 + 0.02
        assert not any(m.get("type") == "dropped" for _, m in fast.received)  # the fast client lost nothing
        await fast.close()


def _diff_kib(after: tracemalloc.Snapshot, before: tracemalloc.Snapshot) -> float:
    """Heap growth of the server side (the test's client and tracemalloc's own records left out)."""
    keep = [tracemalloc.Filter(False, "*/tests/*"), tracemalloc.Filter(False, tracemalloc.__file__)]
    diff = after.filter_traces(keep).compare_to(before.filter_traces(keep), "filename")
    return sum(d.size_diff for d in diff) / 1024


async def test_shutdown_closes_a_stalled_client_with_full_buffers_promptly(hangar_factory) -> None:
    hangar = await hangar_factory({})
    app = create_app(hangar, manage_lifecycle=False)
    async with serve_app(app) as base:
        fast = await open_stream(base)
        await fast.subscribe(event_types=["HealthCheckPassed"])
        fast.keep = False
        async with stalled_connection(app, base) as slow:
            await fill(hangar, fast, slow, 0)
            began = time.monotonic()
            app.state.begin_shutdown()
            async with asyncio.timeout(5):
                while app.state.events.connections:
                    await asyncio.sleep(0.01)  # no event to wait on from outside the connections
            elapsed = time.monotonic() - began
        print(f"\nstalled client with full buffers closed {elapsed:.2f} s after the shutdown began")
        assert elapsed < 2.0
