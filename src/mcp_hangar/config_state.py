"""One canonical document for a configuration: from a parsed file, or from a running Hangar's state.

Both views use the same shape, so that comparing them (``/api/config/diff``), showing one
(``GET /api/config``) and writing one out (``POST /api/config/export``) agree with each other:

    {<settings sections, non-default values only>,
     "mcp_servers": {id: spec}, "groups": {id: spec},
     "discovery": {<settings>, "sources": [{"id", "source_type", ...}]}}

Values are the effective ones (``${ENV}`` references resolved); ``config_export`` turns them back
into file syntax. ``sanitize`` masks secret-looking values at any depth.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .config import DiscoverySettings, DiscoverySourceSpec, HangarConfig, spec_to_dict
from .group_config import group_to_dict

if TYPE_CHECKING:
    from .hangar import Hangar

Doc = dict[str, Any]
MASK = "***"

# Parts of key names that mark a value as secret (a database DSN may carry its password); and keys whose
# values never are, even inside a secret
# block (``auth: {type: bearer, ...}``, ``api_key: {header_name: X-API-Key}``).
SECRET_MARKERS = ("token", "secret", "password", "passwd", "key", "authorization", "credential", "cookie",
                  "private", "auth", "dsn")
SAFE_KEYS = frozenset({"type", "enabled", "header_name", "mode", "driver", "issuer", "audience", "tenant_claim",
                       "scheme", "algorithm", "path"})
# Subtrees that describe things rather than hold values (a declared tool's schema may have an ``api_key``
# property).
OPAQUE_KEYS = frozenset({"tools", "inputSchema", "outputSchema"})


def is_secret_key(key: Any) -> bool:
    """Whether a mapping key names a secret (``*token*``, ``*secret*``, ``*password*``, ``*key*``, ``auth``...)."""
    name = str(key).lower()
    return name not in SAFE_KEYS and any(marker in name for marker in SECRET_MARKERS)


def secret_leaves(doc: Any, path: tuple[str, ...] = (), inside: bool = False, *,
                  whole: bool = True) -> list[tuple[str, ...]]:
    """The paths of every secret value in ``doc``: a string or number under a secret-looking key, or
    anywhere inside a block held by one (except under ``SAFE_KEYS``). ``whole``: ``doc`` is a whole
    configuration document (not, say, one server's spec)."""
    found: list[tuple[str, ...]] = []
    if isinstance(doc, dict):
        for key, value in doc.items():
            if key in OPAQUE_KEYS:
                continue
            here = (*path, str(key))
            # The top-level `auth:` section is Hangar's own auth settings (keys live in auth.db): only its
            # secret-looking keys count. Any other auth block (a remote server's credentials) is secret.
            block_key = is_secret_key(key) and not (whole and path == () and key == "auth")
            secret_block = (inside or block_key) and str(key).lower() not in SAFE_KEYS
            if isinstance(value, (dict, list)):
                found += secret_leaves(value, here, secret_block, whole=whole)
            elif secret_block and _maskable(value):
                found.append(here)
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            here = (*path, str(i))
            if isinstance(value, (dict, list)):
                found += secret_leaves(value, here, inside, whole=whole)
            elif inside and _maskable(value):
                found.append(here)
    return found


def _maskable(value: Any) -> bool:
    return isinstance(value, str) or (isinstance(value, (int, float)) and not isinstance(value, bool))


def replace_at(doc: Any, paths: list[tuple[str, ...]], make: Any) -> Any:
    """A copy of ``doc`` with the value at each path replaced by ``make(path, old_value)``."""
    wanted = set(paths)

    def walk(node: Any, path: tuple[str, ...]) -> Any:
        if isinstance(node, dict):
            return {k: walk(v, (*path, str(k))) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, (*path, str(i))) for i, v in enumerate(node)]
        return make(path, node) if path in wanted else node

    return walk(doc, ())


def sanitize(doc: Any, *, whole: bool = True) -> Any:
    """``doc`` with every secret value replaced by ``"***"`` (``whole``: see ``secret_leaves``)."""
    return replace_at(doc, secret_leaves(doc, whole=whole), lambda _path, _value: MASK)


def declared_sources(settings: DiscoverySettings) -> list[tuple[str, DiscoverySourceSpec]]:
    """The file's discovery sources with their ids: ``id``, else the type (twice used: ``type-N``)."""
    types = [s.source_type for s in settings.sources]
    return [(spec.id or (spec.source_type if types.count(spec.source_type) == 1
                         else f"{spec.source_type}-{index + 1}"), spec)
            for index, spec in enumerate(settings.sources)]


def source_to_dict(source_id: str, spec: DiscoverySourceSpec) -> Doc:
    out: Doc = {"id": source_id, "source_type": spec.source_type}
    out.update(spec.model_dump(mode="json", exclude_defaults=True, exclude={"id", "source_type"}))
    return out


def _settings(config: HangarConfig) -> Doc:
    out = config.model_dump(mode="json", exclude_defaults=True, by_alias=True,
                            exclude={"mcp_servers", "groups", "discovery"})
    return {k: v for k, v in out.items() if v not in ({}, None)}


def _discovery_settings(settings: DiscoverySettings) -> Doc:
    return settings.model_dump(mode="json", exclude_defaults=True, exclude={"sources"})


def document_of_config(config: HangarConfig) -> Doc:
    """The canonical document of a parsed file."""
    doc = _settings(config)
    doc["mcp_servers"] = {sid: spec_to_dict(spec) for sid, spec in sorted(config.mcp_servers.items())}
    doc["groups"] = {gid: group_to_dict(spec) for gid, spec in sorted(config.groups.items())}
    if config.discovery is not None:
        discovery = _discovery_settings(config.discovery)
        discovery["sources"] = [source_to_dict(sid, spec) for sid, spec in declared_sources(config.discovery)]
        doc["discovery"] = discovery
    return doc


def document_of_state(hangar: Hangar) -> Doc:
    """The canonical document of what runs: the loaded file's settings, every server (declared, created
    through REST, approved from discovery), every group and every discovery source."""
    config = hangar.loaded.config
    doc = _settings(config)
    doc["mcp_servers"] = {s.server_id: spec_to_dict(s.spec) for s in hangar.list_servers()}
    doc["groups"] = {g.group_id: group_to_dict(g.spec) for g in hangar.groups.all()}
    if hangar.discovery is not None:
        discovery = _discovery_settings(hangar.discovery.settings)
        discovery["sources"] = [source_to_dict(sid, state.spec) for sid, state in hangar.discovery.sources.items()]
        doc["discovery"] = discovery
    return doc


def origins_of_state(hangar: Hangar) -> dict[tuple[str, str], str]:
    """Where each running server, group and discovery source came from: config, api or discovery."""
    out: dict[tuple[str, str], str] = {("mcp_servers", s.server_id): str(s.source) for s in hangar.list_servers()}
    out.update({("groups", g.group_id): g.source for g in hangar.groups.all()})
    if hangar.discovery is not None:
        out.update({("discovery.sources", sid): st.origin for sid, st in hangar.discovery.sources.items()})
    return out
