"""Durable auth state in SQLite (``auth.db`` under the data directory): API keys (their hashes only),
custom roles, role assignments, tool access policies, and the one-shot bootstrap claim.

Reads happen once at start; afterwards only changes are written, on a worker thread. The CLI's
``auth bootstrap-admin`` writes through the same class while no event loop is running.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import StoreError
from ..sqlite import SqliteAccess, connect_wal

KEY_PREFIX = "mcp_"

SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    key_id TEXT PRIMARY KEY,
    key_hash TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    principal_id TEXT NOT NULL,
    created_by TEXT,
    created_at REAL NOT NULL,
    expires_at REAL,
    last_used_at REAL,
    revoked INTEGER NOT NULL DEFAULT 0,
    revoked_at REAL
);
CREATE TABLE IF NOT EXISTS roles (
    name TEXT PRIMARY KEY,
    description TEXT NOT NULL,
    permissions TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS role_assignments (
    principal_id TEXT NOT NULL,
    role_name TEXT NOT NULL,
    scope TEXT NOT NULL,
    assigned_by TEXT,
    assigned_at REAL NOT NULL,
    PRIMARY KEY (principal_id, role_name, scope)
);
CREATE TABLE IF NOT EXISTS tool_policies (
    scope TEXT NOT NULL,
    target_id TEXT NOT NULL,
    allow_list TEXT NOT NULL,
    deny_list TEXT NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (scope, target_id)
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def new_key() -> str:
    """A fresh API key: ``mcp_`` and 32 random bytes, url-safe base64 (47 characters)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(raw: str) -> str:
    """The stored form of a key: SHA-256 hex. Keys are 256 random bits, so a fast hash is enough."""
    return hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass
class ApiKey:
    key_id: str
    key_hash: str
    name: str
    principal_id: str
    created_at: float
    expires_at: float | None = None
    last_used_at: float | None = None
    revoked: bool = False
    created_by: str | None = None

    def usable(self, now: float) -> bool:
        return not self.revoked and (self.expires_at is None or now < self.expires_at)

    def view(self) -> dict[str, Any]:
        """The public form: everything but the hash."""
        return {"key_id": self.key_id, "name": self.name, "principal_id": self.principal_id,
                "created_by": self.created_by, "created_at": self.created_at, "expires_at": self.expires_at,
                "last_used_at": self.last_used_at, "revoked": self.revoked}


_KEY_COLUMNS = "key_id, key_hash, name, principal_id, created_at, expires_at, last_used_at, revoked, created_by"


def _key_row(row: tuple[Any, ...]) -> ApiKey:
    return ApiKey(row[0], row[1], row[2], row[3], row[4], row[5], row[6], bool(row[7]), row[8])


