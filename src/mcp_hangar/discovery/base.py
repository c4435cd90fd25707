"""The source interface and the value every source produces.

A source only *reads*: ``scan()`` answers what it sees now, ``watch()`` (optional) yields a hint whenever
that may have changed, so the manager scans again at once instead of waiting for the next cycle. The
approval flow, limits and conflicts live in the manager, so a new source type (Kubernetes, a plug-in)
is just another class with these methods.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from pydantic import ValidationError as PydanticValidationError

from ..config import ServerSpec, format_validation_error, spec_to_dict, validate_server_id

WATCHING = "watching"  # the first hint of every watch(): changes from now on are seen


@dataclass(frozen=True)
class Discovered:
    """One server a source proposes. ``spec`` is None when what the source found is invalid; ``error``
    then says why (the server goes to quarantine with that message)."""

    name: str
    source_id: str
    spec: ServerSpec | None
    fingerprint: str
    group: str | None = None
    origin: str = ""  # where it was found: a container, a file, an entry point
    error: str | None = None


@runtime_checkable
class DiscoverySource(Protocol):
    """What the manager needs from a source. ``watch`` is optional (sources without it are polled)."""

    source_id: str
    source_type: str

    async def scan(self) -> list[Discovered]:
        """Everything the source proposes now. Raise ``DiscoverySourceError`` when it cannot be read."""
        ...

    async def close(self) -> None:
        """Stop watching and release connections."""
        ...


class WatchingSource(DiscoverySource, Protocol):
    def watch(self) -> AsyncIterator[str]:
        """Yield ``WATCHING`` once the watch is established (the manager then scans to catch up), then a
        short hint (e.g. ``"start c0ffee"``) whenever the source may have changed."""
        ...


def fingerprint(data: Any) -> str:
    """A stable digest of what a source proposes: a changed fingerprint means a changed proposal."""
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


format_pydantic = format_validation_error


def discovered_from_dict(
    data: Any, *, source_id: str, default_name: str, origin: str,
    describe: Callable[[PydanticValidationError | ValueError, str], str] | None = None,
) -> Discovered:
    """Build a ``Discovered`` from a spec dict (the config file's keys plus ``name`` and ``group``);
    an invalid one comes back with ``error`` set instead of raising. ``describe(exc, key)`` may word
    the error (with file and line); ``key`` is ``"name"`` when the id itself is invalid."""
    if not isinstance(data, dict):
        return Discovered(default_name, source_id, None, fingerprint(repr(data)), origin=origin,
                          error=f"a server spec must be a mapping, got {type(data).__name__}")
    body = dict(data)
    name = str(body.pop("name", default_name))
    group = body.pop("group", None)
    body.pop("enabled", None)
    digest = fingerprint({"name": name, "group": group, **body})
    try:
        validate_server_id(name)
    except ValueError as exc:
        message = describe(exc, "name") if describe else f"name: {exc}"
        return Discovered(name, source_id, None, digest, group=_group(group), origin=origin, error=message)
    try:
        spec = ServerSpec.model_validate(body)
    except PydanticValidationError as exc:
        message = describe(exc, "") if describe else format_pydantic(exc)
        return Discovered(name, source_id, None, digest, group=_group(group), origin=origin, error=message)
    return Discovered(name, source_id, spec, fingerprint({"name": name, "group": group, **spec_to_dict(spec)}),
                      group=_group(group), origin=origin)


def _group(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None
