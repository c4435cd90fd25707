"""The YAML configuration file: pydantic models, ``${ENV}`` interpolation, and located errors.

Every problem names the file, the line and the key, and misspelt keys come with the closest valid
key. ``load_config(path, lenient=True)`` turns unknown keys into warnings instead of errors.
"""

from __future__ import annotations

import difflib
import os
import re
import shlex
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic import ValidationError as PydanticValidationError

from .auth.settings import AuthSettings, ToolAccessSpec, split_tools_field
from .config_model import StrictModel as _Strict
from .errors import ConfigError
from .group_config import GroupSpec, cross_check, hoist_inline_groups, original_loc

SERVER_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_ENV_RE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")

Mode = Literal["subprocess", "docker", "remote"]


class ToolDecl(BaseModel):
    """A pre-declared tool: shown to clients before the server's first start. Extra keys are kept."""

    model_config = ConfigDict(extra="allow", defer_build=True)
    name: str = Field(min_length=1, max_length=128)
    description: str | None = None
    inputSchema: dict[str, Any] = Field(default_factory=lambda: {"type": "object"})


class DockerResources(_Strict):
    """Limits of a ``docker`` mode container."""

    memory: str = Field(default="512m", pattern=r"^[0-9]+[bkmgBKMG]?$")
    cpus: float = Field(default=1.0, gt=0, le=256)
    pids: int = Field(default=256, ge=8, le=100000)


SENSITIVE_HOST_PATHS = ("/", "/etc", "/var/run/docker.sock", "/run/docker.sock", "/proc", "/sys", "/dev", "/boot",
                        "/root", "/home")


def check_volume(volume: str, allow_sensitive: bool) -> None:
    """``host:container[:ro|rw]`` with absolute paths; sensitive host paths only when allowed."""
    parts = volume.split(":")
    if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
        raise ValueError(f"volume {volume!r} must be host:container or host:container:ro|rw")
    host, container = parts[0], parts[1]
    if len(parts) == 3 and parts[2] not in ("ro", "rw"):
        raise ValueError(f"volume {volume!r}: the mode must be ro or rw")
    if not host.startswith("/") or not container.startswith("/"):
        raise ValueError(f"volume {volume!r}: both paths must be absolute")
    if allow_sensitive:
        return
    real = os.path.realpath(host)
    home = os.path.realpath(os.path.expanduser("~"))
    if real in SENSITIVE_HOST_PATHS or real == home or real.startswith("/etc/"):
        raise ValueError(f"volume {volume!r} mounts the sensitive host path {real!r}; "
                         "set allow_sensitive_volumes: true if you really mean it")


class RemoteHttpSettings(_Strict):
    """HTTP client settings of a ``remote`` upstream."""

    connect_timeout: float = Field(default=10.0, gt=0, le=300)
    read_timeout: float = Field(default=300.0, gt=0, le=3600)
    max_retries: int = Field(default=3, ge=0, le=10)


