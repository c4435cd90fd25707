"""The difference between the config file on disk and what runs: a unified diff of the two canonical
documents (secrets masked) and a structured list of differences saying who made each one.

Three documents are compared: ``loaded`` (the file as last loaded or reloaded), ``on_disk`` (the file
now) and ``in_memory`` (the running state). A difference between disk and memory is ``origin: file``
when the file changed since it was loaded, ``api`` when the running state changed (REST), ``both``
when both did, and ``discovery`` for approved discovered servers.
"""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING, Any

import yaml

from .config import parse_config_text
from .config_state import Doc, document_of_config, document_of_state, origins_of_state, sanitize
from .errors import ConfigError

if TYPE_CHECKING:
    from .hangar import Hangar

Key = tuple[str, str]


def _items(doc: Doc) -> dict[Key, Any]:
    """Every comparable item: each server, group and discovery source, and each other setting section."""
    out: dict[Key, Any] = {}
    for section, value in doc.items():
        if section in ("mcp_servers", "groups"):
            out.update({(section, k): v for k, v in value.items()})
        elif section == "discovery":
            out.update({("discovery.sources", s["id"]): s for s in value.get("sources", [])})
            out[("settings", "discovery")] = {k: v for k, v in value.items() if k != "sources"}
        else:
            out[("settings", section)] = value
    return out


def _fields(a: Any, b: Any) -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        return sorted(k for k in {*a, *b} if a.get(k) != b.get(k))
    return []


def differences(loaded: Doc, on_disk: Doc, in_memory: Doc,
                origins: dict[Key, str] | None = None) -> list[dict[str, Any]]:
    """The structured differences from ``on_disk`` to ``in_memory``."""
    base, disk, memory = _items(loaded), _items(on_disk), _items(in_memory)
    out = []
    for key in sorted({*disk, *memory}):
        d, m = disk.get(key), memory.get(key)
        if d == m:
            continue
        file_moved, state_moved = base.get(key) != d, base.get(key) != m
        origin = "both" if file_moved and state_moved else "file" if file_moved else "api"
        if (origins or {}).get(key) == "discovery" and not file_moved:
            origin = "discovery"
        change = "added" if d is None else "removed" if m is None else "changed"
        out.append({"section": key[0], "id": key[1], "change": change, "origin": origin,
                    "fields": _fields(d, m)})
    return out


def _yaml(doc: Doc) -> list[str]:
    return yaml.safe_dump(doc, sort_keys=True, width=120).splitlines(keepends=True)


def config_diff(hangar: Hangar) -> dict[str, Any]:
    """``{"has_diff", "diff", "differences", "on_disk", "in_memory"}`` (plus ``on_disk_error`` when the
    file on disk does not load)."""
    loaded = document_of_config(hangar.loaded.config)
    in_memory = document_of_state(hangar)
    result: dict[str, Any] = {}
    path = hangar.loaded.path
    if path is None:
        on_disk = loaded
    else:
        try:
            cfg, _, _ = parse_config_text(path.read_text("utf-8"), str(path), hangar.loaded.lenient)
            on_disk = document_of_config(cfg)
        except ConfigError as exc:
            on_disk, result["on_disk_error"] = loaded, exc.message
        except (OSError, UnicodeDecodeError) as exc:
            on_disk, result["on_disk_error"] = {}, f"{path}: cannot read: {exc}"
    found = differences(loaded, on_disk, in_memory, origins_of_state(hangar))
    shown_disk, shown_memory = sanitize(on_disk), sanitize(in_memory)
    text = "".join(difflib.unified_diff(_yaml(shown_disk), _yaml(shown_memory), "on-disk", "in-memory"))
    result.update(has_diff=bool(found) or "on_disk_error" in result, diff=text, differences=found,
                  on_disk=shown_disk, in_memory=shown_memory)
    return result
