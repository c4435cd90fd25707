"""Protocol-era details shared by every upstream transport.

A request travels from a front client through Hangar to an upstream. Its ``_meta`` may carry the
front's per-request envelope (``io.modelcontextprotocol/*``). Towards a legacy upstream those keys are
dropped (they describe the client's connection, and a legacy session rejects them); towards a modern
upstream the envelope is rebuilt for Hangar's own connection, keeping the client's capabilities and
log level, so that the upstream does not ask for inputs the client cannot provide.
"""

from __future__ import annotations

from typing import Any, Literal

from .base import CLIENT_NAME

JsonObject = dict[str, Any]
Era = Literal["legacy", "modern"]
EraChoice = Literal["auto", "legacy", "modern"]

MODERN_VERSION = "2026-07-28"
RESERVED_PREFIX = "io.modelcontextprotocol/"
META_VERSION = RESERVED_PREFIX + "protocolVersion"
META_CAPABILITIES = RESERVED_PREFIX + "clientCapabilities"
META_CLIENT_INFO = RESERVED_PREFIX + "clientInfo"
META_LOG_LEVEL = RESERVED_PREFIX + "logLevel"
KEPT_FOR_MODERN = (META_CAPABILITIES, META_LOG_LEVEL)
# The envelope keys a front request usually carries: a _meta made of these only is dropped whole.
USUAL_ENVELOPE = frozenset({META_VERSION, META_CAPABILITIES, META_CLIENT_INFO, META_LOG_LEVEL})


def prepare_params(params: JsonObject | None, era: Era | None, client_version: str) -> JsonObject | None:
    """The params to put on the wire to an upstream of ``era``."""
    meta = params.get("_meta") if params else None
    if era == "modern":
        out = dict(params or {})
        envelope: JsonObject = {k: v for k, v in (meta or {}).items()
                                if not k.startswith(RESERVED_PREFIX) or k in KEPT_FOR_MODERN}
        envelope[META_VERSION] = MODERN_VERSION
        envelope.setdefault(META_CAPABILITIES, {})
        envelope[META_CLIENT_INFO] = {"name": CLIENT_NAME, "version": client_version}
        out["_meta"] = envelope
        return out
    if not isinstance(meta, dict):
        return params
    kept = {} if meta.keys() <= USUAL_ENVELOPE else \
        {k: v for k, v in meta.items() if not k.startswith(RESERVED_PREFIX)}
    if len(kept) == len(meta):
        return params
    assert params is not None
    out = dict(params)
    del out["_meta"]
    if kept:
        out["_meta"] = kept
    return out


def discover_params(client_version: str) -> JsonObject:
    return prepare_params({}, "modern", client_version) or {}


def is_modern_discover_result(result: JsonObject) -> bool:
    versions = result.get("supportedVersions")
    return isinstance(versions, list) and MODERN_VERSION in versions