class ServerSpec(_Strict):
    """How to run one upstream MCP server. Keys mirror the YAML file and the REST payload."""

    mode: Mode = "subprocess"
    command: list[str] | None = None
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    # Pass Hangar's whole environment to the process (default: only PATH, HOME, LANG, TZ, ... plus env).
    inherit_env: bool = False
    cwd: str | None = None
    # Protocol era towards this upstream: probe (auto), or force the handshake (legacy) or 2026-07-28 era.
    protocol: Literal["auto", "legacy", "modern"] = "auto"
    description: str = ""
    # Prefix of this server's tool and prompt names and resource URIs on the MCP front; default the id.
    # An empty string exposes them unchanged (for a single upstream, or names known to be unique).
    namespace: str | None = Field(default=None, max_length=64, pattern=r"^[A-Za-z0-9_.-]*$")
    idle_ttl_s: float = Field(default=300, gt=0, le=86400)
    health_check_interval_s: float = Field(default=60, gt=0, le=3600)
    max_consecutive_failures: int = Field(default=3, ge=1, le=100)
    startup_timeout_s: float = Field(default=30, gt=0, le=600)
    call_timeout_s: float = Field(default=60, gt=0, le=3600)
    max_concurrency: int = Field(default=10, ge=1, le=10000)
    max_response_bytes: int = Field(default=10 * 1024 * 1024, ge=1024, le=1024 * 1024 * 1024)
    auto_start: bool = False
    tools: list[ToolDecl] | None = None
    # Which of its tools clients may see and call; in YAML also written `tools: {allow_list, deny_list}`.
    tool_access: ToolAccessSpec | None = None
    # Validated here; run by the docker and remote upstream adapters.
    # docker mode: the container's image and its hardening (see docs/docker.md).
    image: str | None = None
    volumes: list[str] = Field(default_factory=list)  # host:container[:ro|rw]
    allow_sensitive_volumes: bool = False  # permit /, /etc, the docker socket, the home folder root, ...
    network: str = "none"
    read_only: bool = True
    user: str | None = None  # default a non-root uid; "current" = Hangar's uid:gid
    resources: DockerResources = Field(default_factory=lambda: DockerResources())
    cap_drop: list[str] = Field(default_factory=lambda: ["ALL"])
    cap_add: list[str] = Field(default_factory=list)
    no_new_privileges: bool = True
    pull: Literal["never", "missing"] = "never"
    runtime: Literal["docker", "podman"] = "docker"
    docker_host: str | None = None
    endpoint: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    auth: dict[str, Any] | None = None
    tls: dict[str, Any] | None = None
    http: RemoteHttpSettings = Field(default_factory=RemoteHttpSettings)

    @model_validator(mode="before")
    @classmethod
    def _tools_policy_form(cls, data: Any) -> Any:
        return split_tools_field(data)

    @field_validator("command", mode="before")
    @classmethod
    def _split_command(cls, value: Any) -> Any:
        # A single string is accepted for convenience and split like a shell would.
        if isinstance(value, str):
            return shlex.split(value)
        return value

    @field_validator("env", "headers", mode="before")
    @classmethod
    def _stringify_values(cls, value: Any) -> Any:
        # YAML turns `PORT: 8080` or `DEBUG: true` into non-strings; env values are always strings.
        if isinstance(value, dict):
            return {
                k: ("true" if v is True else "false" if v is False else str(v))
                if isinstance(v, (int, float, bool))
                else v
                for k, v in value.items()
            }
        return value

    @model_validator(mode="after")
    def _mode_requirements(self) -> ServerSpec:
        if self.mode == "subprocess" and not self.command:
            raise ValueError("mode 'subprocess' needs a non-empty 'command'")
        if self.mode == "docker":
            if not self.image:
                raise ValueError("mode 'docker' needs an 'image'")
            for volume in self.volumes:
                check_volume(volume, self.allow_sensitive_volumes)
        if self.mode == "remote":
            if not self.endpoint:
                raise ValueError("mode 'remote' needs an 'endpoint'")
            if not re.match(r"^https?://[^/\s]+", self.endpoint):
                raise ValueError("'endpoint' must be an http:// or https:// URL")
            if self.auth is not None and self.auth.get("type") not in ("bearer", "api_key", "basic"):
                raise ValueError("auth.type must be one of bearer, api_key, basic")
        return self

    def argv(self) -> list[str]:
        return [*(self.command or []), *self.args]

    def launch_fields(self) -> dict[str, Any]:
        """Fields whose change means the process must be restarted to take effect."""
        keys = ("mode", "command", "args", "env", "inherit_env", "protocol", "cwd", "image", "volumes", "network",
                "read_only", "user", "resources", "cap_drop", "cap_add", "no_new_privileges", "pull", "runtime",
                "docker_host", "endpoint", "headers", "auth", "tls", "http")
        return {k: getattr(self, k) for k in keys}


class LoggingSettings(_Strict):
    level: str = "INFO"
    json_logs: bool = Field(default=False, alias="json")


class FrontSettings(_Strict):
    """How Hangar presents itself to MCP clients."""

    tool_separator: str = Field(default="__", min_length=1, max_length=4, pattern=r"^[A-Za-z0-9_.-]+$")
    expose_upstream_tools: bool = True
    expose_management_tools: bool = True
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024, le=256 * 1024 * 1024)
    # Host header values accepted on /mcp besides loopback names (DNS-rebinding protection).
    allowed_hosts: list[str] = Field(default_factory=list)
    # Origin values accepted on /mcp besides loopback origins; "*" accepts any.
    allowed_origins: list[str] = Field(default_factory=list)
    session_idle_timeout_s: float = Field(default=1800, gt=0)
    # How long the first tools/list waits for never-started servers (no declared tools) to report theirs.
    discovery_timeout_s: float = Field(default=10, ge=0, le=300)


