"""The health check a proposal passes before it is offered: start it apart from the fleet (on a bus of
its own, so no fleet observer sees it), complete the handshake and ``tools/list``, stop it."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from ..config import ServerSpec
from ..errors import HangarError
from ..events import EventBus
from ..reaper import Reaper
from ..supervisor import ManagedServer


async def health_check(name: str, spec: ServerSpec, *, timeout: float, reaper: Reaper | None, instance: str,
                       running: set[ManagedServer]) -> tuple[str | None, list[dict[str, Any]] | None]:
    """(None, tools) when it works; (reason, None) otherwise. ``running`` holds the server while it runs,
    so that a shutdown can stop it."""
    trial = spec.model_copy(update={"startup_timeout_s": min(spec.startup_timeout_s, timeout)})
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    delay = 0.1
    while True:
        server = ManagedServer(name, trial, source="discovery", bus=EventBus(), reaper=reaper, instance=instance)
        running.add(server)
        try:
            async with asyncio.timeout_at(deadline):
                await server.ensure_ready(explicit=True)
            return None, list(server.tools)
        except TimeoutError:
            return f"health check: no answer to the handshake and tools/list within {timeout:g} s", None
        except HangarError as exc:
            # A remote endpoint may be a container still starting its server: try again within the budget.
            # Servers Hangar starts itself are waited for by the handshake.
            if spec.mode != "remote" or loop.time() + delay >= deadline:
                last = next((ln.content for ln in reversed(server.logs) if not ln.content.startswith("[hangar]")),
                            None)
                return f"health check failed: {exc.message}" + (f" (stderr: {last})" if last else ""), None
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(server.stop("discovery_check"))
            running.discard(server)
        await asyncio.sleep(delay)
        delay = min(delay * 2, 2.0)
