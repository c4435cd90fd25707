"""Run ``mcp-hangar`` with its event log and history discarding their rows instead of writing them.

    python benchmarks/discard_writes_probe.py serve --http ...

Not a mode of the product: ``benchmarks.cpu_budget`` runs it beside a normal Hangar to measure what
the writes cost the event loop. The rows are still built and queued as always; each flush drops them.
"""

from __future__ import annotations

import sys

from mcp_hangar import event_log, store


async def _discard_events(self: event_log.EventLog) -> None:
    self._pending.clear()


async def _discard_history(self: store.HistoryWriter) -> None:
    self._buffer = []


def main() -> None:
    event_log.EventLog.flush = _discard_events  # type: ignore[method-assign]
    store.HistoryWriter.flush = _discard_history  # type: ignore[method-assign]
    from mcp_hangar.launch import main as hangar_main

    sys.argv = ["mcp-hangar", *sys.argv[1:]]
    hangar_main()


if __name__ == "__main__":
    main()
