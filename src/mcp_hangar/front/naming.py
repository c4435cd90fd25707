"""Exposed names of upstream tools and prompts: ``<server_id><sep><name>``, at most 64 characters.

A name that would be longer gets a short form: as much of the readable name as fits, then ``_`` and 8
hex digits of a SHA-256 over the server id and the original name. The short form depends on nothing
else, so it is stable across restarts and fleet changes. Routing never parses names: it looks them up
in the catalogue built from the same function, so ids that contain the separator are fine.
"""

from __future__ import annotations

import hashlib
import re

MAX_NAME = 64
_HASH_LEN = 8
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:_HASH_LEN]


def exposed_name(server_id: str, name: str, separator: str = "__", max_len: int = MAX_NAME,
                 namespace: str | None = None) -> str:
    """The client-facing name of ``name`` on ``server_id`` (prefixed with ``namespace``, default the id)."""
    prefix = server_id if namespace is None else namespace
    full = f"{prefix}{separator}{name}" if prefix else name
    clean = _UNSAFE.sub("_", full)
    if clean == full and len(full) <= max_len:
        return full
    suffix = "_" + _digest(server_id, name)
    return clean[: max_len - len(suffix)] + suffix


def disambiguate(name: str, server_id: str, original: str, max_len: int = MAX_NAME) -> str:
    """A second, still deterministic, form for the rare case where two exposed names collide."""
    suffix = "_" + _digest("collision", server_id, original)
    return name[: max_len - len(suffix)] + suffix
