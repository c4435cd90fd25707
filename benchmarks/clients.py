"""Benchmark clients: lean raw ones (JSON lines over a pipe; HTTP with keep-alive, httpx) for overhead
figures, and the official ``mcp`` SDK client for realistic ones."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import httpx

MODERN = "2026-07-28"
LEGACY = "2025-06-18"
ACCEPT = "application/json, text/event-stream"
META = {"io.modelcontextprotocol/protocolVersion": MODERN, "io.modelcontextprotocol/clientCapabilities": {}}


def _ok(msg: dict[str, Any]) -> bool:
    result = msg.get("result")
    if not isinstance(result, dict) or result.get("isError"):
        return False
    batch = result.get("structuredContent")  # a hangar_call batch: its one call must have succeeded
    return not isinstance(batch, dict) or "succeeded" not in batch or batch.get("succeeded") == 1


def batch_arguments(server: str, tool: str) -> Callable[[int], dict[str, Any]]:
    """Arguments of a one-call ``hangar_call`` batch (the older implementation's way to reach a tool)."""
    return lambda i: {"calls": [{"mcp_server": server, "tool": tool, "arguments": {"text": f"bench-{i}"}}]}


def echo_arguments(i: int) -> dict[str, Any]:
    return {"text": f"bench-{i}"}


class StdioClient:
    """One MCP client over a child's stdin/stdout: JSON lines, requests multiplexed by id."""

    def __init__(self, argv: list[str], stderr_path: Path, tool: str) -> None:
        self.argv, self.stderr_path, self.tool = argv, stderr_path, tool
        self.proc: asyncio.subprocess.Process | None = None
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._next = 0
        self._reader: asyncio.Task[None] | None = None
        self._stderr: BinaryIO | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def start(self) -> None:
        self._stderr = self.stderr_path.open("wb")
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=self._stderr,
            limit=64 * 1024 * 1024)
        self._reader = asyncio.create_task(self._read())
        init = await self.request("initialize", {"protocolVersion": LEGACY, "capabilities": {},
                                                 "clientInfo": {"name": "bench", "version": "1"}}, timeout=60)
        if "result" not in init:
            raise RuntimeError(f"initialize failed: {init}")
        self._send({"jsonrpc": "2.0", "method": "notifications/initialized"})

    def _send(self, msg: dict[str, Any]) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(msg).encode() + b"\n")

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            msg = json.loads(line)
            rid = msg.get("id")
            if "method" in msg:
                if rid is not None:  # a server-to-client request: refuse it, never leave it hanging
                    self._send({"jsonrpc": "2.0", "id": rid, "error": {"code": -32601, "message": "unsupported"}})
                continue
            future = self._pending.pop(rid, None)
            if future is not None and not future.done():
                future.set_result(msg)
        for future in self._pending.values():
            if not future.done():
                future.set_exception(ConnectionError("child closed its stdout"))

    async def request(self, method: str, params: dict[str, Any], timeout: float = 30) -> dict[str, Any]:
        self._next += 1
        rid = self._next
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[rid] = future
        self._send({"jsonrpc": "2.0", "id": rid, "method": method, "params": params})
        return await asyncio.wait_for(future, timeout)

    async def call(self, i: int) -> bool:
        return _ok(await self.request("tools/call", {"name": self.tool, "arguments": {"text": f"bench-{i}"}}))

    async def close(self) -> None:
        if self.proc is not None:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.terminate()
                try:
                    await asyncio.wait_for(self.proc.wait(), 5)
                except TimeoutError:
                    with contextlib.suppress(ProcessLookupError):
                        self.proc.kill()
                    await self.proc.wait()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        if self._stderr is not None:
            self._stderr.close()


class RoundRobinStdio:
    """Several direct stdio clients taken in turn by call number: the baseline of a round-robin group,
    which pays for waking a different upstream process on every call (a cost no single upstream has)."""

    def __init__(self, clients: list[StdioClient]) -> None:
        self.clients = clients

    async def start(self) -> None:
        for client in self.clients:
            await client.start()

    async def call(self, i: int) -> bool:
        return await self.clients[i % len(self.clients)].call(i)

    async def close(self) -> None:
        for client in self.clients:
            await client.close()


def _parse_body(r: httpx.Response) -> dict[str, Any]:
    if r.headers.get("content-type", "").startswith("text/event-stream"):
        last: dict[str, Any] = {}
        for line in r.text.splitlines():
            if line.startswith("data:"):
                msg = json.loads(line[5:])
                if "id" in msg and "method" not in msg:
                    last = msg
        return last
    parsed: dict[str, Any] = r.json()
    return parsed


