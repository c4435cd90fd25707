"""A folder of YAML files as a discovery source: one server per file, the config file's keys plus
``name`` (default: the file name without extension), optional ``group`` and ``enabled: false`` to skip.

The folder is watched (watchfiles), so a dropped, changed or deleted file is seen at once. A file that
is not valid YAML or not a valid spec is still proposed, with its error located like the config file's
(``file:line: key: problem``), and goes to quarantine.
"""

from __future__ import annotations

import asyncio
import difflib
import fnmatch
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
from pydantic import BaseModel, ConfigDict
from pydantic import ValidationError as PydanticValidationError

from ..config import ServerSpec, _format, _interpolate, _locate, _parse_yaml
from ..errors import ConfigError, DiscoverySourceError
from .base import WATCHING, Discovered, discovered_from_dict, fingerprint

EXTRA_KEYS = ("name", "group", "enabled")


class FilesystemSourceConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str
    pattern: str | list[str] = ["*.yaml", "*.yml"]
    watch: bool = True


class FilesystemSource:
    source_type = "filesystem"
    config_model = FilesystemSourceConfig

    def __init__(self, source_id: str, config: dict[str, Any]) -> None:
        self.source_id = source_id
        self.settings = FilesystemSourceConfig.model_validate(config)
        self.folder = Path(self.settings.path).expanduser()
        patterns = self.settings.pattern
        self.patterns = [patterns] if isinstance(patterns, str) else list(patterns)
        self._stop = anyio.Event()

    def _matches(self, path: Path) -> bool:
        return not path.name.startswith(".") and any(fnmatch.fnmatch(path.name, p) for p in self.patterns)

    async def scan(self) -> list[Discovered]:
        return await asyncio.to_thread(self._scan)

    def _scan(self) -> list[Discovered]:
        if not self.folder.is_dir():
            raise DiscoverySourceError(f"discovery folder {self.folder} does not exist or is not a folder")
        try:
            files = sorted(p for p in self.folder.iterdir() if p.is_file() and self._matches(p))
        except OSError as exc:
            raise DiscoverySourceError(f"cannot list {self.folder}: {exc}") from None
        found = []
        for path in files:
            item = load_spec_file(path, self.source_id)
            if item is not None:
                found.append(item)
        return found

    async def watch(self) -> AsyncIterator[str]:
        if not self.settings.watch:
            await self._stop.wait()
            return
        from watchfiles import awatch

        if not self.folder.is_dir():
            raise DiscoverySourceError(f"discovery folder {self.folder} does not exist")
        changes = awatch(self.folder, stop_event=self._stop, debounce=150, step=25, recursive=False)
        # The watcher is created by the generator's first step, before its first thread hop; run that step
        # now, so that WATCHING is only said once changes are being recorded.
        first = asyncio.ensure_future(anext(changes))
        await asyncio.sleep(0)
        try:
            failed = first.exception() if first.done() else None
            if failed is not None and not isinstance(failed, StopAsyncIteration):
                raise DiscoverySourceError(f"cannot watch {self.folder}: {failed}")
            yield WATCHING
            batch = await first
            while True:
                names = sorted({Path(p).name for _, p in batch if self._matches(Path(p))})
                if names:
                    yield "changed " + ", ".join(names)
                batch = await anext(changes)
        except StopAsyncIteration:
            return
        finally:
            first.cancel()
            await changes.aclose()

    async def close(self) -> None:
        self._stop.set()


def load_spec_file(path: Path, source_id: str) -> Discovered | None:
    """One file as a proposal (None when it says ``enabled: false``)."""
    where = str(path)
    origin = f"file {path}"
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return _broken(path, source_id, f"{where}: cannot read: {exc}")
    try:
        raw, lines = _parse_yaml(text, where)
    except ConfigError as exc:
        return _broken(path, source_id, exc.message, text)
    problems: list[tuple[tuple[str | int, ...], str]] = []
    data = _interpolate(raw, (), problems)
    if problems:
        loc, msg = problems[0]
        return _broken(path, source_id, _format(where, _locate(loc, lines), loc, msg), text)
    if not isinstance(data, dict):
        return _broken(path, source_id, f"{where}: the file must be a mapping of server spec keys", text)
    if data.get("enabled") is False:
        return None

    def describe(exc: ValueError, key: str) -> str:
        if not isinstance(exc, PydanticValidationError):
            return _format(where, _locate((key,), lines), (key,), str(exc))
        parts = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                known = [*ServerSpec.model_fields, *EXTRA_KEYS] if len(loc) == 1 else []
                close = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
                msg = f"unknown key '{loc[-1]}'" + (f" (did you mean '{close[0]}'?)" if close else "")
            parts.append(_format(where, _locate(loc, lines), loc, msg))
        return "; ".join(parts)

    return discovered_from_dict(data, source_id=source_id, default_name=_default_name(path), origin=origin,
                                describe=describe)


def _default_name(path: Path) -> str:
    return path.name.split(".", 1)[0]


def _broken(path: Path, source_id: str, error: str, text: str = "") -> Discovered:
    return Discovered(_default_name(path), source_id, None, fingerprint(text or error), origin=f"file {path}",
                      error=error)
