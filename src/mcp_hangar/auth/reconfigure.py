"""What a config reload may change in the ``auth:`` block at run time, and what waits for a restart.

Applied at once: ``role_assignments`` (the file's own; assignments made through REST live in auth.db
and are not touched), ``allow_anonymous``, ``rate_limit`` and ``stdio.principal``. Two settings shape
objects built once at start, so a reload records them and names them in ``restart_required``:
``enabled`` and ``api_key.header_name``.
"""

from __future__ import annotations

from typing import Any

from .settings import AuthSettings

Assignments = dict[str, set[tuple[str, str]]]  # principal -> {(role, scope)}

# Why each of these needs a restart: the reload result says so.
RESTART_ONLY: dict[str, str] = {
    "enabled": "whether auth is on decides, at start, which middleware wraps the HTTP app and whether the "
               "MCP front enforces permissions; switching it live would leave open connections and "
               "sessions on the old rules",
    "api_key.header_name": "the HTTP middleware reads the header name once, when it is built at start; "
                           "changing it live would lock out every client still sending the old header",
}
LIVE_FIELDS = ("allow_anonymous", "rate_limit", "stdio.principal", "role_assignments")


def config_assignments(settings: AuthSettings) -> Assignments:
    """The role assignments the file declares, with the stdio principal's roles (global)."""
    found: Assignments = {}
    for a in settings.role_assignments:
        found.setdefault(a.principal, set()).add((a.role, a.scope))
    stdio = settings.stdio.principal
    for role in stdio.roles:
        found.setdefault(stdio.id, set()).add((role, "global"))
    return found


def _value(settings: AuthSettings, dotted: str) -> Any:
    value: Any = settings
    for part in dotted.split("."):
        value = getattr(value, part)
    return value.model_dump() if hasattr(value, "model_dump") else value


def restart_required(running: AuthSettings, new: AuthSettings) -> dict[str, str]:
    """The settings that changed but wait for a restart, each with the reason."""
    return {name: why for name, why in RESTART_ONLY.items() if _value(running, name) != _value(new, name)}


def live_settings(running: AuthSettings, new: AuthSettings) -> AuthSettings:
    """``new`` with the restart-only settings still as they run."""
    return new.model_copy(update={"enabled": running.enabled, "api_key": running.api_key})


def changed_fields(running: AuthSettings, new: AuthSettings) -> list[str]:
    """The live settings that differ, in ``LIVE_FIELDS`` order."""
    out = []
    for name in LIVE_FIELDS:
        if name == "role_assignments":
            if config_assignments(running) != config_assignments(new):
                out.append(name)
        elif _value(running, name) != _value(new, name):
            out.append(name)
    return out


def diff(old: Assignments, new: Assignments) -> tuple[list[tuple[str, str, str]], list[tuple[str, str, str]]]:
    """(added, removed) as sorted (principal, role, scope) triples."""
    before = {(p, r, s) for p, held in old.items() for r, s in held}
    after = {(p, r, s) for p, held in new.items() for r, s in held}
    return sorted(after - before), sorted(before - after)
