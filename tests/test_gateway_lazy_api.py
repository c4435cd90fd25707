"""The gateway serves /mcp, the probes and /metrics without loading the REST API; the first request that
needs the API loads it once (concurrent ones wait for the same load), and MCP calls are answered while it
loads. Run in a fresh interpreter, since the test process has long imported FastAPI."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import httpx

from conftest import loaded_config, raw_server
from mcp_hangar.hangar import Hangar
from mcp_hangar.web.gateway import Gateway


def _run(code: str) -> str:
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.strip()


def test_probes_metrics_and_mcp_are_served_before_the_rest_api_loads_once() -> None:
    out = _run(f"""
        import asyncio, json, sys, tempfile
        from pathlib import Path
        import httpx, yaml
        from mcp_hangar.config import LoadedConfig, parse_config_text
        from mcp_hangar.hangar import Hangar
        from mcp_hangar.web.gateway import Gateway

        MODERN = "2026-07-28"
        META = {{"io.modelcontextprotocol/protocolVersion": MODERN, "io.modelcontextprotocol/clientCapabilities": {{}}}}
        HEADERS = {{"accept": "application/json, text/event-stream", "content-type": "application/json",
                   "mcp-protocol-version": MODERN, "mcp-method": "tools/call", "mcp-name": "raw__echo"}}

        def rest_loaded():
            return "fastapi" in sys.modules or "mcp_hangar.web.app" in sys.modules

        async def call(client, i):
            body = {{"jsonrpc": "2.0", "id": i, "method": "tools/call",
                    "params": {{"name": "raw__echo", "arguments": {{"text": f"t{{i}}"}}, "_meta": META}}}}
            r = await client.post("/mcp", headers=HEADERS, json=body)
            return r.status_code == 200 and f"t{{i}}" in r.text

        async def main():
            text = yaml.safe_dump({{"mcp_servers": {{"raw": {raw_server()!r}}}}})
            cfg, raw, warnings = parse_config_text(text, "<test>")
            with tempfile.TemporaryDirectory() as tmp:
                hangar = Hangar(LoadedConfig(cfg, None, raw, warnings), Path(tmp))
                app = Gateway(hangar, manage_lifecycle=False)
                await hangar.start()
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
                    ready = await client.get("/health/ready")
                    live = await client.get("/health/live")
                    metrics = await client.get("/metrics")
                    ok = await call(client, 1)
                    print(ready.status_code, ready.json()["status"], live.json(), metrics.status_code,
                          metrics.headers["content-type"].startswith("text/plain"), ok, rest_loaded())
                    # Four REST requests at once and MCP calls beside them: one load, every answer right.
                    rest = [client.get("/api/mcp_servers") for _ in range(4)]
                    calls = [call(client, i) for i in range(2, 12)]
                    answers = await asyncio.gather(*rest, *calls)
                    listed = [r.json()["mcp_servers"][0]["mcp_server_id"] for r in answers[:4]]
                    print(listed, all(answers[4:]), rest_loaded(), app.api is not None)
                    labels = {{"method": "GET", "route": "/health/ready", "status": "200"}}
                    counted = app.metrics.registry.get_sample_value("mcp_hangar_http_requests_total", labels)
                    doc = (await client.get("/openapi.json")).json()
                    print(counted, "/health/ready" in doc["paths"], "/api/mcp_servers" in doc["paths"])
                await hangar.aclose()

        asyncio.run(main())
    """)
    assert out.splitlines() == [
        "200 healthy {'status': 'healthy'} 200 True True False",
        "['raw', 'raw', 'raw', 'raw'] True True True",
        "1.0 True True",
    ]


class _FailsOnce(Gateway):
    """A gateway whose first REST API load fails (injected): a broken install, say."""

    failures = 1

    async def _load_api(self) -> Any:
        if self.failures:
            self.failures -= 1
            raise RuntimeError("injected load failure")
        return await super()._load_api()


async def test_a_failed_api_load_answers_500_in_the_envelope_and_the_next_request_loads_it(tmp_path: Path) -> None:
    hangar = Hangar(loaded_config({}), tmp_path / "data")
    app = _FailsOnce(hangar, manage_lifecycle=False)
    await hangar.start()
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as client:
            r = await client.get("/api/mcp_servers")
            assert r.status_code == 500 and r.json() == {
                "error": "InternalServerError", "message": "the REST API could not be loaded", "status_code": 500}
            assert (await client.get("/health/live")).status_code == 200  # the lean paths never needed it
            r = await client.get("/api/mcp_servers")
            assert r.status_code == 200 and r.json()["mcp_servers"] == []
    finally:
        await hangar.aclose()
