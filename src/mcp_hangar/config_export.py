"""Export a configuration as a YAML file that round-trips: starting Hangar on it gives the same state.

The canonical document (``config_state``) holds effective values; the export writes them in file
syntax. A value the loaded file wrote as a ``${ENV}`` reference that still resolves to it is written as
that reference again; every other ``$`` is escaped (``$$``) so it loads back as itself. A secret value
that is not a reference is redacted unless the caller asks for literal secrets: it becomes a reference
to a variable named after its place (``${HANGAR_REDACTED_MCP_SERVERS_MATH_ENV_API_KEY}``), listed in the
file's header, so that starting on the export without that variable fails clearly instead of running
with a wrong value.
"""

from __future__ import annotations

import re
import shlex
import time
from dataclasses import dataclass
from typing import Any

import yaml

from . import __version__
from .config import interpolate
from .config_state import Doc, secret_leaves
from .group_config import hoist_inline_groups

REDACTED_PREFIX = "HANGAR_REDACTED_"


@dataclass
class Export:
    yaml: str
    redacted: list[str]  # dotted paths of the secrets that were replaced by references


def _resolves_to(raw: Any, value: Any) -> bool:
    """Whether the file's ``raw`` text (with ``$`` in it) still resolves to ``value``."""
    if not isinstance(raw, str) or "$" not in raw:
        return False
    resolved = interpolate(raw)
    if resolved is None:
        return False
    if resolved == value:
        return True
    if isinstance(value, list):  # `command: "python -m x ${ARG}"` is split like a shell would
        return shlex.split(resolved) == value
    if isinstance(value, (bool, int, float)):
        return bool(yaml.safe_load(resolved) == value)
    return False


def to_file_syntax(value: Any, raw: Any) -> Any:
    """``value`` written so that loading it gives ``value`` back, keeping ``raw``'s references."""
    if _resolves_to(raw, value):
        return raw
    if isinstance(value, dict):
        return {k: to_file_syntax(v, raw.get(k) if isinstance(raw, dict) else None) for k, v in value.items()}
    if isinstance(value, list):
        items = raw if isinstance(raw, list) else []
        return [to_file_syntax(v, items[i] if i < len(items) else None) for i, v in enumerate(value)]
    if isinstance(value, str):
        return value.replace("$", "$$")
    return value


def _variable(path: tuple[str, ...]) -> str:
    return REDACTED_PREFIX + re.sub(r"[^A-Za-z0-9]+", "_", "_".join(path)).strip("_").upper()


def render(doc: Doc, raw: dict[str, Any], *, include_secrets: bool = False, source: str = "") -> Export:
    """The YAML text of ``doc`` (a canonical document) given the loaded file's ``raw`` document."""
    hoisted, _ = hoist_inline_groups(dict(raw)) if raw else ({}, [])
    out = to_file_syntax(doc, hoisted)
    redacted: list[str] = []
    if not include_secrets:
        paths = [p for p in secret_leaves(out) if not _is_reference(_at(out, p))]
        for path in paths:
            _set(out, path, "${" + _variable(path) + "}")
            redacted.append(".".join(path))
    header = [f"# MCP Hangar {__version__} configuration export ({time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())})"]
    if source:
        header.append(f"# state of the instance running {source}")
    if redacted:
        header.append("# REDACTED: these secrets were literal values; set the variables named in their place,")
        header.append("# or export again with include_secrets to write the values themselves:")
        header += [f"#   {path}" for path in redacted]
    elif include_secrets:
        header.append("# WARNING: this file contains literal secrets")
    text = "\n".join(header) + "\n" + yaml.safe_dump(out, sort_keys=False, allow_unicode=True, width=120)
    return Export(text, redacted)


def _is_reference(value: Any) -> bool:
    return isinstance(value, str) and re.search(r"(?<!\$)\$\{[A-Za-z_]", value.replace("$$", "")) is not None


def _at(doc: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        doc = doc[int(part)] if isinstance(doc, list) else doc[part]
    return doc


def _set(doc: Any, path: tuple[str, ...], value: Any) -> None:
    parent = _at(doc, path[:-1])
    if isinstance(parent, list):
        parent[int(path[-1])] = value
    else:
        parent[path[-1]] = value