class SsrfSettings(_Strict):
    """Networks that ``remote`` endpoints registered through REST may resolve to (config-file ones are trusted)."""

    trusted_networks: list[str] = Field(default_factory=list)

    @field_validator("trusted_networks")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        import ipaddress

        for net in value:
            try:
                ipaddress.ip_network(net, strict=False)
            except ValueError:
                raise ValueError(f"not a network: {net!r} (write for example 10.0.0.0/8)") from None
        return value


class ObservabilitySettings(_Strict):
    """History, the durable event log, the WebSocket event stream and tracing (see docs/observability.md)."""

    history_retention: int = Field(default=10_000, ge=1, le=10_000_000)  # invocation records kept per server
    event_log_max_events: int = Field(default=100_000, ge=10, le=100_000_000)  # events kept for replay
    ws_queue_size: int = Field(default=1024, ge=16, le=1_000_000)  # per WebSocket client; the oldest is dropped
    ws_ping_interval_s: float = Field(default=55.0, gt=0, le=3600)  # idle time before Hangar sends a ping
    ws_ping_timeout_s: float = Field(default=30.0, gt=0, le=3600)  # how long a pong may take
    # OpenTelemetry spans (needs the [otel] extra); the exporter is set by the standard OTEL_* variables.
    tracing: bool = False


class DiscoverySourceSpec(_Strict):
    """One discovery source; what ``config`` holds depends on ``source_type`` (see docs/discovery.md)."""

    id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    source_type: str = Field(min_length=1, max_length=64)
    mode: Literal["additive", "authoritative"] = "additive"
    enabled: bool = True
    config: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _type_alias(cls, data: Any) -> Any:
        if isinstance(data, dict) and "type" in data and "source_type" not in data:  # the older key
            data = {("source_type" if k == "type" else k): v for k, v in data.items()}
        return data

    @model_validator(mode="after")
    def _known_type(self) -> DiscoverySourceSpec:
        from .discovery.registry import check_source_config  # the registry knows the plug-in types

        self.config = check_source_config(self.source_type, self.config)
        return self


class DiscoverySecurity(_Strict):
    """What discovered servers must pass before they are proposed."""

    max_servers_per_source: int = Field(default=50, ge=1, le=10_000)
    max_registrations_per_minute: int = Field(default=30, ge=1, le=100_000)
    require_health_check: bool = True  # start it, list its tools, stop it
    quarantine_on_failure: bool = True  # else a failing server is refused and tried again next cycle
    health_check_timeout_s: float = Field(default=30, gt=0, le=600)


class DiscoverySettings(_Strict):
    """Servers proposed by Docker labels, a folder of YAML files, or Python entry points."""

    enabled: bool = True  # false: no automatic cycles or watching; scans on request still work
    refresh_interval_s: float = Field(default=30, gt=0, le=86400)
    auto_register: bool = False  # false: new servers wait for approval
    grace_period_s: float = Field(default=60, ge=0, le=86400)  # authoritative: how long a vanished server stays
    sources: list[DiscoverySourceSpec] = Field(default_factory=list)
    security: DiscoverySecurity = Field(default_factory=DiscoverySecurity)

    @field_validator("sources", mode="before")
    @classmethod
    def _no_sources(cls, value: Any) -> Any:
        return [] if value is None else value

    @model_validator(mode="after")
    def _unique_ids(self) -> DiscoverySettings:
        ids = [s.id for s in self.sources if s.id is not None]
        for dup in sorted({i for i in ids if ids.count(i) > 1}):
            raise ValueError(f"discovery source id '{dup}' is used twice")
        return self


class ConfigReloadSettings(_Strict):
    """Hot reload of this file and its backups (see docs/configuration.md)."""

    enabled: bool = True  # watch the file and apply saved changes; SIGHUP, REST and the MCP tool always work
    use_watchdog: bool = True  # watch file-system events; false: look at the file every interval_s
    interval_s: float = Field(default=5.0, gt=0, le=3600)
    debounce_ms: int = Field(default=200, ge=10, le=10_000)  # a burst of writes is applied once
    backup_count: int = Field(default=5, ge=1, le=1000)  # rotating .bak1 (newest) ... .bakN
    # A reload lets the running calls of a server it restarts or removes finish for this long (graceful).
    drain_timeout_s: float = Field(default=30.0, ge=0, le=3600)


