"""Fixtures that start the real ``mcp-hangar serve --http`` and always stop it by PID at teardown."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from .harness import HangarProcess, start_hangar

StartHangar = Callable[..., HangarProcess]


@pytest.fixture
def hangar_cli(tmp_path: Path) -> Iterator[StartHangar]:
    """``hangar_cli(*extra_args, config=..., data_dir=..., cwd=..., home=..., env=...)`` starts the CLI
    (cwd and HOME default to ``tmp_path``, every ``MCP_*`` variable removed) and waits for
    /health/ready; every process it started, and every descendant seen, is stopped at teardown."""
    started: list[HangarProcess] = []

    def start(*args: str, **kwargs: Any) -> HangarProcess:
        hangar = start_hangar(tmp_path, *args, **kwargs)
        started.append(hangar)
        return hangar

    yield start
    for hangar in reversed(started):
        hangar.stop()


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[..., Path]:
    """``write_config(servers, name="config.yaml", folder=tmp_path, **sections)`` writes a YAML file."""

    def write(servers: dict[str, dict[str, Any]], name: str = "hangar.yaml", folder: Path | None = None,
              **sections: Any) -> Path:
        path = (folder or tmp_path) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump({"mcp_servers": servers, **sections}, sort_keys=False), "utf-8")
        return path

    return write
