"""The ``mcp-hangar`` command line. Errors become messages and exit codes here, nowhere else.

Exit codes: 0 success (``serve`` stopped by SIGTERM included), 1 invalid input (for example an
invalid config), 2 a missing file or a system problem (port in use, unusable data directory),
130 interrupted (SIGINT).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import ipaddress
import logging
import os
import signal
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer

from . import __version__
from .config import LoadedConfig, find_config_path, load_config
from .errors import ConfigError, HangarError
from .logs import setup_logging

if TYPE_CHECKING:
    from .hangar import Hangar

app = typer.Typer(
    name="mcp-hangar",
    help="MCP Hangar: run a fleet of MCP servers and expose them as one.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(help="Work with configuration files.", no_args_is_help=True)
app.add_typer(config_app, name="config")
auth_app = typer.Typer(help="Authentication: the first admin key.", no_args_is_help=True)
app.add_typer(auth_app, name="auth")

log = logging.getLogger("mcp_hangar")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"mcp-hangar {__version__}")
        raise typer.Exit(0)


@app.callback()
def main_callback(
    version: Annotated[bool, typer.Option("--version", "-V", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """MCP Hangar."""


def default_data_dir() -> Path:
    env = os.environ.get("MCP_HANGAR_DATA_DIR")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("mcp-hangar", appauthor=False))


def _fail(message: str, code: int) -> typer.Exit:
    """Report a fatal problem of ``serve`` (as a log record when logs are JSON) and give its exit."""
    _error(message)
    return typer.Exit(code)


def _error(message: str) -> None:
    if _json_logs_on:
        log.error("%s", message)  # a JSON log consumer must see errors as JSON lines too
    else:
        typer.echo(f"error: {message}", err=True)


_json_logs_on = False


def _setup_logging(level: str, json_logs: bool) -> None:
    global _json_logs_on
    setup_logging(level, json_logs)
    _json_logs_on = json_logs


def _load(config: str | None, lenient: bool) -> LoadedConfig:
    path = find_config_path(config)
    try:
        loaded = load_config(path, lenient=lenient)
    except ConfigError as exc:
        for problem in exc.problems:
            _error(problem)
        raise typer.Exit(exc.exit_code) from None
    return loaded


def _level(name: str | None) -> str | None:
    """The canonical name of a log level, or None when ``name`` is not one."""
    upper = (name or "").strip().upper()
    return upper if upper in LOG_LEVELS else None


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        hint = "; is another server using it? pick another --port" if exc.errno == errno.EADDRINUSE else ""
        raise _fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}{hint}", 2) from None
    sock.listen(2048)
    return sock  # not inheritable: an upstream must never hold Hangar's port open


@app.command()
def serve(
    config: Annotated[str | None, typer.Option("--config", "-c", help="Config file (else $MCP_CONFIG, "
                                               "./config.yaml, ~/.config/mcp-hangar/config.yaml, "
                                               "or the embedded default).")] = None,
    http: Annotated[bool, typer.Option("--http", help="Serve HTTP (REST, /mcp, probes, metrics) "
                                       "instead of MCP on stdio.")] = False,
    host: Annotated[str, typer.Option(envvar="MCP_HTTP_HOST", help="HTTP bind address.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", "-p", envvar="MCP_HTTP_PORT", min=0, max=65535,
                                      help="HTTP port (0 picks a free one).")] = 8000,
    data_dir: Annotated[Path | None, typer.Option(help="Where state is kept (default: the per-user "
                                                  "data folder, or $MCP_HANGAR_DATA_DIR).")] = None,
    log_level: Annotated[str | None, typer.Option(envvar="MCP_LOG_LEVEL", help="DEBUG, INFO, WARNING, "
                                                  "ERROR (default: the config's logging.level, "
                                                  "else INFO).")] = None,
    json_logs: Annotated[bool | None, typer.Option("--json-logs/--no-json-logs", envvar="MCP_JSON_LOGS",
                                                   help="Log JSON lines (default: the config's "
                                                   "logging.json).")] = None,
    lenient: Annotated[bool, typer.Option(help="Unknown config keys are warnings, not errors.")] = False,
    unsafe_no_auth: Annotated[bool, typer.Option(help="Allow a non-loopback --host without "
                                                 "authentication.")] = False,
    preload_api: Annotated[bool, typer.Option(envvar="MCP_HTTP_PRELOAD_API", help="Load the REST API at boot "
                                              "(default: at its first request; /mcp, the probes and "
                                              "/metrics never wait for it).")] = False,
) -> None:
    """Run Hangar: MCP on stdio (default) or HTTP with --http."""
    # The command line and the environment win over the config file's logging section.
    _setup_logging(_level(log_level) or "INFO", bool(json_logs))
    if log_level is not None and _level(log_level) is None:
        raise _fail(f"--log-level: unknown level {log_level!r}; use one of {', '.join(LOG_LEVELS)}", 1)
    loaded = _load(config, lenient)
    settings = loaded.config.logging
    level = _level(log_level or settings.level)
    if level is None:
        raise _fail(f"{loaded.source}: logging.level: unknown level {settings.level!r}; "
                    f"use one of {', '.join(LOG_LEVELS)}", 1)
    _setup_logging(level, settings.json_logs if json_logs is None else json_logs)
    for warning in loaded.warnings:
        log.warning("%s", warning)
    if http and not _is_loopback(host) and not unsafe_no_auth and not loaded.config.auth.enabled:
        raise _fail(f"refusing to serve on non-loopback address {host!r} without authentication; "
                    "enable auth or pass --unsafe-no-auth", 1)
    directory = (data_dir or default_data_dir()).expanduser()
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _fail(f"cannot create data directory {directory}: {exc.strerror or exc}", 2) from None
    log.info("config: %s; data: %s", loaded.source, directory)
    from . import tracing

    tracing.setup(loaded.config.observability.tracing)
    try:
        if http:
            code = _serve_http(loaded, directory, host, port, level, preload_api)
        else:
            with asyncio.Runner(loop_factory=_fast_loop_factory()) as runner:
                code = runner.run(_serve_stdio(loaded, directory))
    except HangarError as exc:
        raise _fail(exc.message, 2) from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    finally:
        tracing.shutdown()  # flushes the exporter
    raise typer.Exit(code)


def _fast_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop when it is installed (it comes with uvicorn[standard]): a cheaper event loop per call."""
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def _ignore_sighup() -> None:
    # SIGHUP reloads the config once Hangar has started; until then it must not kill the process.
    with contextlib.suppress(ValueError, AttributeError):
        signal.signal(signal.SIGHUP, lambda *_: log.info("SIGHUP received while starting; ignored"))


