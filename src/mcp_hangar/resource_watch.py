"""Resource subscriptions towards an upstream, shared by every front client that subscribed."""

from __future__ import annotations

import asyncio

from .upstream.base import JsonObject, Upstream


class ResourceWatches:
    """Mixin of ``ManagedServer``: one ``subscriptions/listen`` per watched URI, reference-counted."""

    def __init__(self) -> None:
        self._resource_watches: dict[str, tuple[int, asyncio.Future[JsonObject] | None]] = {}

    async def ensure_ready(self, *, explicit: bool = False) -> Upstream:
        raise NotImplementedError

    async def watch_resource(self, uri: str, subscribe: bool) -> None:
        """Resource subscriptions towards a 2026-07-28 upstream: one ``subscriptions/listen`` per URI,
        shared by every front client that subscribed (reference-counted); its updates come back as
        ordinary notifications."""
        count, task = self._resource_watches.get(uri, (0, None))
        if subscribe:
            if task is None or task.done():
                upstream = await self.ensure_ready()
                params = {"notifications": {"resourceSubscriptions": [uri]}}
                task = asyncio.ensure_future(upstream.request("subscriptions/listen", params, 365 * 86400.0))
                task.add_done_callback(lambda t: t.cancelled() or t.exception())
            self._resource_watches[uri] = (count + 1, task)
        elif count <= 1:
            self._resource_watches.pop(uri, None)
            if task is not None:
                task.cancel()  # the upstream is told with notifications/cancelled
        else:
            self._resource_watches[uri] = (count - 1, task)
