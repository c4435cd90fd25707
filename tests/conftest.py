"""Shared test helpers: fixture server commands, an in-process Hangar, and an in-process REST client."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from mcp_hangar.config import LoadedConfig, parse_config_text
from mcp_hangar.hangar import Hangar
from mcp_hangar.web.app import create_app
from mcp_hangar.web.gateway import Gateway

FIXTURES = Path(__file__).parent / "fixtures"
RAW_SERVER = FIXTURES / "raw_server.py"
SDK_SERVER = FIXTURES / "sdk_server.py"
PYTHON = sys.executable

pytest_plugins = ["store_backends"]  # the event log's backends (SQLite, PostgreSQL) as fixtures


def raw_server(*flags: str, **spec: Any) -> dict[str, Any]:
    """A server spec running the fast stdlib-only fixture server with ``flags``."""
    return {"mode": "subprocess", "command": [PYTHON, str(RAW_SERVER), *flags], **spec}


def sdk_server(*flags: str, **spec: Any) -> dict[str, Any]:
    """A server spec running the fixture server written with the official MCP SDK."""
    return {"mode": "subprocess", "command": [PYTHON, str(SDK_SERVER), *flags], **spec}


def loaded_config(servers: dict[str, dict[str, Any]], extra: dict[str, Any] | None = None) -> LoadedConfig:
    doc = {"mcp_servers": servers, **(extra or {})}
    text = yaml.safe_dump(doc)
    cfg, raw, warnings = parse_config_text(text, "<test>")
    return LoadedConfig(cfg, None, raw, warnings)


HANGAR_CLI = str(Path(sys.executable).parent / "mcp-hangar")


async def stdio_hangar(tmp_path: Path, servers: dict[str, dict[str, Any]],
                       limit: int = 64 * 1024) -> asyncio.subprocess.Process:
    """``mcp-hangar serve`` over stdio on ``servers`` (stdin and stdout piped, stderr dropped); the caller
    stops it."""
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump({"mcp_servers": servers}))
    return await asyncio.create_subprocess_exec(
        HANGAR_CLI, "serve", "-c", str(cfg), "--data-dir", str(tmp_path / "d"), "--log-level", "WARNING",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        limit=limit)


def free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


HangarFactory = Callable[..., Any]


@pytest.fixture
async def hangar_factory(tmp_path: Path) -> AsyncIterator[HangarFactory]:
    """``await factory({"id": spec, ...})`` gives a started Hangar; every one is closed at teardown."""
    made: list[Hangar] = []

    async def make(servers: dict[str, dict[str, Any]], data_dir: Path | None = None,
                   extra: dict[str, Any] | None = None) -> Hangar:
        hangar = Hangar(loaded_config(servers, extra), data_dir or tmp_path / f"data{len(made)}")
        await hangar.start()
        made.append(hangar)
        return hangar

    yield make
    for hangar in made:
        await hangar.aclose()


@pytest.fixture
async def api_factory(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    """``await factory(servers)`` gives ``(hangar, client)``: an httpx client on the in-process app."""
    made: list[tuple[Hangar, httpx.AsyncClient]] = []

    async def make(servers: dict[str, dict[str, Any]], data_dir: Path | None = None,
                   extra: dict[str, Any] | None = None) -> tuple[Hangar, httpx.AsyncClient]:
        hangar = Hangar(loaded_config(servers, extra), data_dir or tmp_path / f"data{len(made)}")
        app = create_app(hangar, manage_lifecycle=False)
        await hangar.start()
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")
        made.append((hangar, client))
        return hangar, client

    yield make
    for hangar, client in made:
        await client.aclose()
        await hangar.aclose()


@pytest.fixture
async def http_factory(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    """``await factory(servers)`` gives ``(hangar, base_url)``: the real app served by uvicorn on a free
    loopback port inside the test's event loop. Stopped (and Hangar closed) at teardown."""
    import asyncio

    import uvicorn

    running: list[tuple[uvicorn.Server, asyncio.Task[None]]] = []

    async def make(servers: dict[str, dict[str, Any]], data_dir: Path | None = None,
                   extra: dict[str, Any] | None = None, loaded: LoadedConfig | None = None) -> tuple[Hangar, str]:
        # ``loaded``: a config read from a file (reload tests); ``servers`` and ``extra`` are then ignored.
        hangar = Hangar(loaded or loaded_config(servers, extra), data_dir or tmp_path / f"http{len(running)}")
        app = Gateway(hangar)  # as `serve --http` runs it: the REST API loads at its first request
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None,
                                               lifespan="on", access_log=False))
        server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign]  # the test owns signals
        task = asyncio.get_running_loop().create_task(server.serve())
        running.append((server, task))
        async with asyncio.timeout(20):
            while not server.started:
                if task.done():
                    task.result()
                await asyncio.sleep(0.01)
        return hangar, f"http://127.0.0.1:{port}"

    yield make
    for server, _ in running:
        server.config.app.state.begin_shutdown()
        server.should_exit = True
    for _, task in running:
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(task, 10)


@pytest.fixture
async def sdk_http_url() -> AsyncIterator[str]:
    """The SDK fixture server over Streamable HTTP on a free loopback port; its /mcp URL."""
    import asyncio
    import subprocess

    port = free_port()
    proc = subprocess.Popen([PYTHON, str(SDK_SERVER), "http", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        async with asyncio.timeout(20), httpx.AsyncClient() as client:
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    await client.get(url)
                    break
                if proc.poll() is not None:
                    raise RuntimeError("the SDK fixture server exited during start-up")
                await asyncio.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def docker_host() -> Iterator[str]:
    """A private Docker engine for the whole session (skipped with a reason where none can run)."""
    from docker_engine import private_engine

    with private_engine() as host:
        yield host


def docker_server(host: str, *flags: str, **spec: Any) -> dict[str, Any]:
    """A docker-mode spec running the stdlib fixture server with the host's Python, in the test image."""
    from docker_engine import HOST_RUNTIME_VOLUMES, IMAGE

    return {"mode": "docker", "image": IMAGE, "command": ["/usr/bin/python3", "/fixtures/raw_server.py", *flags],
            "volumes": list(HOST_RUNTIME_VOLUMES), "docker_host": host, **spec}
