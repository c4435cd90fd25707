"""Connections that outlive the request that authenticated them: WebSocket streams, log follow streams
and legacy MCP sessions.

A connection registers what let it in (the key, the principal, the permissions it relies on: the one
its route needed, or, for an MCP session, whose route needs only a valid key, every permission the
principal held when the session opened, so that taking any of them away ends it). Whenever
something could take that away (a key revoked, a role assigned, revoked, changed or deleted, a reload
of the ``auth:`` block) every registered connection is checked again, and one that lost its grant is
told why through its ``on_lost`` callback; an expiring key arms a timer for its own moment. The
checks run on changes only, never per message, so an open stream costs nothing while nothing changes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .storage import ApiKey

if TYPE_CHECKING:
    from .service import AuthService

Unwatch = Callable[[], None]
GRANT_SCOPE_KEY = "hangar.grant"  # where the HTTP edge leaves (key, principal id, permission, resource)
ScopeGrant = tuple[ApiKey | None, str, str | None, str | None]


@dataclass(eq=False)
class Grant:
    """What let one connection in."""

    key: ApiKey | None  # None: the anonymous principal (``allow_anonymous``)
    principal_id: str
    needs: tuple[tuple[str, str | None], ...]  # (permission, resource) that must still be held
    on_lost: Callable[[str], None]
    timer: asyncio.TimerHandle | None = None


class LiveConnections:
    """The grants of the open connections of one ``AuthService``."""

    def __init__(self, auth: AuthService) -> None:
        self._auth = auth
        self._grants: set[Grant] = set()

    def __len__(self) -> int:
        return len(self._grants)

    def watch(self, key: ApiKey | None, principal_id: str, needs: Iterable[tuple[str, str | None]],
              on_lost: Callable[[str], None]) -> Unwatch:
        """Register a connection; the returned function unregisters it (call it when it closes)."""
        grant = Grant(key, principal_id, tuple(sorted(needs, key=lambda n: (n[0], n[1] or ""))), on_lost)
        self._grants.add(grant)
        self._arm(grant)
        self._check(grant)  # a change between authentication and this registration is not missed
        return lambda: self._drop(grant)

    def watch_scope(self, scope: Mapping[str, Any], on_lost: Callable[[str], None]) -> Unwatch | None:
        """``watch`` with what the HTTP edge left in an ASGI scope; None when it left nothing (auth off)."""
        found: ScopeGrant | None = scope.get(GRANT_SCOPE_KEY)
        if found is None:
            return None
        key, principal_id, permission, resource = found
        if permission is not None:
            return self.watch(key, principal_id, [(permission, resource)], on_lost)
        held = self._auth.principal(principal_id)
        needs: list[tuple[str, str | None]] = [(p, None) for p in held.everywhere]
        needs += [(p, r) for r, perms in held.scoped.items() for p in perms]
        return self.watch(key, principal_id, needs, on_lost)

    def _arm(self, grant: Grant) -> None:
        key = grant.key
        if key is not None and key.expires_at is not None:
            delay = max(0.0, key.expires_at - time.time())
            grant.timer = asyncio.get_running_loop().call_later(delay, self._expired, grant)

    def _expired(self, grant: Grant) -> None:
        grant.timer = None
        self._check(grant)
        if grant in self._grants:  # the loop's clock ran a little ahead of the wall clock: again, later
            self._arm(grant)

    def recheck(self) -> None:
        """Check every connection again (after any change that may take a grant away)."""
        for grant in list(self._grants):
            self._check(grant)

    def _check(self, grant: Grant) -> None:
        if grant not in self._grants:
            return
        reason = self.lost(grant)
        if reason is None:
            return
        self._drop(grant)
        grant.on_lost(reason)

    def lost(self, grant: Grant) -> str | None:
        """Why ``grant`` no longer holds, or None while it does."""
        auth = self._auth
        key = grant.key
        if key is None:
            if not auth.settings.allow_anonymous:
                return "anonymous access was turned off"
        elif key.revoked:
            return f"API key {key.key_id} was revoked"
        elif key.expires_at is not None and key.expires_at <= time.time():
            return f"API key {key.key_id} expired"
        principal = auth.principal(grant.principal_id)
        for permission, resource in grant.needs:
            if not principal.allows(permission, resource):
                where = "" if resource is None else f" on {resource}"
                return f"'{grant.principal_id}' no longer holds {permission}{where}"
        return None

    def _drop(self, grant: Grant) -> None:
        self._grants.discard(grant)
        if grant.timer is not None:
            grant.timer.cancel()
            grant.timer = None
