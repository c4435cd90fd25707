"""Boot stays lean: the SDK's inbound validation is not loaded until a 2026-07-28 request needs it, and then
without the SDK's client and server stacks (the ``mcp`` package itself is never imported by Hangar)."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def _run(code: str) -> str:
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.strip()


def test_a_built_app_has_not_loaded_the_sdk_until_a_modern_request() -> None:
    out = _run("""
        import asyncio, sys, tempfile
        from pathlib import Path
        from mcp_hangar.config import LoadedConfig, parse_config_text
        from mcp_hangar.front.session import FrontSession
        from mcp_hangar.hangar import Hangar
        from mcp_hangar.web.app import create_app

        def sdk_modules():
            prefixes = ("mcp.", "mcp_types", "mcp_hangar._sdk")
            return sorted(m for m in sys.modules if m == "mcp" or m.startswith(prefixes))

        async def main():
            cfg, raw, warnings = parse_config_text("mcp_servers: {}", "<test>")
            with tempfile.TemporaryDirectory() as tmp:
                app = create_app(Hangar(LoadedConfig(cfg, None, raw, warnings), Path(tmp)), manage_lifecycle=False)
                await asyncio.sleep(0.5)  # a background preload, if there were one, would have started by now
                print(sdk_modules())
                session = FrontSession(app.state.mcp.front, None, transport="http")
                reply = await session.handle({"jsonrpc": "2.0", "id": 1, "method": "server/discover", "params": {
                    "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                              "io.modelcontextprotocol/clientCapabilities": {}}}})
                loaded = "mcp_hangar._sdk_inbound" in sys.modules
                print(reply["result"]["supportedVersions"], "mcp" in sys.modules, loaded)

        asyncio.run(main())
    """)
    assert out.splitlines() == ["[]", "['2026-07-28'] False True"]


def test_inbound_checks_load_without_the_mcp_package_and_classify_requests() -> None:
    out = _run("""
        import asyncio, sys
        from mcp_hangar.front import inbound
        asyncio.run(inbound.load_sdk())
        module = inbound.sdk()
        ok = module.classify_inbound_request(
            {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": {
                "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientCapabilities": {}}}},
            headers=None, supported_modern_versions=("2026-07-28",))
        bad = module.classify_inbound_request({"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}},
                                              headers=None, supported_modern_versions=("2026-07-28",))
        print("mcp" in sys.modules, module.__name__, ok.protocol_version,
              isinstance(bad, module.InboundLadderRejection))
    """)
    assert out == "False mcp_hangar._sdk_inbound 2026-07-28 True"


def test_error_responses_are_documented_by_reference_without_a_field_per_route_and_code() -> None:
    out = _run("""
        import tempfile
        from pathlib import Path
        from fastapi.routing import APIRoute
        from mcp_hangar.config import LoadedConfig, parse_config_text
        from mcp_hangar.hangar import Hangar
        from mcp_hangar.web import auth_routes, config, discovery, groups, servers, system
        from mcp_hangar.web.app import create_app
        from mcp_hangar.web.schemas import ErrorEnvelope

        cfg, raw, warnings = parse_config_text("mcp_servers: {}", "<test>")
        with tempfile.TemporaryDirectory() as tmp:
            app = create_app(Hangar(LoadedConfig(cfg, None, raw, warnings), Path(tmp)), manage_lifecycle=False)
            modules = (auth_routes, config, discovery, groups, servers, system)
            routes = [r for m in modules for r in m.router.routes if isinstance(r, APIRoute)]
            assert len(routes) > 40
            fields = [f for r in routes for f in r.response_fields.values()]
            built = sum(1 for f in fields if f.field_info.annotation is ErrorEnvelope)
            doc = app.api.openapi()
            answer = doc["paths"]["/api/auth/keys"]["post"]["responses"]["401"]
            schema = doc["components"]["schemas"]["ErrorEnvelope"]
            print(built, answer["description"], answer["content"]["application/json"]["schema"]["$ref"],
                  sorted(schema["properties"]) == sorted(ErrorEnvelope.model_fields), schema["required"])
    """)
    assert out == "0 Unauthorized #/components/schemas/ErrorEnvelope True ['error', 'message', 'status_code']"
