"""Source types: the built-in ones and plug-ins from the ``mcp_hangar.discovery_sources`` entry-point group.

A source type is a callable ``factory(source_id, config_dict) -> DiscoverySource``; when it has a
``config_model`` attribute (a pydantic model), ``config`` is validated with it up front, so a bad source
is refused when the file is loaded or the REST call is made, not at its first scan.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

from .base import DiscoverySource, format_pydantic

log = logging.getLogger(__name__)

PLUGIN_GROUP = "mcp_hangar.discovery_sources"
BUILTIN = {
    "docker": "mcp_hangar.discovery.docker:DockerSource",
    "filesystem": "mcp_hangar.discovery.filesystem:FilesystemSource",
    "entrypoint": "mcp_hangar.discovery.entrypoint:EntrypointSource",
}
# Known to the design, not built yet: the interface is ready, no implementation ships.
UNAVAILABLE = {"kubernetes": "the kubernetes source is not available in this version of Hangar"}
# When two sources propose the same name, the lower number wins (the config file beats them all).
PRIORITY = {"kubernetes": 1, "docker": 2, "filesystem": 3, "entrypoint": 4}
PLUGIN_PRIORITY = 99

SourceFactory = Callable[[str, dict[str, Any]], DiscoverySource]


def _load(target: str) -> Any:
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def _plugins() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=PLUGIN_GROUP) if ep.name not in BUILTIN}


def valid_types() -> list[str]:
    return sorted({*BUILTIN, *_plugins()})


def priority(source_type: str) -> int:
    return PRIORITY.get(source_type, PLUGIN_PRIORITY)


def factory(source_type: str) -> SourceFactory:
    """The factory of ``source_type``; ``ValueError`` naming the valid types when there is none."""
    if source_type in BUILTIN:
        found: SourceFactory = _load(BUILTIN[source_type])
        return found
    plugin = _plugins().get(source_type)
    if plugin is None:
        why = UNAVAILABLE.get(source_type, f"unknown source_type '{source_type}'")
        raise ValueError(f"{why}; valid types: {', '.join(valid_types())}")
    try:
        loaded: SourceFactory = plugin.load()
    except Exception as exc:  # a broken plug-in is a configuration problem, not a crash
        raise ValueError(f"source_type '{source_type}' ({plugin.value}) failed to load: {exc}") from None
    return loaded


def check_source_config(source_type: str, config: dict[str, Any]) -> dict[str, Any]:
    """Validate ``config`` for ``source_type``; returns it unchanged, raises ``ValueError`` otherwise."""
    model = getattr(factory(source_type), "config_model", None)
    if isinstance(model, type) and issubclass(model, BaseModel):
        try:
            model.model_validate(config)
        except PydanticValidationError as exc:
            raise ValueError(f"config of a {source_type} source: {format_pydantic(exc)}") from None
    return config


def create_source(source_id: str, source_type: str, config: dict[str, Any]) -> DiscoverySource:
    return factory(source_type)(source_id, config)