def _reload_on_sighup(hangar: Hangar) -> None:
    """From now on SIGHUP reloads the config file (the same path as POST /api/config/reload)."""
    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, hangar.reloader.request, "sighup")


def _http_protocol() -> Any:
    """uvicorn's httptools protocol with a response's head and body in one write (``web.coalesce``);
    uvicorn's own choice where httptools is not installed."""
    try:
        from .web.coalesce import CoalescingHttpToolsProtocol
    except ImportError:
        return "auto"
    return CoalescingHttpToolsProtocol


def _websocket_protocol(**kwargs: Any) -> asyncio.Protocol:
    """uvicorn's WebSocket protocol (the one it picks itself), imported at the first upgrade instead of
    at boot: the import is about 10 ms, 2% of a boot, for a stream most deployments open later if ever."""
    from uvicorn.protocols.websockets.auto import AutoWebSocketsProtocol

    if AutoWebSocketsProtocol is None:  # uvicorn[standard], a dependency, brings websockets
        raise RuntimeError("no WebSocket implementation installed (websockets or wsproto)")
    return AutoWebSocketsProtocol(**kwargs)


def _serve_http(loaded: LoadedConfig, data_dir: Path, host: str, port: int, log_level: str,
                preload_api: bool) -> int:
    sock = _bind(host, port)  # before the heavy imports: a port in use fails at once

    import uvicorn

    from .hangar import Hangar
    from .web.gateway import Gateway

    class HttpServer(uvicorn.Server):
        """uvicorn, with Hangar's signal policy: the first SIGTERM/SIGINT ends long-lived MCP streams
        at once (they would hold the graceful shutdown open), and the signal is remembered for the
        exit code instead of being re-raised, so Hangar's own shutdown runs to its end."""

        def __init__(self, config: uvicorn.Config) -> None:
            super().__init__(config)
            self.received: list[int] = []

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            first = not self.should_exit
            self.received.append(sig)
            super().handle_exit(sig, frame)
            begin_shutdown = getattr(application.state, "begin_shutdown", None)
            if first and begin_shutdown is not None:
                with contextlib.suppress(RuntimeError):  # no running loop: nothing is streaming yet
                    asyncio.get_running_loop().call_soon_threadsafe(begin_shutdown)

    hangar = Hangar(loaded, data_dir)
    application = Gateway(hangar, manage_lifecycle=False, lazy_api=not preload_api)
    server = HttpServer(uvicorn.Config(
        application, log_config=None, log_level=log_level.lower(), lifespan="on",
        timeout_graceful_shutdown=3, access_log=False, server_header=False, http=_http_protocol(),
        ws=cast("type[asyncio.Protocol]", _websocket_protocol),
    ))
    _ignore_sighup()

    async def run() -> int:
        # Hangar's lifecycle is owned here, not by the app's lifespan, so a failed start (an unusable
        # state database) is a clean error and exit code rather than a server startup traceback.
        try:
            await hangar.start()
            _reload_on_sighup(hangar)
            settle_heap()
            bound = sock.getsockname()
            shown = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
            log.info("serving http://%s:%d (REST /api, MCP /mcp, /health, /metrics)", shown, bound[1])
            await server.serve(sockets=[sock])
        finally:
            await hangar.aclose()
        if not server.started:
            return 2
        return 130 if signal.SIGINT in server.received else 0

    # The loop uvicorn would pick (uvloop when installed); older uvicorn releases have no factory.
    loop_factory = getattr(server.config, "get_loop_factory", lambda: None)()
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(run())


