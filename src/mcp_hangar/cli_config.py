"""``mcp-hangar config export`` and ``mcp-hangar config diff``: from a running instance (``--url``) or
from files. Exit codes: 0 success (diff: in sync), 1 differences found or invalid input, 2 the instance
or the file cannot be reached."""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from .config import LoadedConfig, load_config
from .config_diff import differences
from .config_export import render
from .config_state import document_of_config, sanitize
from .errors import ConfigError

UrlOption = Annotated[str | None, typer.Option("--url", help="A running Hangar, e.g. http://127.0.0.1:8000")]
KeyOption = Annotated[str | None, typer.Option("--api-key", envvar="MCP_API_KEY",
                                               help="API key sent as X-API-Key (when auth is on).")]


def _load(path: Path) -> LoadedConfig:
    try:
        return load_config(path)
    except ConfigError as exc:
        for problem in exc.problems:
            typer.echo(f"error: {problem}", err=True)
        raise typer.Exit(exc.exit_code) from None


def _call(method: str, url: str, path: str, api_key: str | None, body: dict[str, Any] | None = None) -> Any:
    import httpx

    headers = {"X-API-Key": api_key} if api_key else {}
    try:
        response = httpx.request(method, url.rstrip("/") + path, json=body, headers=headers, timeout=30.0)
    except httpx.HTTPError as exc:
        typer.echo(f"error: cannot reach {url}: {exc}", err=True)
        raise typer.Exit(2) from None
    try:
        payload = response.json()
    except ValueError:
        payload = {}
    if response.status_code >= 400:
        message = payload.get("message", response.text) if isinstance(payload, dict) else response.text
        typer.echo(f"error: {url}{path} answered {response.status_code}: {message}", err=True)
        raise typer.Exit(1 if response.status_code < 500 else 2)
    return payload


def _write(text: str, output: Path | None) -> None:
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, "utf-8")
        typer.echo(f"wrote {output}", err=True)


def register(config_app: typer.Typer) -> None:
    """Add ``export`` and ``diff`` to the ``config`` command group."""

    @config_app.command("export")
    def config_export(
        path: Annotated[Path | None, typer.Argument(help="A config file to export (normalized).")] = None,
        url: UrlOption = None,
        api_key: KeyOption = None,
        output: Annotated[Path | None, typer.Option("--output", "-o", help="Write here, not to stdout.")] = None,
        include_secrets: Annotated[bool, typer.Option(help="Write literal secrets instead of redacting them.")]
        = False,
    ) -> None:
        """Export the state of a running instance (--url), or a config file, as YAML that round-trips."""
        if (url is None) == (path is None):
            typer.echo("error: give either --url of a running Hangar or a config file", err=True)
            raise typer.Exit(1)
        if url is not None:
            payload = _call("POST", url, "/api/config/export", api_key, {"include_secrets": include_secrets})
            text, redacted = payload["yaml"], payload.get("redacted", [])
        else:
            assert path is not None
            loaded = _load(path)
            exported = render(document_of_config(loaded.config), loaded.raw, include_secrets=include_secrets)
            text, redacted = exported.yaml, exported.redacted
        _write(text, output)
        for place in redacted:
            typer.echo(f"redacted: {place}", err=True)

    @config_app.command("diff")
    def config_diff(
        paths: Annotated[list[Path] | None, typer.Argument(help="Two config files to compare.")] = None,
        url: UrlOption = None,
        api_key: KeyOption = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print the structured differences as JSON.")] = False,
    ) -> None:
        """Show how a running instance (--url) differs from its file on disk, or how two files differ.
        Exit 0 when in sync, 1 when they differ."""
        files = paths or []
        if (url is None) == (len(files) == 0) or (files and len(files) != 2):
            typer.echo("error: give either --url of a running Hangar or two config files", err=True)
            raise typer.Exit(1)
        if url is not None:
            payload = _call("GET", url, "/api/config/diff", api_key)
            text, found = payload["diff"], payload["differences"]
        else:
            a, b = (document_of_config(_load(p).config) for p in files)
            found = differences(a, a, b)
            text = "".join(difflib.unified_diff(
                yaml.safe_dump(sanitize(a), sort_keys=True).splitlines(keepends=True),
                yaml.safe_dump(sanitize(b), sort_keys=True).splitlines(keepends=True), str(files[0]), str(files[1])))
        if as_json:
            typer.echo(json.dumps(found, indent=2))
        else:
            typer.echo(text, nl=False)
            for item in found:
                fields = f" ({', '.join(item['fields'])})" if item["fields"] else ""
                typer.echo(f"{item['change']} {item['section']} {item['id']}{fields} [{item['origin']}]", err=True)
        raise typer.Exit(1 if found else 0)
