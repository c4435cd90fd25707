"""Helpers for the configuration tests: a Hangar started on a real config file, with an in-process REST client."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
import yaml

from mcp_hangar.config import load_config
from mcp_hangar.events import Event
from mcp_hangar.hangar import Hangar
from mcp_hangar.web.app import create_app

NO_WATCH = {"config_reload": {"enabled": False}}


def write_config(path: Path, doc: dict[str, Any] | str) -> None:
    """Write ``doc`` the way an editor does: a new file renamed over the old one."""
    text = doc if isinstance(doc, str) else yaml.safe_dump(doc, sort_keys=False)
    tmp = path.with_name(f".{path.name}.swp")
    tmp.write_text(text, "utf-8")
    os.replace(tmp, path)


async def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    """Poll ``predicate`` on the event loop until it holds or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(0.02)


def pids(hangar: Hangar) -> dict[str, int | None]:
    return {sid: s.pid for sid, s in hangar.servers.items()}


def alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


class Recorder:
    """Every event of the bus from now on, for assertions."""

    def __init__(self, hangar: Hangar) -> None:
        self.events: list[Event] = []
        hangar.bus.add_listener(self.events.append)

    def of(self, name: str) -> list[Event]:
        return [e for e in self.events if e.event_type == name]


FileHangar = Callable[..., Any]


@pytest.fixture
async def file_hangar(tmp_path: Path) -> AsyncIterator[FileHangar]:
    """``await make(doc)`` writes ``doc`` to a config file and gives ``(hangar, client, path)``."""
    made: list[tuple[Hangar, httpx.AsyncClient]] = []

    async def make(doc: dict[str, Any], name: str = "config.yaml",
                   data_dir: Path | None = None) -> tuple[Hangar, httpx.AsyncClient, Path]:
        folder = tmp_path / f"conf{len(made)}"
        folder.mkdir(exist_ok=True)
        path = folder / name
        write_config(path, doc)
        hangar = Hangar(load_config(path), data_dir or tmp_path / f"data{len(made)}")
        app = create_app(hangar, manage_lifecycle=False)
        await hangar.start()
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")
        made.append((hangar, client))
        return hangar, client, path

    yield make
    for hangar, client in made:
        await client.aclose()
        await hangar.aclose()