YOUNG_GC_THRESHOLD = 10_000


def settle_heap() -> None:
    """Once booted: move everything alive into the collector's permanent generation (what boot built
    lives as long as the process), so that later collections walk only what calls allocate. A full
    collection over the boot heap would otherwise pause the event loop for milliseconds now and then.
    Only the young generations are collected first: boot leaves no garbage in the old one (a full
    collection there found none and cost 20-40 ms of the boot).

    The young generation is then collected after 10,000 net allocations instead of 700: the objects of
    the calls in flight (a few thousand at 32 concurrent calls) no longer trigger a collection every few
    calls (measured over 20,000 calls at 32 concurrent: 1,155 young, 105 middle and 9 full collections,
    8-9 us per call, at the default; at most 4 young ones with the larger threshold). The count is of
    objects allocated and still alive, so garbage cycles still start collections, only later.

    When the boot ran with the collector off (``launch``), nothing is collected here: the young
    generation then holds the whole boot heap, and collecting it (25-30 ms, measured) would only free
    the boot's ~1,000 garbage objects (classes and functions of imports, no open resource), which are
    frozen with the rest instead. The collector is then turned on."""
    if gc.isenabled():
        gc.collect(1)
    gc.freeze()
    gc.set_threshold(YOUNG_GC_THRESHOLD, *gc.get_threshold()[1:])
    gc.enable()


async def _serve_stdio(loaded: LoadedConfig, data_dir: Path) -> int:
    from .hangar import Hangar

    hangar = Hangar(loaded, data_dir)
    stop = asyncio.Event()
    received: list[int] = []
    loop = asyncio.get_running_loop()

    def on_signal(sig: int) -> None:
        received.append(sig)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    loop.add_signal_handler(signal.SIGHUP, lambda: log.info("SIGHUP received while starting; ignored"))
    try:
        await hangar.start()
        _reload_on_sighup(hangar)
        settle_heap()
        from .front.stdio import serve_stdio

        front = asyncio.create_task(serve_stdio(hangar))
        waiter = asyncio.create_task(stop.wait())
        await asyncio.wait({front, waiter}, return_when=asyncio.FIRST_COMPLETED)
        for task in (front, waiter):
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
    finally:
        await hangar.aclose()
    return 130 if signal.SIGINT in received else 0


@config_app.command("check")
def config_check(
    path: Annotated[Path, typer.Argument(help="The config file to check.")],
    lenient: Annotated[bool, typer.Option(help="Report unknown keys as warnings only.")] = False,
) -> None:
    """Validate a config file: exit 0 valid, 1 invalid (every problem listed), 2 missing or not YAML."""
    try:
        loaded = load_config(path, lenient=lenient)
    except ConfigError as exc:
        for problem in exc.problems:
            typer.echo(f"error: {problem}", err=True)
        raise typer.Exit(exc.exit_code) from None
    for warning in loaded.warnings:
        typer.echo(f"warning: {warning}", err=True)
    n = len(loaded.config.mcp_servers)
    typer.echo(f"OK: {path} is valid ({n} MCP server{'s' if n != 1 else ''})")


from .cli_config import register as _register_config_commands  # noqa: E402  (after config_app exists)

_register_config_commands(config_app)


@auth_app.command("bootstrap-admin")
def auth_bootstrap_admin(
    principal: Annotated[str, typer.Option(help="The admin principal, e.g. user:alice.")],
    config: Annotated[str | None, typer.Option("--config", "-c", help="Config file (found as for serve).")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Where state is kept (as for serve).")] = None,
    key_name: Annotated[str, typer.Option(help="A name for the key.")] = "bootstrap-admin",
) -> None:
    """Create the first admin key and print it. Works once per data directory; a second run refuses."""
    from .auth.settings import check_principal
    from .auth.storage import AuthStore

    _load(config, lenient=True)  # a broken config is reported here rather than at the next serve
    try:
        check_principal(principal)
    except ValueError as exc:
        typer.echo(f"error: --principal: {exc}", err=True)
        raise typer.Exit(1) from None
    store = AuthStore((data_dir or default_data_dir()).expanduser() / "auth.db")
    try:
        store.open_sync()
        try:
            made = store.bootstrap_admin_sync(principal, key_name)
        finally:
            store.close_sync()
    except HangarError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(2) from None
    if made is None:
        typer.echo("error: an admin key was bootstrapped before; create further keys with "
                   "POST /api/auth/keys using an admin key", err=True)
        raise typer.Exit(1)
    raw, key = made
    typer.echo(f"admin key for {principal} (key_id {key.key_id}); it is shown only now:", err=True)
    typer.echo(raw)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