class EventStoreSettings(_Strict):
    """The durable event log: where it lives (``events.db`` in the data dir, or PostgreSQL), its snapshots and
    retention; ``observability.event_log_max_events`` caps the count."""

    driver: Literal["sqlite", "postgresql"] = "sqlite"
    dsn: str | None = None  # postgresql: a libpq connection string or URI (use ${ENV} for its password)
    pg_schema: str = Field(default="public", min_length=1, max_length=63)  # postgresql: the tables' schema
    max_age_s: float | None = Field(default=None, gt=0)  # events older than this are removed
    max_size_mb: float | None = Field(default=None, gt=0)  # the oldest events go until the log is below this
    retention_interval_s: float = Field(default=60.0, gt=0, le=86400)  # how often the policy runs
    # Events reach the disk in one transaction per this interval (or at once after 8,000 waiting): what a
    # crash (kill -9) can lose. Each write holds up calls in flight for a moment (GIL hand-overs with the
    # writer's thread), so fewer writes make a steadier tail (benchmarks: BENCHMARKS.md).
    flush_interval_ms: int = Field(default=1000, ge=10, le=60_000)
    # A stream that grew by this many events since its last snapshot gets a new one, then is compacted;
    # null: only retention folds events into snapshots (just before deleting them).
    snapshot_every_events: int | None = Field(default=1000, ge=1)

    @model_validator(mode="after")
    def _dsn_for_postgresql(self) -> EventStoreSettings:
        if self.driver == "postgresql" and not self.dsn:
            raise ValueError("driver postgresql needs a dsn (for example postgresql://hangar@db:5432/hangar)")
        return self


class HangarConfig(_Strict):
    """The whole file."""

    mcp_servers: dict[str, ServerSpec] = Field(default_factory=dict)
    groups: dict[str, GroupSpec] = Field(default_factory=dict)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    front: FrontSettings = Field(default_factory=FrontSettings)
    ssrf: SsrfSettings = Field(default_factory=SsrfSettings)
    observability: ObservabilitySettings = Field(default_factory=ObservabilitySettings)
    discovery: DiscoverySettings | None = None  # absent: discovery is off and its routes answer 404
    config_reload: ConfigReloadSettings = Field(default_factory=ConfigReloadSettings)
    event_store: EventStoreSettings = Field(default_factory=EventStoreSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)

    @field_validator("discovery", mode="before")
    @classmethod
    def _empty_discovery(cls, value: Any) -> Any:
        return {} if value is None else value  # a bare `discovery:` turns it on with the defaults

    @model_validator(mode="before")
    @classmethod
    def _inline_groups(cls, data: Any) -> Any:
        # The older inline form (`mcp_servers: {pool: {mode: group, ...}}`) is read into `groups`.
        if not isinstance(data, dict):
            return data
        data, _ = hoist_inline_groups(data)
        servers = data.get("mcp_servers")
        if isinstance(servers, dict):
            for key, value in servers.items():
                if isinstance(value, dict) and value.get("mode") == "group":
                    raise ValueError(f"group '{key}' is declared twice: under mcp_servers and under groups")
        return data

    @field_validator("mcp_servers", "groups", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return {} if value is None else value


def format_validation_error(exc: PydanticValidationError) -> str:
    """A pydantic error as one line: ``where: what; where: what``."""
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {msg}" if where else msg)
    return "; ".join(parts)


def validate_server_id(server_id: str) -> None:
    if not SERVER_ID_RE.match(server_id):
        raise ValueError(
            f"invalid MCP server id {server_id!r}: use 1-64 characters from A-Z, a-z, 0-9, '_' and '-'"
        )


@dataclass
class LoadedConfig:
    """A validated config plus where it came from."""

    config: HangarConfig
    path: Path | None  # None for the embedded default
    raw: dict[str, Any]  # the document before interpolation (keeps ${ENV} references)
    warnings: list[str] = field(default_factory=list)
    lenient: bool = False  # loaded with unknown keys as warnings (a reload reads the file the same way)
    text: str = ""  # the file as read

    @property
    def source(self) -> str:
        return str(self.path) if self.path else "<embedded default>"


# --------------------------------------------------------------------------- YAML with locations

Loc = tuple[str | int, ...]


def _construct(node: yaml.Node, loc: Loc, lines: dict[Loc, int], source: str) -> Any:
    lines[loc] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise ConfigError(
                    f"{source}:{key_node.start_mark.line + 1}: mapping keys must be plain strings",
                )
            key = str(key_node.value)
            if key in out:
                raise ConfigError(f"{source}:{key_node.start_mark.line + 1}: duplicate key '{key}'")
            lines[(*loc, key)] = key_node.start_mark.line + 1
            out[key] = _construct(value_node, (*loc, key), lines, source)
            lines[(*loc, key)] = key_node.start_mark.line + 1  # the key's line, not its value's
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_construct(item, (*loc, i), lines, source) for i, item in enumerate(node.value)]
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node, deep=True)
    finally:
        loader.dispose()


