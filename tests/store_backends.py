"""The event log's backends for tests: real SQLite in the test's folder, and real PostgreSQL on 127.0.0.1:5432
(trust auth, database ``test``) in a schema of its own that is dropped after the test. The PostgreSQL cases
skip, saying why, when no server answers or psycopg is missing. Loaded by ``conftest`` (pytest_plugins)."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mcp_hangar.event_log import EventLog
from mcp_hangar.event_log_sqlite import SqliteEventLog
from mcp_hangar.events import EventBus

BACKENDS = ["sqlite", "postgresql"]
_PG_BASE = os.environ.get("HANGAR_TEST_PG_DSN", "host=127.0.0.1 port=5432 dbname=test connect_timeout=3")
_pg_dsn: str | None = None
_pg_problem: str | None = None


def pg_dsn() -> str:
    """A DSN that connects, or ``pytest.skip`` with the reason (found once per session)."""
    global _pg_dsn, _pg_problem
    if _pg_dsn is None and _pg_problem is None:
        try:
            import psycopg
        except ImportError:
            _pg_problem = "psycopg is not installed (pip install 'mcp-hangar[postgres]')"
        else:
            errors = []
            for user in ("postgres", "root"):
                dsn = f"{_PG_BASE} user={user}"
                try:
                    psycopg.connect(dsn, autocommit=True).close()
                except psycopg.Error as exc:
                    errors.append(f"{user}: {str(exc).strip()}")
                    continue
                _pg_dsn = dsn
                break
            else:
                _pg_problem = "no PostgreSQL answers at 127.0.0.1:5432 (database test): " + "; ".join(errors)
    if _pg_dsn is None:
        pytest.skip(_pg_problem or "PostgreSQL is not available")
    return _pg_dsn


def drop_schema(dsn: str, schema: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture
def pg_schema() -> Iterator[tuple[str, str]]:
    """(dsn, schema): a fresh schema name in the test database, dropped after the test."""
    dsn = pg_dsn()
    schema = f"hangar_test_{secrets.token_hex(6)}"
    yield dsn, schema
    drop_schema(dsn, schema)


LogFactory = Callable[..., EventLog]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_log(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> LogFactory:
    """``make_log(bus, **kwargs)``: an unopened event log; every call uses the same storage (a reopen)."""
    if backend == "sqlite":
        def sqlite(bus: EventBus, **kwargs: Any) -> EventLog:
            return SqliteEventLog(tmp_path / "events.db", bus, **kwargs)

        return sqlite
    dsn, schema = request.getfixturevalue("pg_schema")

    def postgresql(bus: EventBus, **kwargs: Any) -> EventLog:
        from mcp_hangar.event_log_pg import PostgresEventLog

        return PostgresEventLog(dsn, bus, schema=schema, **kwargs)

    return postgresql


@pytest.fixture
def store_config(backend: str, request: pytest.FixtureRequest) -> dict[str, Any]:
    """The ``event_store`` block of a config file for this backend."""
    if backend == "sqlite":
        return {}
    dsn, schema = request.getfixturevalue("pg_schema")
    return {"driver": "postgresql", "dsn": dsn, "pg_schema": schema}


class WriteRefusal:
    """Makes the real database refuse new event rows, and accept them again: a SQLite trigger that aborts
    every insert, or a PostgreSQL check constraint no row passes (the database itself says no)."""

    def __init__(self, backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
        self.backend = backend
        self.path = tmp_path / "events.db"
        self.pg = request.getfixturevalue("pg_schema") if backend == "postgresql" else None

    def _sql(self, statement: str) -> None:
        if self.pg is None:
            import sqlite3

            with contextlib.closing(sqlite3.connect(self.path)) as conn:
                conn.execute(statement)
                conn.commit()
            return
        import psycopg
        from psycopg import sql

        dsn, schema = self.pg
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
            conn.execute(statement)

    def on(self) -> None:
        if self.pg is None:
            self._sql("CREATE TRIGGER refuse BEFORE INSERT ON events BEGIN SELECT RAISE(ABORT, 'refused'); END")
        else:
            self._sql("ALTER TABLE events ADD CONSTRAINT refuse CHECK (false) NOT VALID")

    def off(self) -> None:
        self._sql("DROP TRIGGER refuse" if self.pg is None else "ALTER TABLE events DROP CONSTRAINT refuse")

    def end_session(self, backend_pid: int) -> None:
        """PostgreSQL only: end one server session (as a restart or a failover would), by its PID."""
        assert self.pg is not None
        import psycopg

        with psycopg.connect(self.pg[0], autocommit=True) as conn:
            row = conn.execute("SELECT pg_terminate_backend(%s)", (backend_pid,)).fetchone()
            assert row is not None and row[0] is True


@pytest.fixture
def write_refusal(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> WriteRefusal:
    return WriteRefusal(backend, tmp_path, request)