class AuthStore(SqliteAccess):
    """The auth database. Async methods for the server, ``*_sync`` ones for the CLI."""

    _label = "auth database"

    def __init__(self, path: Path) -> None:
        self.path = path
        super().__init__()

    def open_sync(self) -> None:
        # FULL, not NORMAL: a key shown once at creation must not be lost to a power cut after the answer.
        self._conn = connect_wal(self.path, SCHEMA, "auth database", synchronous="FULL")

    async def open(self) -> None:
        await asyncio.to_thread(self.open_sync)

    async def close(self) -> None:
        await self._close_connection()

    def close_sync(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None:
                conn.close()

    def _sync(self, fn: Any) -> Any:
        with self._lock:
            if self._conn is None:
                raise StoreError("the auth database is closed")
            try:
                return fn(self._conn)
            except sqlite3.Error as exc:
                raise StoreError(f"auth database error: {exc}") from None

    # ------------------------------------------------------------------ reads (at start)

    async def load(self) -> dict[str, Any]:
        """Everything: keys, roles, assignments, policies."""

        def work(c: sqlite3.Connection) -> dict[str, Any]:
            return {
                "keys": [_key_row(r) for r in c.execute(f"SELECT {_KEY_COLUMNS} FROM api_keys")],
                "roles": [(n, d, json.loads(p)) for n, d, p in
                          c.execute("SELECT name, description, permissions FROM roles")],
                "assignments": list(c.execute(
                    "SELECT principal_id, role_name, scope, assigned_by FROM role_assignments")),
                "policies": [(s, t, json.loads(a), json.loads(d)) for s, t, a, d in
                             c.execute("SELECT scope, target_id, allow_list, deny_list FROM tool_policies")],
            }

        return await self._run(work)

    async def key_by_hash(self, key_hash: str) -> ApiKey | None:
        """One key written by another process (the CLI) since this one loaded."""

        def work(c: sqlite3.Connection) -> ApiKey | None:
            row = c.execute(f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE key_hash = ?", (key_hash,)).fetchone()
            return _key_row(row) if row else None

        return await self._run(work)

    async def assignments_of(self, principal_id: str) -> list[tuple[str, str]]:
        def work(c: sqlite3.Connection) -> list[tuple[str, str]]:
            return list(c.execute("SELECT role_name, scope FROM role_assignments WHERE principal_id = ?",
                                  (principal_id,)))

        return await self._run(work)

    # ------------------------------------------------------------------ writes

    @staticmethod
    def _insert_key(c: sqlite3.Connection, key: ApiKey) -> None:
        c.execute(f"INSERT INTO api_keys ({_KEY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                  (key.key_id, key.key_hash, key.name, key.principal_id, key.created_at, key.expires_at,
                   key.last_used_at, int(key.revoked), key.created_by))

    async def save_key(self, key: ApiKey) -> None:
        await self._run(lambda c: self._insert_key(c, key))

    async def revoke_key(self, key_id: str) -> None:
        await self._run(lambda c: c.execute("UPDATE api_keys SET revoked = 1, revoked_at = ? WHERE key_id = ?",
                                            (time.time(), key_id)))

    async def touch_keys(self, used: dict[str, float]) -> None:
        """Record ``last_used_at`` for a batch of keys (written off the call path)."""
        rows = [(at, key_id) for key_id, at in used.items()]
        await self._run(lambda c: c.executemany("UPDATE api_keys SET last_used_at = ? WHERE key_id = ?", rows))

    async def save_role(self, name: str, description: str, permissions: list[str]) -> None:
        now = time.time()
        await self._run(lambda c: c.execute(
            "INSERT INTO roles (name, description, permissions, created_at, updated_at) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT(name) DO UPDATE SET description = excluded.description, "
            "permissions = excluded.permissions, updated_at = excluded.updated_at",
            (name, description, json.dumps(sorted(permissions)), now, now)))

    async def delete_role(self, name: str) -> None:
        def work(c: sqlite3.Connection) -> None:
            c.execute("DELETE FROM roles WHERE name = ?", (name,))
            c.execute("DELETE FROM role_assignments WHERE role_name = ?", (name,))

        await self._run(work)

    async def assign(self, principal_id: str, role_name: str, scope: str, assigned_by: str | None) -> None:
        await self._run(lambda c: c.execute(
            "INSERT OR IGNORE INTO role_assignments (principal_id, role_name, scope, assigned_by, assigned_at) "
            "VALUES (?, ?, ?, ?, ?)", (principal_id, role_name, scope, assigned_by, time.time())))

    async def unassign(self, principal_id: str, role_name: str, scope: str) -> int:
        def work(c: sqlite3.Connection) -> int:
            return c.execute("DELETE FROM role_assignments WHERE principal_id = ? AND role_name = ? AND scope = ?",
                             (principal_id, role_name, scope)).rowcount

        return await self._run(work)

    async def save_policy(self, scope: str, target_id: str, allow: list[str], deny: list[str]) -> None:
        await self._run(lambda c: c.execute(
            "INSERT INTO tool_policies (scope, target_id, allow_list, deny_list, updated_at) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT(scope, target_id) DO UPDATE SET allow_list = excluded.allow_list, "
            "deny_list = excluded.deny_list, updated_at = excluded.updated_at",
            (scope, target_id, json.dumps(allow), json.dumps(deny), time.time())))

    async def delete_policy(self, scope: str, target_id: str) -> None:
        await self._run(lambda c: c.execute("DELETE FROM tool_policies WHERE scope = ? AND target_id = ?",
                                            (scope, target_id)))

    # ------------------------------------------------------------------ bootstrap (CLI, no event loop)

    def bootstrap_admin_sync(self, principal_id: str, key_name: str) -> tuple[str, ApiKey] | None:
        """Create the first admin key, once: None when it was claimed before. Returns (raw key, record)."""
        raw = new_key()
        key = ApiKey(secrets.token_urlsafe(8), hash_key(raw), key_name, principal_id, time.time(),
                     created_by="bootstrap-admin")

        def work(c: sqlite3.Connection) -> bool:
            c.execute("BEGIN IMMEDIATE")
            try:
                claimed = c.execute("SELECT value FROM meta WHERE key = 'bootstrap_admin'").fetchone()
                if claimed is not None:
                    c.execute("ROLLBACK")
                    return False
                c.execute("INSERT INTO meta (key, value) VALUES ('bootstrap_admin', ?)",
                          (json.dumps({"principal_id": principal_id, "at": time.time()}),))
                self._insert_key(c, key)
                c.execute("INSERT OR IGNORE INTO role_assignments (principal_id, role_name, scope, assigned_by, "
                          "assigned_at) VALUES (?, 'admin', 'global', 'bootstrap-admin', ?)",
                          (principal_id, time.time()))
                c.execute("COMMIT")
            except BaseException:
                c.execute("ROLLBACK")
                raise
            return True

        return (raw, key) if self._sync(work) else None