def _parse_yaml(text: str, source: str) -> tuple[Any, dict[Loc, int]]:
    lines: dict[Loc, int] = {}
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        raise ConfigSyntaxError(f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if node is None:
        return {}, lines
    return _construct(node, (), lines, source), lines


def _interpolate(value: Any, loc: Loc, problems: list[tuple[Loc, str]]) -> Any:
    if isinstance(value, dict):
        return {k: _interpolate(v, (*loc, k), problems) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, (*loc, i), problems) for i, v in enumerate(value)]
    if not isinstance(value, str) or "$" not in value:
        return value

    def repl(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, default = match.group(1), match.group(2)
        if name in os.environ:
            return os.environ[name]
        if name == "HANGAR_PYTHON":  # built in: the interpreter running Hangar
            return sys.executable
        if default is not None:
            return default
        problems.append((loc, f"environment variable '{name}' is not set (write ${{{name}:-default}})"))
        return ""

    return _ENV_RE.sub(repl, value)


def _locate(loc: Loc, lines: dict[Loc, int]) -> int | None:
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


def _known_keys(loc: Loc) -> list[str]:
    """The valid keys at the mapping that holds ``loc[-1]``."""
    model: type[BaseModel] | None = HangarConfig
    parents = loc[:-1]
    i = 0
    while model is not None and i < len(parents):
        part = parents[i]
        if model is HangarConfig and part == "mcp_servers":
            model, i = ServerSpec, i + 2  # skip the server id
            continue
        if model is HangarConfig and part == "groups":
            model, i = GroupSpec, i + 2  # skip the group id
            continue
        if model is HangarConfig and part in _SECTIONS:
            model, i = _SECTIONS[str(part)], i + 1
            continue
        nested = _nested_model(model, part)
        if nested is not None:  # a settings block, or a list of them (skip the index)
            model, i = nested[0], i + 1 + nested[1]
            continue
        return []
    if model is None or i != len(parents):
        return []
    return [f.alias or name for name, f in model.model_fields.items()]


_SECTIONS: dict[str, type[BaseModel]] = {"logging": LoggingSettings, "front": FrontSettings, "ssrf": SsrfSettings,
                                       "observability": ObservabilitySettings, "discovery": DiscoverySettings,
                                       "config_reload": ConfigReloadSettings, "event_store": EventStoreSettings}


def _nested_model(model: type[BaseModel], part: str | int) -> tuple[type[BaseModel], int] | None:
    """The model of field ``part`` of ``model`` and how many index levels follow it (0, or 1 for a list)."""
    field_info = model.model_fields.get(str(part))
    if field_info is None:
        return None
    annotation = field_info.annotation
    args = getattr(annotation, "__args__", ())
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, 0
    if getattr(annotation, "__origin__", None) is list and args and isinstance(args[0], type) \
            and issubclass(args[0], BaseModel):
        return args[0], 1
    return None


def _key_path(loc: Loc) -> str:
    return ".".join(str(p) for p in loc)


def _format(source: str, line: int | None, loc: Loc, msg: str) -> str:
    where = f"{source}:{line}" if line else source
    return f"{where}: {_key_path(loc) or '<top>'}: {msg}"


def _collect_problems(
    data: Any, lines: dict[Loc, int], source: str, lenient: bool
) -> tuple[HangarConfig | None, list[str], list[str], Any]:
    problems: list[str] = []
    warnings: list[str] = []
    if not isinstance(data, dict):
        return None, [f"{source}: the top level must be a mapping (for example 'mcp_servers:')"], warnings, data
    data, moved = hoist_inline_groups(data)  # problems are still reported where the user wrote them
    for section in ("mcp_servers", "groups"):
        entries = data.get(section)
        for sid in list(entries) if isinstance(entries, dict) else []:
            try:
                validate_server_id(str(sid))
            except ValueError as exc:
                where = original_loc((section, sid), moved)
                message = str(exc) if section == "mcp_servers" else str(exc).replace("MCP server id", "group id")
                problems.append(_format(source, _locate(where, lines), where, message))
    for _ in range(50):  # lenient mode strips unknown keys and tries again
        try:
            cfg = HangarConfig.model_validate(data)
            for place, msg in cross_check(set(cfg.mcp_servers), cfg.groups):
                where = original_loc(place, moved)
                problems.append(_format(source, _locate(where, lines), where, msg))
            return (cfg if not problems else None), problems, warnings, data
        except PydanticValidationError as exc:
            unknown: list[Loc] = []
            for err in exc.errors():
                loc: Loc = tuple(err["loc"])
                written = original_loc(loc, moved)
                line = _locate(written, lines)
                if err["type"] == "extra_forbidden":
                    key = str(loc[-1])
                    close = difflib.get_close_matches(key, _known_keys(loc), n=1, cutoff=0.6)
                    hint = f" (did you mean '{close[0]}'?)" if close else ""
                    text = _format(source, line, written, f"unknown key '{key}'{hint}")
                    if lenient:
                        warnings.append(text)
                        unknown.append(loc)
                    else:
                        problems.append(text)
                else:
                    msg = err["msg"].removeprefix("Value error, ")
                    problems.append(_format(source, line, written, msg))
            if not unknown or len(problems) > 0:
                return None, problems, warnings, data
            for loc in unknown:
                parent: Any = data
                for part in loc[:-1]:
                    parent = parent[part]
                parent.pop(loc[-1], None)
    return None, problems or [f"{source}: could not validate"], warnings, data


def parse_config_text(text: str, source: str, lenient: bool = False) -> tuple[HangarConfig, dict[str, Any],
                                                                                list[str]]:
    """Parse and validate YAML text; raise ``ConfigError`` listing every problem."""
    raw, lines = _parse_yaml(text, source)
    env_problems: list[tuple[Loc, str]] = []
    data = _interpolate(raw, (), env_problems)
    cfg, problems, warnings, _ = _collect_problems(data, lines, source, lenient)
    problems = [_format(source, _locate(loc, lines), loc, msg) for loc, msg in env_problems] + problems
    if problems or cfg is None:
        problems = problems or [f"{source}: invalid configuration"]
        summary = problems[0] if len(problems) == 1 else f"{len(problems)} problems in {source}: {problems[0]}"
        raise ConfigError(summary, problems)
    return cfg, raw if isinstance(raw, dict) else {}, warnings


def load_config(path: Path | None, lenient: bool = False) -> LoadedConfig:
    """Load ``path``, or the embedded default when ``path`` is None."""
    if path is None:
        text = resources.files("mcp_hangar").joinpath("default_config.yaml").read_text("utf-8")
        cfg, raw, warnings = parse_config_text(text, "<embedded default>", lenient)
        return LoadedConfig(cfg, None, raw, warnings, lenient, text)
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        raise ConfigFileMissing(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigFileMissing(f"{path}: cannot read: {exc}") from None
    cfg, raw, warnings = parse_config_text(text, str(path), lenient)
    return LoadedConfig(cfg, path, raw, warnings, lenient, text)


class ConfigFileMissing(ConfigError):
    """The file does not exist or cannot be read (exit code 2 in the CLI)."""

    exit_code = 2


class ConfigSyntaxError(ConfigError):
    """The file is not YAML (exit code 2 in the CLI)."""

    exit_code = 2


def find_config_path(explicit: str | None) -> Path | None:
    """``--config``, else ``$MCP_CONFIG``, else ./config.yaml, else the user config; None = embedded."""
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get("MCP_CONFIG")
    if env:
        return Path(env).expanduser()
    for candidate in (Path.cwd() / "config.yaml", Path.home() / ".config" / "mcp-hangar" / "config.yaml"):
        if candidate.is_file():
            return candidate
    return None


def default_tools(spec: ServerSpec) -> list[dict[str, Any]]:
    """Pre-declared tools as wire dicts."""
    return [t.model_dump(exclude_none=True) for t in spec.tools or []]


def spec_to_dict(spec: ServerSpec) -> dict[str, Any]:
    """A compact dict of the spec: only fields that differ from their defaults, plus ``mode``."""
    out = spec.model_dump(exclude_defaults=True, mode="json")
    out["mode"] = spec.mode
    return out


def interpolate(value: Any) -> Any:
    """``value`` (a string, or a list or mapping of them) with ``${ENV}`` references resolved as the loader
    resolves them; None when a referenced variable is not set and has no default."""
    problems: list[tuple[Loc, str]] = []
    out = _interpolate(value, (), problems)
    return None if problems else out
