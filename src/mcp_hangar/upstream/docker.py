"""The ``docker`` upstream: an MCP server in a hardened container, spoken to over its stdio.

The container is run with the engine's own CLI (``docker run -i``, or ``podman run -i``) as a child
process. That keeps one code path for every stdio upstream (framing, limits, process groups, the
reaper), works the same with podman, and needs no extra client library. Defaults are locked down:
no network, read-only root filesystem, every capability dropped, no-new-privileges, a non-root user,
memory/CPU/PID limits, and no image pulls. Containers are labelled with the server and the Hangar
instance (a hash of its data directory), so a restarted Hangar removes the ones a crashed run left and
never touches containers it does not own.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path

import orjson

from ..config import ServerSpec
from ..errors import McpServerStartError
from ..reaper import Reaper
from .base import JsonObject, NotificationHandler, RequestHandler
from .era import EraChoice
from .stdio import StdioUpstream, child_environment

log = logging.getLogger(__name__)

NON_ROOT_USER = "65534:65534"  # nobody:nogroup
LABEL_MANAGED = "mcp.hangar.managed"
LABEL_SERVER = "mcp.hangar.server"
LABEL_INSTANCE = "mcp.hangar.instance"
DOCKER_ERROR_EXIT = 125  # the engine could not create or start the container


def instance_label(data_dir: Path) -> str:
    """Stable across restarts of the same Hangar (same data directory), different between Hangars."""
    return hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:12]


def engine_cli(spec: ServerSpec) -> str:
    found = shutil.which(spec.runtime)
    if found is None:
        raise McpServerStartError(f"the {spec.runtime} command was not found on PATH; install it "
                                  f"(Debian: apt-get install {'docker.io' if spec.runtime == 'docker' else 'podman'})")
    return found


def cli_environment(spec: ServerSpec) -> dict[str, str]:
    env = child_environment(spec.env, inherit_all=False)  # spec.env reaches the container via `-e NAME`
    if spec.docker_host:
        env["DOCKER_HOST"] = spec.docker_host
        env["CONTAINER_HOST"] = spec.docker_host  # podman's name for it
    elif "DOCKER_HOST" in os.environ:
        env["DOCKER_HOST"] = os.environ["DOCKER_HOST"]
    return env


def run_argv(cli: str, spec: ServerSpec, server_id: str, name: str, instance: str) -> list[str]:
    """``docker run -i`` with the hardened defaults. Values of ``env`` are not on the command line
    (visible to every local user): the container takes them from the CLI's environment."""
    user = spec.user or NON_ROOT_USER
    if user == "current":
        user = f"{os.getuid()}:{os.getgid()}"
    argv = [cli, "run", "-i", "--name", name, "--init",
            "--label", f"{LABEL_MANAGED}=true", "--label", f"{LABEL_SERVER}={server_id}",
            "--label", f"{LABEL_INSTANCE}={instance}",
            "--network", spec.network, "--user", user,
            "--memory", spec.resources.memory, "--memory-swap", spec.resources.memory,
            "--cpus", f"{spec.resources.cpus:g}", "--pids-limit", str(spec.resources.pids),
            "--pull", spec.pull]
    if spec.read_only:
        argv += ["--read-only", "--tmpfs", "/tmp:rw,noexec,nosuid,size=64m"]
    for cap in spec.cap_drop:
        argv += ["--cap-drop", cap]
    for cap in spec.cap_add:
        argv += ["--cap-add", cap]
    if spec.no_new_privileges:
        argv += ["--security-opt", "no-new-privileges"]
    for volume in spec.volumes:
        argv += ["-v", volume]
    for key in spec.env:
        argv += ["-e", key]
    if spec.cwd:
        argv += ["--workdir", spec.cwd]
    argv.append(str(spec.image))
    return argv + spec.argv()


async def engine(cli: str, env: dict[str, str], *args: str, timeout: float = 10.0) -> tuple[int, bytes]:
    """Run one engine CLI command; (exit code, stdout). Exit code -1 when it could not run at all."""
    try:
        proc = await asyncio.create_subprocess_exec(cli, *args, env=env, stdin=asyncio.subprocess.DEVNULL,
                                                    stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.DEVNULL)
    except OSError:
        return -1, b""
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return -1, b""
    return proc.returncode or 0, out


