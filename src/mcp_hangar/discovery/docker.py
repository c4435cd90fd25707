"""Docker containers as a discovery source, through the Docker Engine API (the ``docker`` SDK).

A running container labelled ``mcp.hangar.enabled=true`` proposes one server:

- ``mcp.hangar.name``: the server id (default: the container name);
- ``mcp.hangar.mode``: ``remote`` (an HTTP endpoint on the container's address, ``mcp.hangar.port`` and
  ``mcp.hangar.path``, default ``/mcp``) or ``docker`` (Hangar runs the container's image itself as a stdio
  server, with its command and its bind mounts, hardened like any docker-mode server);
- ``mcp.hangar.group``: optional group to join on approval.

The engine's event stream (container start, stop, die, destroy) makes Hangar rescan at once; the
periodic cycle is the safety net. SDK calls are blocking and run on worker threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import AsyncIterator
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..errors import DiscoverySourceError
from .base import WATCHING, Discovered, discovered_from_dict, fingerprint

LABEL = "mcp.hangar"
EVENTS = ["start", "stop", "die", "destroy", "pause", "unpause"]


class DockerSourceConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # A socket path or an engine URL (unix://, tcp://); default $DOCKER_HOST, else the standard socket.
    socket_path: str | None = Field(default=None, min_length=1)
    timeout_s: float = Field(default=10, gt=0, le=300)


def engine_url(socket_path: str | None) -> str:
    if not socket_path:
        return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    return f"unix://{socket_path}" if socket_path.startswith("/") else socket_path


def _translate(url: str, exc: Exception) -> DiscoverySourceError:
    return DiscoverySourceError(f"docker engine at {url}: {type(exc).__name__}: {exc}")


def _foreign_errors() -> tuple[type[Exception], ...]:
    import docker.errors
    import requests

    return (docker.errors.DockerException, requests.exceptions.RequestException, OSError)


class DockerSource:
    source_type = "docker"
    config_model = DockerSourceConfig

    def __init__(self, source_id: str, config: dict[str, Any]) -> None:
        self.source_id = source_id
        self.settings = DockerSourceConfig.model_validate(config)
        self.url = engine_url(self.settings.socket_path)
        self._client: Any = None
        self._stream: Any = None
        self._closed = False
        self._lock = threading.Lock()

    def _api(self, timeout: float | None) -> Any:
        import docker

        return docker.APIClient(base_url=self.url, timeout=timeout, version="auto")

    async def scan(self) -> list[Discovered]:
        return await asyncio.to_thread(self._scan)

    def _scan(self) -> list[Discovered]:
        try:
            with self._lock:
                if self._client is None:
                    self._client = self._api(self.settings.timeout_s)
                client = self._client
            rows = client.containers(filters={"label": f"{LABEL}.enabled=true", "status": "running"})
            infos = []
            for row in rows:
                with contextlib.suppress(*_foreign_errors()):  # it may be gone by now
                    infos.append(client.inspect_container(row["Id"]))
        except _foreign_errors() as exc:
            with self._lock:
                self._client = None  # reconnect next time (the engine may come back elsewhere)
            raise _translate(self.url, exc) from None
        out = [container_to_discovered(info, self.source_id, self.url) for info in infos]
        return [d for d in out if d is not None]

    async def watch(self) -> AsyncIterator[str]:
        """Hints from the engine's event stream; ends with ``DiscoverySourceError`` when the stream breaks."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[str | Exception | None] = asyncio.Queue()

        def put(item: str | Exception | None) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is closing
                loop.call_soon_threadsafe(queue.put_nowait, item)

        def pump() -> None:
            try:
                api = self._api(None)  # no read timeout: the stream is quiet until something happens
                stream = api.events(decode=True, filters={"type": "container", "label": f"{LABEL}.enabled=true",
                                                          "event": EVENTS})
                with self._lock:
                    self._stream = stream
                if self._closed:
                    stream.close()
                put(WATCHING)  # the engine has the subscription: nothing from now on is missed
                for event in stream:
                    put(f"{event.get('Action') or event.get('status')} {str(event.get('id', ''))[:12]}")
            except Exception as exc:
                if not self._closed:
                    put(_translate(self.url, exc))
            finally:
                put(None)

        thread = threading.Thread(target=pump, name=f"discovery-{self.source_id}-events", daemon=True)
        thread.start()
        try:
            while True:
                item = await queue.get()
                if item is None:
                    if not self._closed:
                        raise DiscoverySourceError(f"docker engine at {self.url}: the event stream ended")
                    return
                if isinstance(item, Exception):
                    raise item
                yield item
        finally:
            await asyncio.to_thread(self._close_stream)
            await asyncio.to_thread(thread.join, 5)

    def _close_stream(self) -> None:
        with self._lock:
            stream, self._stream = self._stream, None
        if stream is not None:
            with contextlib.suppress(Exception):
                stream.close()

    async def close(self) -> None:
        self._closed = True
        await asyncio.to_thread(self._close_stream)
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()


def container_address(info: dict[str, Any]) -> str | None:
    settings = info.get("NetworkSettings") or {}
    if (info.get("HostConfig") or {}).get("NetworkMode") == "host":
        return "127.0.0.1"
    for net in (settings.get("Networks") or {}).values():
        if net and net.get("IPAddress"):
            return str(net["IPAddress"])
    return settings.get("IPAddress") or None


def container_to_discovered(info: dict[str, Any], source_id: str, url: str) -> Discovered | None:
    """The proposal of one inspected container (None when it is not labelled for Hangar)."""
    config = info.get("Config") or {}
    labels: dict[str, str] = config.get("Labels") or {}
    if labels.get(f"{LABEL}.enabled", "").lower() != "true":
        return None
    cname = str(info.get("Name", "")).lstrip("/")
    name = labels.get(f"{LABEL}.name") or cname
    origin = f"container {cname} ({str(info.get('Id', ''))[:12]})"
    mode = labels.get(f"{LABEL}.mode") or ("remote" if labels.get(f"{LABEL}.port") else "docker")
    data: dict[str, Any] = {"name": name}
    if labels.get(f"{LABEL}.group"):
        data["group"] = labels[f"{LABEL}.group"]
    error = None
    if mode == "remote":
        port, address = labels.get(f"{LABEL}.port"), container_address(info)
        path = labels.get(f"{LABEL}.path") or "/mcp"
        if not port or not port.isdigit():
            error = f"label {LABEL}.port (a port number) is required with {LABEL}.mode=remote"
        elif address is None:
            network = (info.get("HostConfig") or {}).get("NetworkMode")
            error = (f"the container has no network address (network {network!r}): attach it to a network "
                     f"or use {LABEL}.mode=docker")
        else:
            data.update(mode="remote", endpoint=f"http://{address}:{port}/{path.lstrip('/')}")
    elif mode == "docker":
        command = [*(config.get("Entrypoint") or []), *(config.get("Cmd") or [])]
        volumes = sorted(f"{m['Source']}:{m['Destination']}:{'rw' if m.get('RW') else 'ro'}"
                         for m in info.get("Mounts") or [] if m.get("Type") == "bind")
        data.update(mode="docker", image=config.get("Image"), volumes=volumes, docker_host=url)
        if command:
            data["command"] = command
    else:
        error = f"label {LABEL}.mode must be 'remote' or 'docker', not {mode!r}"
    if error is not None:
        return Discovered(name, source_id, None, fingerprint({**labels, "error": error}), origin=origin, error=error)
    return discovered_from_dict(data, source_id=source_id, default_name=name, origin=origin)
