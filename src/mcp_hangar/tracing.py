"""OpenTelemetry tracing: a span for each front request, one for its routing, one for the upstream call.

The W3C trace context reaches upstreams in the request's ``_meta`` (``traceparent``, ``tracestate``)
and, for remote upstreams, in the HTTP headers too. A client's own ``traceparent`` (in ``_meta`` or
as an HTTP header) becomes the parent of the front span.

Off by default (``observability.tracing: true`` turns it on; the SDK comes with the ``[otel]`` extra).
The exporter follows the standard variables: ``OTEL_TRACES_EXPORTER`` (``otlp`` by default,
``console``, ``none``), ``OTEL_EXPORTER_OTLP_*``, ``OTEL_SERVICE_NAME``, ``OTEL_TRACES_SAMPLER``.
While off, the call path pays one check of ``ENABLED`` and nothing else; the OpenTelemetry packages
are not even imported.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.propagators.textmap import TextMapPropagator
    from opentelemetry.trace import Tracer, TracerProvider

    from .upstream.base import Upstream

log = logging.getLogger(__name__)

JsonObject = dict[str, Any]
ENABLED = False  # read on the call path: keep it a plain module global
TRACE_KEYS = ("traceparent", "tracestate")
NAME_BEARING = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}

_tracer: Tracer | None = None
_propagator: TextMapPropagator | None = None
_owned_provider: Any = None  # a provider built here from the environment, shut down by ``shutdown``


def enable(provider: TracerProvider) -> None:
    """Trace with ``provider`` (tests pass one with an in-memory exporter)."""
    global ENABLED, _tracer, _propagator
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    from . import __version__

    _tracer = provider.get_tracer("mcp_hangar", __version__)
    _propagator = TraceContextTextMapPropagator()
    ENABLED = True


def disable() -> None:
    global ENABLED, _tracer
    ENABLED = False
    _tracer = None


def setup(enabled: bool) -> bool:
    """Turn tracing on from the config and the OTEL_* environment; False (with a warning) when it cannot be."""
    if not enabled or os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
    except ImportError:
        log.warning("observability.tracing is on but the OpenTelemetry SDK is not installed "
                    "(pip install 'mcp-hangar[otel]'); tracing stays off")
        return False
    global _owned_provider
    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME") or "mcp-hangar"})
    provider = SdkTracerProvider(resource=resource)
    exporters = [e.strip().lower() for e in os.environ.get("OTEL_TRACES_EXPORTER", "otlp").split(",") if e.strip()]
    for name in exporters:
        exporter: SpanExporter | None = None
        if name == "console":
            exporter = ConsoleSpanExporter()
        elif name == "otlp":
            exporter = _otlp_exporter()
        elif name != "none":
            log.warning("OTEL_TRACES_EXPORTER: unknown exporter %r ignored", name)
        if exporter is not None:
            provider.add_span_processor(BatchSpanProcessor(exporter))
    _owned_provider = provider
    enable(provider)
    log.info("tracing on (exporters: %s)", ", ".join(exporters) or "none")
    return True


def _otlp_exporter() -> Any:
    protocol = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
    kind = "grpc" if protocol == "grpc" else "http"
    try:
        module = importlib.import_module(f"opentelemetry.exporter.otlp.proto.{kind}.trace_exporter")
    except ImportError:
        log.warning("the OTLP exporter is not installed (pip install 'mcp-hangar[otel]'); spans are not exported")
        return None
    return module.OTLPSpanExporter()  # endpoint, headers, timeout: from OTEL_EXPORTER_OTLP_*


def shutdown() -> None:
    """Flush and stop an exporter set up by ``setup``."""
    global _owned_provider
    provider, _owned_provider = _owned_provider, None
    disable()
    if provider is not None:
        with contextlib.suppress(Exception):
            provider.shutdown()


# --------------------------------------------------------------------------- spans (only when ENABLED)


def _carrier_of(meta: Any) -> dict[str, str]:
    if not isinstance(meta, dict):
        return {}
    return {k: meta[k] for k in TRACE_KEYS if isinstance(meta.get(k), str)}


@contextlib.contextmanager
def front_span(method: str, params: JsonObject, headers: Mapping[str, str] | None) -> Iterator[None]:
    """The span of one request to Hangar's MCP front."""
    from opentelemetry.trace import SpanKind

    assert _tracer is not None and _propagator is not None
    carrier = _carrier_of(params.get("_meta")) or {k: headers[k] for k in TRACE_KEYS if headers and k in headers}
    parent = _propagator.extract(carrier) if carrier else None
    key = NAME_BEARING.get(method)
    target = params.get(key) if key else None
    attributes: dict[str, str] = {"mcp.method.name": method, "rpc.system": "jsonrpc"}
    if isinstance(target, str):
        attributes["gen_ai.tool.name" if method == "tools/call" else "mcp.target"] = target
    name = f"{method} {target}" if isinstance(target, str) else method
    with _tracer.start_as_current_span(name, context=parent, kind=SpanKind.SERVER, attributes=attributes):
        yield


@contextlib.contextmanager
def route_span(tool: str, target_id: str, upstream_tool: str, group: bool) -> Iterator[None]:
    """Routing a tool call to its server or group (a group's attempts are its children)."""
    assert _tracer is not None
    attributes = {"gen_ai.tool.name": tool, "hangar.target": target_id, "hangar.target.kind":
                  "group" if group else "mcp_server", "hangar.upstream_tool": upstream_tool}
    with _tracer.start_as_current_span("hangar.route", attributes=attributes):
        yield


async def upstream_call(server_id: str, upstream: Upstream, method: str, params: JsonObject,
                        timeout: float) -> JsonObject:
    """``upstream.request`` inside a client span whose context travels in ``params._meta``."""
    from opentelemetry.trace import SpanKind, Status, StatusCode

    assert _tracer is not None and _propagator is not None
    key = NAME_BEARING.get(method)
    target = params.get(key) if key else None
    name = f"{method} {target}" if isinstance(target, str) else method
    attributes = {"mcp.method.name": method, "hangar.mcp_server.id": server_id}
    if isinstance(target, str):
        attributes["gen_ai.tool.name"] = target
    with _tracer.start_as_current_span(name, kind=SpanKind.CLIENT, attributes=attributes) as span:
        carrier: dict[str, str] = {}
        _propagator.inject(carrier)
        meta = params.get("_meta")
        params = {**params, "_meta": {**(meta if isinstance(meta, dict) else {}), **carrier}}
        result = await upstream.request(method, params, timeout)
        if result.get("isError"):
            span.set_status(Status(StatusCode.ERROR, "the tool reported an error"))
        return result


def inject_headers(headers: dict[str, str]) -> None:
    """Add the current trace context to an outgoing HTTP request's headers."""
    if _propagator is not None:
        _propagator.inject(headers)


def current_ids() -> tuple[str, str] | None:
    """(trace id, span id) of the current span, as hex, for log records; None outside a span."""
    from opentelemetry.trace import get_current_span

    context = get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return f"{context.trace_id:032x}", f"{context.span_id:016x}"
