"""A third-party discovery source type: proposes the servers listed in its own config."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from mcp_hangar.discovery.base import Discovered, discovered_from_dict


class StaticConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    servers: dict[str, dict[str, Any]] = {}


class StaticSource:
    source_type = "static"
    config_model = StaticConfig

    def __init__(self, source_id: str, config: dict[str, Any]) -> None:
        self.source_id = source_id
        self.settings = StaticConfig.model_validate(config)

    async def scan(self) -> list[Discovered]:
        return [discovered_from_dict({"name": name, **spec}, source_id=self.source_id, default_name=name,
                                     origin="static config")
                for name, spec in sorted(self.settings.servers.items())]

    async def close(self) -> None:
        return None
