"""The official SDK's validation of 2026-07-28 requests, loaded on first use.

``mcp.shared.inbound`` is a pure module: it needs the standard library and ``mcp_types`` only. Importing
it through the ``mcp`` package, though, runs ``mcp/__init__``, which loads the SDK's whole client and
server stacks (about 0.25 s and 30 MiB) that Hangar never uses. So it is loaded from its own file under
a private name (about 0.1 s, 15 MiB), and only when the first 2026-07-28 request arrives, on a worker
thread so that the event loop keeps serving meanwhile. Boot and idle memory do not pay for it, and
/health/ready stays honest: a modern request that comes early waits for the load, then is served.
"""

from __future__ import annotations

import asyncio
import importlib.util
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from ..upstream.era import META_CAPABILITIES, META_VERSION

# Status codes of JSON-RPC errors on the HTTP front (the spec's table; -32603 stays 200).
ERROR_CODE_HTTP_STATUS: dict[int, int] = {
    -32700: 400, -32600: 400, -32602: 400, -32020: 400, -32021: 400, -32022: 400, -32601: 404,
}
ROUTING_HEADERS = frozenset({"mcp-protocol-version", "mcp-method", "mcp-name"})
NAME_BEARING = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}  # the param Mcp-Name mirrors
_SENTINEL = "=?base64?"  # how a base64-wrapped header value starts
PRIVATE_NAME = "mcp_hangar._sdk_inbound"

_lock = threading.Lock()
_module: ModuleType | None = None


def _load() -> ModuleType:
    try:
        spec = importlib.util.find_spec("mcp")  # locating a top-level package does not run its __init__
        folders = list(spec.submodule_search_locations or []) if spec is not None else []
        path = Path(folders[0]) / "shared" / "inbound.py"
        file_spec = importlib.util.spec_from_file_location(PRIVATE_NAME, path)
        if file_spec is None or file_spec.loader is None:
            raise ImportError(path)
        module = importlib.util.module_from_spec(file_spec)
        sys.modules[PRIVATE_NAME] = module  # dataclasses look their module up while the file runs
        file_spec.loader.exec_module(module)
        return module
    except Exception:  # a later SDK layout: the ordinary (heavier) import still works
        sys.modules.pop(PRIVATE_NAME, None)
        import mcp.shared.inbound as inbound

        return inbound


def sdk() -> ModuleType:
    """The SDK's inbound validation module, loaded on first use (blocking the calling thread)."""
    global _module
    if _module is None:
        with _lock:
            if _module is None:
                _module = _load()
    return _module


def sdk_loaded() -> bool:
    return _module is not None


async def load_sdk() -> None:
    """Make :func:`sdk` instant, loading it on a worker thread if needed (the loop keeps running)."""
    if _module is None:
        await asyncio.to_thread(sdk)


def accepted_modern(method: str, params: dict[str, Any], headers: Mapping[str, str] | None,
                    supported: tuple[str, ...]) -> tuple[str, Any] | None:
    """(protocol version, client capabilities) of a well-formed 2026-07-28 request, checked without the
    SDK; None when the SDK's ``classify_inbound_request`` must decide (it rejects, or accepts what this
    does not look into, such as a base64-wrapped ``Mcp-Name``). Accepts only what the SDK accepts, with the
    same answer: the envelope's version is a supported string, the capabilities key is there, and with
    ``headers`` the version, method and name headers equal the body's values verbatim."""
    meta = params.get("_meta")
    if type(meta) is not dict:
        return None
    version = meta.get(META_VERSION)
    if type(version) is not str or version not in supported or META_CAPABILITIES not in meta:
        return None
    if headers is not None:
        if headers.get("mcp-protocol-version") != version or headers.get("mcp-method") != method:
            return None
        key = NAME_BEARING.get(method)
        if key is not None:
            value = params.get(key)
            if value is not None:
                given = headers.get("mcp-name")
                if given is None or given != value or given.startswith(_SENTINEL):
                    return None
    return version, meta[META_CAPABILITIES]


# Schema object -> whether it annotates any property with x-mcp-header (checked once per tool schema).
_annotated: dict[int, tuple[Any, bool]] = {}


def param_header_rejection(schema: Any, arguments: Any, headers: Any) -> Any:
    """The SDK's ``validate_mcp_param_headers``, skipped for a schema without ``x-mcp-header``
    annotations: every rejection it can give comes from an annotated property, so for such a schema
    (nearly every tool) the answer is None whatever the headers. The walk of the schema is done once."""
    cached = _annotated.get(id(schema))
    if cached is not None and cached[0] is schema and not cached[1]:
        return None
    module = sdk()
    if cached is None or cached[0] is not schema:
        annotated = module.find_invalid_x_mcp_header(schema) is None and bool(module.x_mcp_header_map(schema))
        if len(_annotated) > 10_000:  # schemas come and go with catalogue rebuilds: keep the cache bounded
            _annotated.clear()
        cached = _annotated[id(schema)] = (schema, annotated)
    if not cached[1]:
        return None
    return module.validate_mcp_param_headers(schema, arguments, headers)
