"""Python entry points as a discovery source: packages declare servers in the ``mcp_hangar.servers`` group.

Each entry point names an object that is a server spec dict (the config file's keys plus optional
``name`` and ``group``), a list of them, or a callable returning either. The entry point's name is the
server id unless the spec has a ``name``.
"""

from __future__ import annotations

import asyncio
from importlib.metadata import entry_points
from typing import Any

from pydantic import BaseModel, ConfigDict

from .base import Discovered, discovered_from_dict, fingerprint

DEFAULT_GROUP = "mcp_hangar.servers"


class EntrypointSourceConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    group: str = DEFAULT_GROUP


class EntrypointSource:
    """Reads the installed distributions' entry points on every scan (installs show up without a restart)."""

    source_type = "entrypoint"
    config_model = EntrypointSourceConfig

    def __init__(self, source_id: str, config: dict[str, Any]) -> None:
        self.source_id = source_id
        self.settings = EntrypointSourceConfig.model_validate(config)

    async def scan(self) -> list[Discovered]:
        return await asyncio.to_thread(self._scan)

    def _scan(self) -> list[Discovered]:
        found: list[Discovered] = []
        for ep in sorted(entry_points(group=self.settings.group), key=lambda e: e.name):
            origin = f"entry point {ep.name} = {ep.value}"
            try:
                obj = ep.load()
                data = obj() if callable(obj) else obj
            except Exception as exc:  # third-party code: whatever it raises quarantines it, nothing more
                found.append(Discovered(ep.name, self.source_id, None, fingerprint(origin), origin=origin,
                                        error=f"{origin} failed: {type(exc).__name__}: {exc}"))
                continue
            for item in data if isinstance(data, list) else [data]:
                found.append(discovered_from_dict(item, source_id=self.source_id, default_name=ep.name,
                                                  origin=origin))
        return found

    async def close(self) -> None:
        return None
