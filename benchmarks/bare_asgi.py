"""The HTTP baseline: a bare ASGI endpoint answering ``tools/call`` itself at /mcp (no Hangar).

Served by uvicorn with the same stack Hangar's HTTP front uses (uvloop, httptools, no access log, and
Hangar's protocol that writes a response's head and body in one system call, ``web/coalesce.py``), so
the ratio HTTP front / bare endpoint isolates Hangar's own cost. ``--plain-uvicorn`` serves it with
uvicorn's own protocol instead.

    .venv/bin/python benchmarks/bare_asgi.py --port 8123 [--plain-uvicorn]
"""

from __future__ import annotations

import argparse
import json
from typing import Any

Scope = dict[str, Any]


async def app(scope: Scope, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    status = 200
    if scope["path"] == "/health/ready":
        payload: Any = {"status": "ready"}
    else:
        msg = json.loads(body or b"{}")
        if msg.get("method") == "tools/call":
            args = msg["params"].get("arguments") or {}
            payload = {"jsonrpc": "2.0", "id": msg.get("id"), "result": {
                "content": [{"type": "text", "text": str(args.get("text", ""))}], "isError": False}}
        else:
            status = 404
            payload = {"jsonrpc": "2.0", "id": msg.get("id"), "error": {"code": -32601, "message": "not found"}}
    data = json.dumps(payload).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--plain-uvicorn", action="store_true", help="uvicorn's own HTTP protocol")
    args = parser.parse_args()
    http: Any = "auto"
    if not args.plain_uvicorn:
        from mcp_hangar.web.coalesce import CoalescingHttpToolsProtocol

        http = CoalescingHttpToolsProtocol
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False,
                server_header=False, lifespan="on", http=http)


if __name__ == "__main__":
    main()
