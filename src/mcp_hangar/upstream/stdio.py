"""JSON-RPC over a child process's stdin/stdout: the ``subprocess`` upstream.

The child runs in its own process group with a parent-death signal, and its group is registered with
the reaper, so neither it nor its own children outlive Hangar. stdout carries protocol messages only;
stderr lines go to ``on_stderr``. A message larger than ``max_message_bytes`` fails the request it
answers (its id is read from the message's first bytes) without breaking the connection; a line that
is not JSON breaks the connection, because the stream can no longer be trusted.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import os
import re
import signal
import time
from collections.abc import Callable
from typing import Any

import orjson

from ..errors import (
    McpServerStartError,
    ProbeUnansweredError,
    UpstreamCrashedError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamResponseTooLargeError,
    UpstreamRpcError,
    UpstreamTimeoutError,
)
from ..reaper import Reaper, set_parent_death_signal
from .base import (
    CLIENT_NAME,
    LEGACY_PROTOCOL_VERSION,
    JsonObject,
    NotificationHandler,
    RequestHandler,
    answer_server_request,
)
from .era import MODERN_VERSION, Era, EraChoice, discover_params, is_modern_discover_result, prepare_params

log = logging.getLogger(__name__)

_ID_PREFIX_RE = re.compile(rb'"id"\s*:\s*(-?\d+|"(?:[^"\\]|\\.)*")')
_READ_CHUNK = 256 * 1024
_STDERR_LINE_MAX = 8192  # longer stderr lines keep their first 8 KiB
_DRAIN_S = 0.5  # after the process group is gone, how long the readers may take to read what is left
# Variables an upstream inherits from Hangar's environment unless ``inherit_env`` asks for all.
SAFE_ENV_KEYS = ("PATH", "HOME", "USER", "LOGNAME", "SHELL", "TERM", "LANG", "LANGUAGE", "TZ", "TMPDIR",
                 "SYSTEMROOT", "VIRTUAL_ENV", "PYTHONPATH", "NODE_PATH")


def child_environment(spec_env: dict[str, str], inherit_all: bool) -> dict[str, str]:
    base = dict(os.environ) if inherit_all else {
        k: v for k, v in os.environ.items() if k in SAFE_ENV_KEYS or k.startswith("LC_")
    }
    base.update(spec_env)
    return base


class _Pending:
    __slots__ = ("deadline", "future", "method", "timeout")

    def __init__(self, future: asyncio.Future[JsonObject], method: str, timeout: float, deadline: float) -> None:
        self.future = future
        self.method = method
        self.timeout = timeout
        self.deadline = deadline  # loop time


class _ProcessProtocol(asyncio.subprocess.SubprocessStreamProtocol):
    """The child's protocol: stdout is parsed where the pipe delivers it, with no stream in between and no
    task to wake per read (stdin and stderr stay streams)."""

    def __init__(self, upstream: StdioUpstream, limit: int, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(limit=limit, loop=loop)
        self._upstream = upstream

    def pipe_data_received(self, fd: int, data: bytes | str) -> None:
        if fd == 1:  # pipes deliver bytes
            self._upstream._on_stdout(data.encode() if isinstance(data, str) else data)
        else:
            super().pipe_data_received(fd, data)

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        if fd == 1:
            self._upstream._stdout_ended(None)
        super().pipe_connection_lost(fd, exc)


class StdioUpstream:
    """One upstream process spoken to in JSON lines."""

    def __init__(
        self,
        server_id: str,
        argv: list[str],
        *,
        env: dict[str, str],
        cwd: str | None,
        max_message_bytes: int,
        reaper: Reaper | None,
        on_stderr: Callable[[str], None],
        on_notification: NotificationHandler | None = None,
        on_request: RequestHandler | None = None,
        client_version: str = "0",
        era: EraChoice = "auto",
        client_capabilities: JsonObject | None = None,
    ) -> None:
        self.server_id = server_id
        self._wanted_era: EraChoice = era
        self._client_capabilities = client_capabilities or {}
        self.era: Era | None = None
        self._argv = argv
        self._env = env
        self._cwd = cwd
        self._max = max_message_bytes
        self._reaper = reaper
        self._on_stderr = on_stderr
        self._on_notification = on_notification
        self._on_request = on_request
        self._client_version = client_version
        self._proc: asyncio.subprocess.Process | None = None
        # The loop the process was started in, kept: Python 3.11's get_running_loop() checks the
        # process id with a system call every time, and a request took it twice.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: dict[int, _Pending] = {}
        # Request timeouts share one loop timer, armed at the earliest deadline that may still be pending
        # (one timer per connection instead of an asyncio.timeout, with its timer, per request).
        self._sweep_timer: asyncio.TimerHandle | None = None
        self._sweep_at = math.inf
        self._ids = itertools.count(1)
        self._tasks: list[asyncio.Task[None]] = []
        self._broken: UpstreamError | None = None
        self._closing = False
        self._exit_callback: Callable[[int | None, str], None] | None = None
        self._exit_reported = False
        self._pgid: int | None = None
        self._write_lock = asyncio.Lock()
        self._out: list[bytes] = []  # lines waiting for the end of this loop turn
        # The child's stdin pipe, once started (under uvloop not an asyncio.WriteTransport subclass).
        self._stdin_pipe: Any = None
        # stdout parsing state, kept between the chunks the pipe delivers
        self._line = bytearray()  # the start of a line whose end has not arrived yet
        self._discarding = False  # inside an oversized line
        self._discarded = 0
        self._prefix = b""  # the first bytes of the oversized line (to find its id)
        self._stdout_end: asyncio.Future[UpstreamError | None] | None = None  # None: end of file
        self.protocol_version: str | None = None
        self.server_info: JsonObject = {}
        self.capabilities: JsonObject = {}
        self.instructions: str | None = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def broken(self) -> UpstreamError | None:
        """Why the connection can no longer be used (the process exited, or wrote garbage); else None."""
        return self._broken

    def set_exit_callback(self, callback: Callable[[int | None, str], None]) -> None:
        self._exit_callback = callback

    async def start(self, timeout: float) -> None:
        loop = self._loop = asyncio.get_running_loop()
        self._stdout_end = loop.create_future()
        try:
            transport, protocol = await loop.subprocess_exec(
                lambda: _ProcessProtocol(self, _READ_CHUNK, loop),
                *self._argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=self._env,
                cwd=self._cwd,
                start_new_session=True,
                preexec_fn=set_parent_death_signal,
            )
            self._proc = asyncio.subprocess.Process(transport, protocol, loop)
            self._stdin_pipe = transport.get_pipe_transport(0)
        except FileNotFoundError:
            raise McpServerStartError(f"command not found: {self._argv[0]!r}") from None
        except PermissionError:
            raise McpServerStartError(f"command is not executable: {self._argv[0]!r}") from None
        except OSError as exc:
            raise McpServerStartError(f"cannot start {self._argv[0]!r}: {exc.strerror or exc}") from None
        except (ValueError, UnicodeError) as exc:  # a NUL byte or an unencodable character in argv or env
            raise McpServerStartError(f"cannot start {self._argv[0]!r}: invalid command or environment: {exc}"
                                      ) from None
        self._pgid = self._proc.pid
        if self._reaper is not None:
            self._reaper.track(self._pgid)
        self._tasks = [
            asyncio.create_task(self._watch_stdout(), name=f"{self.server_id}-stdout"),
            asyncio.create_task(self._read_stderr(), name=f"{self.server_id}-stderr"),
        ]
        try:
            await self._handshake(timeout)
        except ProbeUnansweredError:
            await self.close()
            raise
        except UpstreamTimeoutError:
            await self.close()
            raise McpServerStartError(f"no answer to the MCP handshake within {timeout:g} s") from None
        except UpstreamError as exc:
            code = await self.close()
            # A crash error already names the exit code.
            detail = f" (exit code {code})" if code is not None and not isinstance(exc, UpstreamCrashedError) else ""
            raise McpServerStartError(f"MCP handshake failed: {exc.message}{detail}") from None

    async def _handshake(self, timeout: float) -> None:
        """Probe the era once (``server/discover``, else ``initialize``); one era per process."""
        deadline = time.monotonic() + timeout
        if self._wanted_era != "legacy":
            probe_timeout = timeout if self._wanted_era == "modern" else min(timeout, max(3.0, timeout * 0.3))
            try:
                result = await self.request("server/discover", discover_params(self._client_version), probe_timeout)
            except UpstreamRpcError:
                result = {}  # a legacy server: method not found, or the envelope refused
            except UpstreamTimeoutError:
                if self._wanted_era == "modern" or time.monotonic() >= deadline:
                    raise
                raise ProbeUnansweredError("the MCP server did not answer server/discover") from None
            if is_modern_discover_result(result):
                self.era, self.protocol_version = "modern", MODERN_VERSION
                caps, meta = result.get("capabilities"), result.get("_meta")
                self.capabilities = caps if isinstance(caps, dict) else {}
                info = meta.get("io.modelcontextprotocol/serverInfo") if isinstance(meta, dict) else None
                self.server_info = info if isinstance(info, dict) else {}
                instructions = result.get("instructions")
                self.instructions = instructions if isinstance(instructions, str) else None
                return
            if self._wanted_era == "modern":
                raise UpstreamProtocolError("the MCP server does not speak protocol 2026-07-28 (protocol: modern)")
        result = await self.request(
            "initialize",
            {
                "protocolVersion": LEGACY_PROTOCOL_VERSION,
                "capabilities": self._client_capabilities,
                "clientInfo": {"name": CLIENT_NAME, "version": self._client_version},
            },
            max(0.001, deadline - time.monotonic()),
        )
        self.era = "legacy"
        self.protocol_version = str(result.get("protocolVersion") or LEGACY_PROTOCOL_VERSION)
        info, caps = result.get("serverInfo"), result.get("capabilities")
        self.server_info = info if isinstance(info, dict) else {}
        self.capabilities = caps if isinstance(caps, dict) else {}
        instructions = result.get("instructions")
        self.instructions = instructions if isinstance(instructions, str) else None
        await self.notify("notifications/initialized")
        if time.monotonic() > deadline:
            raise UpstreamTimeoutError("handshake took too long")

    async def close(self, grace: float = 1.5) -> int | None:
        """Close stdin, then SIGTERM the group, then SIGKILL it; reap everything in the group."""
        self._closing = True
        proc = self._proc
        if proc is None:
            return None
        if proc.returncode is None and proc.stdin is not None:
            self._flush()  # what was written in this loop turn still leaves
            with contextlib.suppress(Exception):
                proc.stdin.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), grace)
        if proc.returncode is None:
            self._signal_group(signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), grace)
        if proc.returncode is None:
            self._signal_group(signal.SIGKILL)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), grace)
        await self._kill_leftovers()
        self._fail_all(UpstreamCrashedError("the MCP server was stopped"))
        if self._sweep_timer is not None:
            self._sweep_timer.cancel()
            self._sweep_timer, self._sweep_at = None, math.inf
        # Everyone holding the pipes is gone: let the readers take the last lines (a dying server's
        # traceback is the most useful part of its stderr) before they are cancelled.
        if pending := [t for t in self._tasks if not t.done()]:
            await asyncio.wait(pending, timeout=_DRAIN_S)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(BaseException):
                await task
        return proc.returncode

    async def _kill_leftovers(self) -> None:
        """The group may outlive its leader (children it spawned): end them too."""
        pgid = self._pgid
        if pgid is None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if not self._group_alive(pgid):
                break
            self._signal_group(sig)
            for _ in range(20):
                if not self._group_alive(pgid):
                    break
                await asyncio.sleep(0.025)
        if self._reaper is not None:
            self._reaper.untrack(pgid)
        self._pgid = None

    @staticmethod
    def _group_alive(pgid: int) -> bool:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        # Zombies stay in the group until their new parent reaps them, which an init that reaps
        # late (or Hangar running as PID 1) may never do; there is nothing left to signal in them.
        return _group_has_live_member(pgid)

    def _signal_group(self, sig: int) -> None:
        if self._pgid is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._pgid, sig)

    # ------------------------------------------------------------------ messages

    async def _write(self, message: JsonObject) -> None:
        if self._enqueue(message):
            await self._drain()

    def _enqueue(self, message: JsonObject) -> bool:
        """Queue one line for the end of this loop turn; True when the pipe is full enough that the
        writer must wait for it to drain (``_drain``)."""
        proc, loop = self._proc, self._loop  # a process has its loop: start sets it first
        if proc is None or proc.stdin is None or loop is None or self._broken is not None:
            raise self._broken or UpstreamCrashedError("the MCP server is not running")
        # Messages written in one turn of the event loop leave in one write: under concurrency that is
        # one system call (and one wake-up of the upstream) for many requests instead of one each.
        self._out.append(orjson.dumps(message) + b"\n")
        if len(self._out) == 1:
            loop.call_soon(self._flush)
        try:
            return bool(self._stdin_pipe.get_write_buffer_size() > 64 * 1024)
        except (ConnectionError, RuntimeError, AttributeError):
            raise UpstreamCrashedError("the MCP server closed its input") from None

    async def _drain(self) -> None:
        proc = self._proc
        if proc is None or proc.stdin is None:
            raise self._broken or UpstreamCrashedError("the MCP server is not running")
        try:
            self._flush()
            async with self._write_lock:
                await proc.stdin.drain()
        except (ConnectionError, RuntimeError, AttributeError):
            raise UpstreamCrashedError("the MCP server closed its input") from None

    def _flush(self) -> None:
        if not self._out:
            return
        data = self._out[0] if len(self._out) == 1 else b"".join(self._out)
        self._out.clear()
        proc = self._proc
        if proc is None or proc.stdin is None or self._broken is not None:
            return  # the requests fail through _break or close
        try:
            self._stdin_pipe.write(data)  # what the stream writer would do, without its frame
        except (ConnectionError, RuntimeError, AttributeError):
            self._fail_all(UpstreamCrashedError("the MCP server closed its input"))

    async def request(self, method: str, params: JsonObject | None, timeout: float) -> JsonObject:
        if self._broken is not None:
            raise self._broken
        request_id = next(self._ids)
        loop = self._loop or asyncio.get_running_loop()
        future: asyncio.Future[JsonObject] = loop.create_future()
        deadline = loop.time() + timeout
        self._pending[request_id] = _Pending(future, method, timeout, deadline)
        if deadline < self._sweep_at:
            self._arm_sweep(loop, deadline)
        message: JsonObject = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if method != "server/discover":
            params = prepare_params(params, self.era, self._client_version)
        if params is not None:
            message["params"] = params
        try:
            if self._enqueue(message):
                await self._drain()
            return await future  # the sweep fails it with UpstreamTimeoutError at its deadline
        except asyncio.CancelledError:
            self._cancel_upstream(request_id, "cancelled by the client")
            raise
        finally:
            self._pending.pop(request_id, None)

    def _arm_sweep(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        if self._sweep_timer is not None:
            self._sweep_timer.cancel()
        self._sweep_timer = None
        self._sweep_at = when
        if math.isfinite(when):
            self._sweep_timer = loop.call_at(when, self._sweep)

    def _sweep(self) -> None:
        """Fail the requests whose deadline passed; re-arm for the earliest deadline still pending."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        earliest = math.inf
        for request_id, pending in list(self._pending.items()):
            if pending.future.done():
                continue
            if pending.deadline <= now:
                pending.future.set_exception(UpstreamTimeoutError(
                    f"'{pending.method}' got no answer within {pending.timeout:g} s"))
                self._cancel_upstream(request_id, "timeout")
            else:
                earliest = min(earliest, pending.deadline)
        self._sweep_timer = None
        self._sweep_at = math.inf
        if math.isfinite(earliest):
            self._arm_sweep(loop, earliest)

    def _cancel_upstream(self, request_id: int, reason: str) -> None:
        """Tell the upstream to stop working on a request whose answer nobody awaits any more."""
        if self._broken is None and not self._closing:
            task = asyncio.get_running_loop().create_task(
                self.notify("notifications/cancelled", {"requestId": request_id, "reason": reason}))
            task.add_done_callback(lambda t: t.cancelled() or t.exception())

    async def notify(self, method: str, params: JsonObject | None = None) -> None:
        message: JsonObject = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            message["params"] = params
        await self._write(message)

    def _dispatch(self, message: Any) -> None:
        if not isinstance(message, dict):
            raise UpstreamProtocolError("the MCP server wrote a JSON value that is not a JSON-RPC object")
        if "method" in message:
            if "id" in message:
                asyncio.get_running_loop().create_task(self._answer(message))
            elif self._on_notification is not None:
                self._on_notification(message)
            return
        pending = self._pending.get(message.get("id"))  # type: ignore[arg-type]
        if pending is None or pending.future.done():
            return  # a late answer to a request that timed out or was cancelled
        if "error" in message:
            error = message["error"] if isinstance(message["error"], dict) else {"code": -32603}
            text = error.get("message") or "error"
            pending.future.set_exception(UpstreamRpcError(f"upstream error: {text}", error))
        elif isinstance(message.get("result"), dict):
            pending.future.set_result(message["result"])
        else:
            pending.future.set_exception(UpstreamProtocolError("the MCP server sent a response without result"))

    async def _answer(self, message: JsonObject) -> None:
        """Answer a server-to-client request (ping locally; others through ``on_request``)."""
        response = await answer_server_request(message, self._on_request)
        with contextlib.suppress(UpstreamError):
            await self._write(response)

    def _fail_oversized(self, prefix: bytes, size: int) -> None:
        match = _ID_PREFIX_RE.search(prefix)
        error = UpstreamResponseTooLargeError(
            f"the MCP server sent a message of more than {self._max} bytes (max_response_bytes); "
            f"it was discarded"
        )
        if match:
            with contextlib.suppress(orjson.JSONDecodeError):
                pending = self._pending.get(orjson.loads(match.group(1)))
                if pending is not None and not pending.future.done():
                    pending.future.set_exception(error)
                    return
        log.warning("%s: discarded an oversized message (%d bytes) with no known id", self.server_id, size)

    def _not_json(self, line: bytes) -> UpstreamProtocolError:
        shown = line[:200].decode("utf-8", "replace")
        self._on_stderr(f"[hangar] invalid line on stdout: {shown}")
        return UpstreamProtocolError(f"the MCP server wrote something that is not JSON-RPC on stdout: {shown!r}")

    def _on_stdout(self, chunk: bytes) -> None:
        """Split what the pipe delivered into lines and dispatch each (called by the protocol)."""
        end = self._stdout_end
        if end is None or end.done():
            return  # the stream already failed: nothing more is trusted
        buf = self._line
        start = 0
        try:
            while True:
                nl = chunk.find(b"\n", start)
                piece = chunk[start:] if nl < 0 else chunk[start:nl]
                if nl >= 0 and not buf and not self._discarding and len(piece) <= self._max:
                    start = nl + 1  # a whole line inside this chunk: parsed as it is, no buffer copies
                    if piece.strip():
                        try:
                            message = orjson.loads(piece)
                        except orjson.JSONDecodeError:
                            raise self._not_json(piece) from None
                        self._dispatch(message)
                    continue
                if self._discarding:
                    self._discarded += len(piece)
                elif len(buf) + len(piece) > self._max:
                    self._discarding, self._discarded = True, len(buf) + len(piece)
                    self._prefix = bytes((buf + piece)[:4096])
                    buf.clear()
                else:
                    buf += piece
                if nl < 0:
                    return
                start = nl + 1
                if self._discarding:
                    self._fail_oversized(self._prefix, self._discarded)
                    self._discarding, self._discarded = False, 0
                    continue
                line = bytes(buf)
                buf.clear()
                if line.strip():
                    try:
                        message = orjson.loads(line)
                    except orjson.JSONDecodeError:
                        raise self._not_json(line) from None
                    self._dispatch(message)
        except UpstreamProtocolError as exc:
            end.set_result(exc)
        except Exception as exc:  # a reader bug must still fail the calls, never hang them
            log.exception("%s: stdout reader failed", self.server_id)
            end.set_result(UpstreamProtocolError(f"reading from the MCP server failed: {exc}"))

    def _stdout_ended(self, error: UpstreamError | None) -> None:
        end = self._stdout_end
        if end is not None and not end.done():
            end.set_result(error)

    async def _watch_stdout(self) -> None:
        """What follows the end of stdout: a stream that broke kills the process; at end of file the
        connection breaks with the reason the process exited."""
        proc = self._proc
        assert proc is not None and self._stdout_end is not None
        error = await self._stdout_end
        if error is not None:
            self._break(error)
            await self._terminate_broken()
            return
        # End of file: the process closed stdout, normally because it exited.
        code = None
        with contextlib.suppress(TimeoutError):
            code = await asyncio.wait_for(proc.wait(), 1.0)
        detail = f"exit code {code}" if code is not None else "stdout closed"
        more = None if self._closing else await self.explain_exit(code)
        self._break(UpstreamCrashedError(f"the MCP server exited ({detail}){f': {more}' if more else ''}"))

    async def explain_exit(self, code: int | None) -> str | None:
        """More about why the process exited, when a subclass can tell (a container's OOM kill)."""
        return None

    async def _terminate_broken(self) -> None:
        if not self._closing:
            self._signal_group(signal.SIGKILL)

    def _break(self, error: UpstreamError) -> None:
        if self._broken is None:
            self._broken = error
        self._fail_all(error)
        if not self._closing and not self._exit_reported and self._exit_callback is not None:
            self._exit_reported = True
            code = self._proc.returncode if self._proc else None
            self._exit_callback(code, error.message)

    def _fail_all(self, error: UpstreamError) -> None:
        for pending in list(self._pending.values()):
            if not pending.future.done():
                pending.future.set_exception(error)

    async def _read_stderr(self) -> None:
        """Split stderr into lines; a line longer than 8 KiB keeps its start and loses the rest."""
        proc = self._proc
        assert proc is not None and proc.stderr is not None
        stream = proc.stderr
        line = bytearray()
        cut = False  # inside a line already cut at the cap
        while True:
            try:
                chunk = await stream.read(_READ_CHUNK)
            except ConnectionError:
                chunk = b""
            if not chunk:
                if line and not cut:
                    self._emit_stderr(line)
                return
            start = 0
            while start < len(chunk):
                nl = chunk.find(b"\n", start)
                end = len(chunk) if nl < 0 else nl
                if not cut:
                    line += chunk[start:min(end, start + _STDERR_LINE_MAX - len(line))]
                    if len(line) >= _STDERR_LINE_MAX and nl < 0:
                        self._emit_stderr(line)
                        line.clear()
                        cut = True
                if nl < 0:
                    break
                if not cut:
                    self._emit_stderr(line)
                line.clear()
                cut = False
                start = nl + 1

    def _emit_stderr(self, raw: bytes | bytearray) -> None:
        self._on_stderr(bytes(raw).decode("utf-8", "replace").rstrip("\r"))


def _group_has_live_member(pgid: int) -> bool:
    """Whether a process group has a member that is not a zombie (Linux /proc; elsewhere assume so)."""
    try:
        entries = os.scandir("/proc")
    except OSError:
        return True
    with entries:
        for entry in entries:
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/stat", "rb") as f:
                    stat = f.read()
            except OSError:
                continue  # gone meanwhile
            # "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
            fields = stat[stat.rfind(b")") + 2 :].split()
            if len(fields) > 2 and int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
                return True
    return False