async def remove_orphans(cli: str, env: dict[str, str], instance: str) -> list[str]:
    """Remove containers left by an earlier run of this Hangar instance; returns their names."""
    code, out = await engine(cli, env, "ps", "-a", "--filter", f"label={LABEL_MANAGED}=true",
                             "--filter", f"label={LABEL_INSTANCE}={instance}", "--format", "{{.Names}}")
    names = [n for n in out.decode().split() if n] if code == 0 else []
    if names:
        await engine(cli, env, "rm", "-f", *names, timeout=30)
    return names


class DockerUpstream(StdioUpstream):
    """A container run with ``<runtime> run -i``; its stdio is the MCP channel."""

    def __init__(
        self,
        server_id: str,
        spec: ServerSpec,
        *,
        instance: str,
        reaper: Reaper | None,
        on_stderr: Callable[[str], None],
        on_notification: NotificationHandler | None,
        on_request: RequestHandler | None,
        client_version: str,
        era: EraChoice,
        client_capabilities: JsonObject | None,
    ) -> None:
        self.cli = engine_cli(spec)
        self.spec = spec
        self.container = f"hangar-{server_id}-{secrets.token_hex(4)}"
        self._env_cli = {**cli_environment(spec), **spec.env}
        super().__init__(
            server_id, run_argv(self.cli, spec, server_id, self.container, instance), env=self._env_cli,
            cwd=None, max_message_bytes=spec.max_response_bytes, reaper=reaper, on_stderr=on_stderr,
            on_notification=on_notification, on_request=on_request, client_version=client_version, era=era,
            client_capabilities=client_capabilities,
        )

    @property
    def container_id(self) -> str:
        return self.container

    def _cleanup_argv(self) -> list[str]:
        host = ["--host", self._env_cli["DOCKER_HOST"]] if self.spec.runtime == "docker" and \
            "DOCKER_HOST" in self._env_cli else []
        return [self.cli, *host, "rm", "-f", self.container]

    async def start(self, timeout: float) -> None:
        if self._reaper is not None:  # if Hangar is killed, the watchdog removes the container
            self._reaper.on_death(self._cleanup_argv())
        try:
            await super().start(timeout)
        except McpServerStartError as exc:
            reason = await self._diagnose()
            raise McpServerStartError(f"{reason} ({exc.message})" if reason else exc.message) from None

    async def _diagnose(self) -> str | None:
        """Why the container did not come up, in words that say what to do."""
        code, _ = await engine(self.cli, self._env_cli, "version", "--format", "{{.Server.Version}}")
        if code != 0:
            where = self.spec.docker_host or os.environ.get("DOCKER_HOST") or "the default socket"
            return (f"no {self.spec.runtime} engine is reachable at {where}: start the daemon or set "
                    "docker_host")
        code, _ = await engine(self.cli, self._env_cli, "image", "inspect", str(self.spec.image))
        if code != 0 and self.spec.pull == "never":
            return (f"image {self.spec.image!r} is not present locally and pull is 'never': load or build it "
                    "first, or set pull: missing")
        oom = await self.explain_exit(None)
        return oom

    async def explain_exit(self, code: int | None) -> str | None:
        rc, out = await engine(self.cli, self._env_cli, "inspect", "--format", "{{json .State}}", self.container)
        if rc != 0:
            return None
        try:
            state = orjson.loads(out)
        except orjson.JSONDecodeError:
            return None
        if isinstance(state, dict) and state.get("OOMKilled"):
            return f"the container was killed for exceeding its memory limit ({self.spec.resources.memory})"
        return None

    async def close(self, grace: float = 1.5) -> int | None:
        """stdin close, then SIGTERM (the CLI passes it on), then SIGKILL; then the container is removed
        whatever state it is in."""
        code = await super().close(grace)
        await engine(self.cli, self._env_cli, "rm", "-f", self.container, timeout=30)
        if self._reaper is not None:
            self._reaper.on_death(self._cleanup_argv(), register=False)
        return code
