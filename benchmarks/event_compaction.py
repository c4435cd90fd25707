"""What snapshots and compaction do to the event log's size in a long run (real SQLite or PostgreSQL).

    .venv/bin/python benchmarks/event_compaction.py [--events 100000] [--streams 20] [--every 1000]
        [--dsn "host=127.0.0.1 dbname=test user=postgres"]

Publishes ``--events`` tool-call events over ``--streams`` server streams in 20 rounds, runs one
background pass (snapshots every ``--every`` events per stream, then compaction) after each round, and
prints the stored events, the space they take and the time taken, without and with the pass. The folded
totals of one stream are printed too: they are the same either way.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import tempfile
import time
from pathlib import Path

from mcp_hangar.config import EventStoreSettings
from mcp_hangar.event_log import EventLog
from mcp_hangar.event_log_sqlite import SqliteEventLog
from mcp_hangar.event_retention import run_retention
from mcp_hangar.events import EventBus, ToolInvocationCompleted


async def one(args: argparse.Namespace, folder: Path, compact: bool) -> None:
    bus = EventBus()
    log: EventLog
    schema = f"hangar_bench_{secrets.token_hex(4)}"
    if args.dsn:
        from mcp_hangar.event_log_pg import PostgresEventLog

        log = PostgresEventLog(args.dsn, bus, schema=schema, max_events=100_000_000)
    else:
        log = SqliteEventLog(folder / f"events-{compact}.db", bus, max_events=100_000_000)
    await log.open()
    policy = EventStoreSettings(snapshot_every_events=args.every)
    began = time.perf_counter()
    per_round = args.events // 20
    for _ in range(20):
        for i in range(per_round):
            bus.publish(ToolInvocationCompleted(mcp_server_id=f"s{i % args.streams}", tool_name="echo",
                                                correlation_id="c", duration_ms=1.0, result_size_bytes=10))
        await log.flush()
        if compact:
            await run_retention(log, policy)
    took = time.perf_counter() - began
    count = (await log.bounds())[2]
    used = await log.size_bytes()
    state, _ = await log.stream_state("mcp_server:s0")
    await log.close()
    if args.dsn:
        import psycopg
        from psycopg import sql

        with psycopg.connect(args.dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
    print(f"{'with' if compact else 'without'} snapshots+compaction: {per_round * 20} events published, "
          f"{count} stored, {used / 1024:.0f} KiB used, s0 total_invocations={state['total_invocations']}, "
          f"{took:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--streams", type=int, default=20)
    parser.add_argument("--every", type=int, default=1000)
    parser.add_argument("--dsn", default=None, help="PostgreSQL instead of SQLite")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        for compact in (False, True):
            asyncio.run(one(args, Path(folder), compact))


if __name__ == "__main__":
    main()
