"""Resources, resource templates, prompts and completions, aggregated across running upstreams.

Resource URIs are mapped reversibly to ``hangar://<server_id>/<original uri>`` (templates too, so
their variables survive), prompts are named like tools, and ``completion/complete`` goes to the server
that owns the prompt or resource its ``ref`` names. A server whose ``namespace`` is the empty string
keeps its names and URIs as they are.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from ..errors import HangarError, UpstreamRpcError, UpstreamTimeoutError
from ..models import State
from .naming import disambiguate, exposed_name

if TYPE_CHECKING:
    from ..hangar import Hangar
    from ..supervisor import ManagedServer

log = logging.getLogger(__name__)

JsonObject = dict[str, Any]
URI_SCHEME = "hangar://"
MAX_PAGES = 100


class FeatureError(Exception):
    """A JSON-RPC error to send back: (code, message, data)."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code, self.message, self.data = code, message, data


def map_uri(server: ManagedServer, uri: str) -> str:
    if server.spec.namespace == "":
        return uri
    return f"{URI_SCHEME}{server.server_id}/{uri}"


class Features:
    """Serves the list/read/get/complete methods of the resources, prompts and completion features."""

    def __init__(self, hangar: Hangar) -> None:
        self.hangar = hangar
        self._prompts: dict[str, tuple[str, str]] = {}  # exposed name -> (server id, prompt name)
        self._plain_uris: dict[str, str] = {}  # unmapped URI -> server id, for namespace ""

    # ------------------------------------------------------------------ helpers

    def _serving(self, capability: str) -> list[ManagedServer]:
        out = []
        for server in self.hangar.list_servers():
            upstream = server.upstream
            if server.state == State.READY and upstream is not None and capability in upstream.capabilities:
                out.append(server)
        return out

    async def request(self, server: ManagedServer, method: str, params: JsonObject) -> JsonObject:
        try:
            return await server.request(method, params)
        except UpstreamRpcError as exc:
            raise FeatureError(exc.jsonrpc_code, str(exc.error.get("message") or exc.message),
                               exc.error.get("data")) from None
        except UpstreamTimeoutError as exc:
            raise FeatureError(-32001, exc.message) from None
        except HangarError as exc:
            raise FeatureError(-32603, exc.message, {"error_type": exc.error_name}) from None

    async def _collect(self, server: ManagedServer, method: str, key: str) -> list[JsonObject]:
        items: list[JsonObject] = []
        cursor: Any = None
        for _ in range(MAX_PAGES):
            result = await self.request(server, method, {"cursor": cursor} if cursor else {})
            page = result.get(key)
            if isinstance(page, list):
                items.extend(i for i in page if isinstance(i, dict))
            cursor = result.get("nextCursor")
            if not cursor:
                break
        return items

    async def _gather(self, capability: str, method: str, key: str) -> list[tuple[ManagedServer, list[JsonObject]]]:
        servers = self._serving(capability)

        async def one(server: ManagedServer) -> tuple[ManagedServer, list[JsonObject]]:
            try:
                return server, await self._collect(server, method, key)
            except FeatureError as exc:  # one failing upstream never breaks the aggregate
                log.warning("%s: %s failed: %s", server.server_id, method, exc.message)
                return server, []

        return list(await asyncio.gather(*(one(s) for s in servers)))

    def _server_for_uri(self, uri: str) -> tuple[ManagedServer, str]:
        if uri.startswith(URI_SCHEME):
            server_id, sep, original = uri[len(URI_SCHEME):].partition("/")
            server = self.hangar.servers.get(server_id)
            if server is not None and sep and original:
                return server, original
        owner = self._plain_uris.get(uri)
        if owner is not None and owner in self.hangar.servers:
            return self.hangar.servers[owner], uri
        plain = [s for s in self.hangar.list_servers() if s.spec.namespace == ""]
        if len(plain) == 1:
            return plain[0], uri
        raise FeatureError(-32602, f"Resource not found: {uri}", {"uri": uri})

    # ------------------------------------------------------------------ resources

    async def list_resources(self) -> list[JsonObject]:
        out = []
        for server, items in await self._gather("resources", "resources/list", "resources"):
            for item in items:
                uri = item.get("uri")
                if isinstance(uri, str):
                    if server.spec.namespace == "":
                        self._plain_uris[uri] = server.server_id
                    out.append({**item, "uri": map_uri(server, uri)})
        return out

    async def list_templates(self) -> list[JsonObject]:
        out = []
        for server, items in await self._gather("resources", "resources/templates/list", "resourceTemplates"):
            for item in items:
                template = item.get("uriTemplate")
                if isinstance(template, str):
                    out.append({**item, "uriTemplate": map_uri(server, template)})
        return out

    async def read_resource(self, params: JsonObject) -> JsonObject:
        uri = params.get("uri")
        if not isinstance(uri, str):
            raise FeatureError(-32602, "resources/read needs a 'uri'")
        server, original = self._server_for_uri(uri)
        result = await self.request(server, "resources/read", {**params, "uri": original})
        contents = result.get("contents")
        if isinstance(contents, list):
            result["contents"] = [
                {**c, "uri": map_uri(server, c["uri"])} if isinstance(c, dict) and isinstance(c.get("uri"), str)
                else c for c in contents
            ]
        return result

    async def subscribe(self, method: str, params: JsonObject) -> JsonObject:
        uri = params.get("uri")
        if not isinstance(uri, str):
            raise FeatureError(-32602, f"{method} needs a 'uri'")
        server, original = self._server_for_uri(uri)
        try:
            upstream = await server.ensure_ready()
        except HangarError as exc:
            raise FeatureError(-32603, exc.message) from None
        if upstream.era == "modern":  # no resources/subscribe in that era: a listen stream instead
            await server.watch_resource(original, method == "resources/subscribe")
            return {}
        return await self.request(server, method, {**params, "uri": original})

    # ------------------------------------------------------------------ prompts

    async def list_prompts(self) -> list[JsonObject]:
        separator = self.hangar.loaded.config.front.tool_separator
        routes: dict[str, tuple[str, str]] = {}
        out = []
        for server, items in await self._gather("prompts", "prompts/list", "prompts"):
            for item in items:
                name = item.get("name")
                if not isinstance(name, str):
                    continue
                exposed = exposed_name(server.server_id, name, separator, namespace=server.spec.namespace)
                if exposed in routes:
                    exposed = disambiguate(exposed, server.server_id, name)
                routes[exposed] = (server.server_id, name)
                out.append({**item, "name": exposed})
        self._prompts = routes
        return out

    async def _prompt_route(self, name: str) -> tuple[ManagedServer, str]:
        if name not in self._prompts:
            await self.list_prompts()
        route = self._prompts.get(name)
        if route is None or route[0] not in self.hangar.servers:
            raise FeatureError(-32602, f"Unknown prompt: {name}")
        return self.hangar.servers[route[0]], route[1]

    async def get_prompt(self, params: JsonObject) -> JsonObject:
        name = params.get("name")
        if not isinstance(name, str):
            raise FeatureError(-32602, "prompts/get needs a 'name'")
        server, original = await self._prompt_route(name)
        return await self.request(server, "prompts/get", {**params, "name": original})

    # ------------------------------------------------------------------ completion

    async def complete(self, params: JsonObject) -> JsonObject:
        ref = params.get("ref")
        if not isinstance(ref, dict):
            raise FeatureError(-32602, "completion/complete needs a 'ref'")
        if ref.get("type") == "ref/prompt" and isinstance(ref.get("name"), str):
            server, original = await self._prompt_route(ref["name"])
            return await self.request(server, "completion/complete", {**params, "ref": {**ref, "name": original}})
        if ref.get("type") == "ref/resource" and isinstance(ref.get("uri"), str):
            server, original = self._server_for_uri(ref["uri"])
            return await self.request(server, "completion/complete", {**params, "ref": {**ref, "uri": original}})
        raise FeatureError(-32602, "completion/complete: 'ref' must be a ref/prompt or a ref/resource")