class HttpClient:
    """An MCP client over Streamable HTTP with one keep-alive connection pool.

    ``era="modern"``: stateless 2026-07-28 requests (per-request _meta and MCP headers);
    ``era="legacy"``: initialize once, then the Mcp-Session-Id header on every request."""

    def __init__(self, base_url: str, era: str, tool: str,
                 arguments: Callable[[int], dict[str, Any]] = echo_arguments) -> None:
        self.era, self.tool, self.arguments = era, tool, arguments
        self.client = httpx.AsyncClient(base_url=base_url, timeout=30.0, limits=httpx.Limits(
            max_connections=64, max_keepalive_connections=64))
        self.session_id: str | None = None

    async def start(self) -> None:
        if self.era != "legacy":
            return
        r = await self.client.post("/mcp", headers={"accept": ACCEPT}, json={
            "jsonrpc": "2.0", "id": 0, "method": "initialize",
            "params": {"protocolVersion": LEGACY, "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}}})
        r.raise_for_status()
        self.session_id = r.headers["mcp-session-id"]
        headers = {"accept": ACCEPT, "mcp-session-id": self.session_id, "mcp-protocol-version": LEGACY}
        r = await self.client.post("/mcp", headers=headers,
                                   json={"jsonrpc": "2.0", "method": "notifications/initialized"})
        if r.status_code >= 400:
            raise RuntimeError(f"notifications/initialized: HTTP {r.status_code}")

    async def call(self, i: int) -> bool:
        args = self.arguments(i)
        if self.era == "legacy":
            assert self.session_id is not None
            headers = {"accept": ACCEPT, "content-type": "application/json", "mcp-session-id": self.session_id,
                       "mcp-protocol-version": LEGACY}
            body = {"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": {"name": self.tool, "arguments": args}}
        else:
            headers = {"accept": ACCEPT, "content-type": "application/json", "mcp-protocol-version": MODERN,
                       "mcp-method": "tools/call", "mcp-name": self.tool}
            body = {"jsonrpc": "2.0", "id": i, "method": "tools/call",
                    "params": {"name": self.tool, "arguments": args, "_meta": META}}
        r = await self.client.post("/mcp", headers=headers, content=json.dumps(body).encode())
        return r.status_code == 200 and _ok(_parse_body(r))

    async def close(self) -> None:
        await self.client.aclose()


class RawHttpConnection:
    """One keep-alive HTTP/1.1 connection, requests written by hand: a client whose cost per request is
    small and the same whether one request or fifty are in flight (httpx's pool costs more per request
    as more requests share it), so a burst measures the server, not the client."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)

    async def post(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        if self._reader is None or self._writer is None or self._reader.at_eof() or self._writer.is_closing():
            await self.close()  # closed by the server while idle (its keep-alive timeout): a new connection
            await self.open()
        assert self._reader is not None and self._writer is not None
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self._writer.write(f"POST {path} HTTP/1.1\r\nhost: {self.host}:{self.port}\r\n{head}"
                           f"content-length: {len(body)}\r\n\r\n".encode() + body)
        status_line, *lines = (await self._reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        fields = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines if line)}
        if "content-length" in fields:
            data = await self._reader.readexactly(int(fields["content-length"]))
        else:  # chunked
            parts = []
            while size := int((await self._reader.readuntil(b"\r\n")).split(b";")[0], 16):
                parts.append(await self._reader.readexactly(size))
                await self._reader.readexactly(2)
            await self._reader.readexactly(2)
            data = b"".join(parts)
        return int(status_line.split()[1]), data

    async def close(self) -> None:
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


async def raw_modern_call(conn: RawHttpConnection, tool: str, args: dict[str, Any], rid: int) -> bool:
    """One stateless 2026-07-28 ``tools/call`` over a raw connection; whether it succeeded."""
    body = json.dumps({"jsonrpc": "2.0", "id": rid, "method": "tools/call",
                       "params": {"name": tool, "arguments": args, "_meta": META}}).encode()
    status, data = await conn.post("/mcp", {"accept": ACCEPT, "content-type": "application/json",
                                            "mcp-protocol-version": MODERN, "mcp-method": "tools/call",
                                            "mcp-name": tool}, body)
    if status != 200:
        return False
    if data.startswith(b"event:") or data.startswith(b"data:"):
        messages = [json.loads(line[5:]) for line in data.decode().splitlines() if line.startswith("data:")]
        replies = [m for m in messages if "id" in m and "method" not in m]
        return bool(replies) and _ok(replies[-1])
    return _ok(json.loads(data))


class RawHttpClient:
    """Stateless 2026-07-28 ``tools/call`` requests over raw keep-alive connections, one per call in
    flight (a pool that grows to the concurrency): the client whose own cost per call is least, so that
    two servers compared through it differ by their own costs, not by a client's (httpx takes about
    1 ms of its own per call here, more than Hangar's whole server time)."""

    def __init__(self, base_url: str, tool: str, arguments: Callable[[int], dict[str, Any]] = echo_arguments) -> None:
        host, _, port = base_url.removeprefix("http://").partition(":")
        self.host, self.port, self.tool, self.arguments = host, int(port), tool, arguments
        self._idle: list[RawHttpConnection] = []

    async def start(self) -> None:
        return None

    async def call(self, i: int) -> bool:
        conn = self._idle.pop() if self._idle else RawHttpConnection(self.host, self.port)
        try:
            ok = await raw_modern_call(conn, self.tool, self.arguments(i), i)
        except BaseException:
            await conn.close()
            raise
        self._idle.append(conn)
        return ok

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            await conn.close()


class SdkClient:
    """The official ``mcp`` SDK client (``mcp.Client``) over stdio (``argv``) or Streamable HTTP (``url``)."""

    def __init__(self, tool: str, *, argv: list[str] | None = None, url: str | None = None,
                 mode: str = "legacy") -> None:
        self.tool, self.argv, self.url, self.mode = tool, argv, url, mode
        self._stack = contextlib.AsyncExitStack()
        self.client: Any = None

    async def start(self) -> None:
        from mcp import Client, StdioServerParameters

        target: Any = self.url
        if self.argv is not None:
            target = StdioServerParameters(command=self.argv[0], args=self.argv[1:])
        self.client = await self._stack.enter_async_context(Client(target, mode=self.mode))

    async def call(self, i: int) -> bool:
        result = await self.client.call_tool(self.tool, {"text": f"bench-{i}"})
        text = getattr(result.content[0], "text", None) if result.content else None
        return not result.is_error and text == f"bench-{i}"

    async def close(self) -> None:
        await self._stack.aclose()
