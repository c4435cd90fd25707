"""The ``mcp-hangar`` command's entry point: ``cli.main`` with the boot of ``serve`` kept free of collections.

A boot builds about 85,000 objects that live as long as the process (modules, classes, functions) and
about 1,000 of garbage (temporary classes and functions of imports, measured with ``gc.DEBUG_SAVEALL``):
the collector ran about 100 times over them during the imports and the start, 25-35 ms of a 0.43 s boot
to ``/health/ready``. So ``serve`` boots with the collector off and, once started, moves everything
into the permanent generation (``cli.settle_heap``) and turns it back on; every other command runs
with the collector as usual."""

from __future__ import annotations

import gc
import sys


def main() -> None:
    if sys.argv[1:2] == ["serve"]:
        gc.disable()  # until cli.settle_heap, once Hangar has started
    from .cli import main as cli_main

    cli_main()
