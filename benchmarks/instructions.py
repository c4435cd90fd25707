"""Instructions per warm call, A/B, counted by callgrind: a figure that the host's noise cannot move.

    .venv/bin/python -m benchmarks.instructions [--other-src ../main/src] [--bare] [--calls 2000]
        [--concurrency 8] [--rounds 1] [--front http|stdio] [--separate-threads] [--keep DIR] [--json]

On these shared hosts the same code's CPU per call moves by a third within minutes, so a change worth a
few percent cannot be seen in seconds. This runs Hangar (this checkout, ``this``; with ``--other-src``,
that ``src`` folder first on ``PYTHONPATH``, ``other``) under ``valgrind --tool=callgrind`` with its
counting off, serving the fast upstream over the modern HTTP front (``--front stdio``: the stdio front).
After a warm-up it turns counting on (``callgrind_control -i on``), makes ``--calls`` raw-client calls
at ``--concurrency``, waits until the process is idle (its background writers have written what the
calls left), dumps the counts and reads the instructions of the whole process (every thread); ``--bare``
counts the bare ASGI endpoint the same way (the HTTP baseline, answering ``tools/call`` itself). The
upstream and the client run outside valgrind. Instructions are not time (the kernel's share, system
calls and wake-ups, is not counted, and one instruction may miss the cache), but the work the
interpreter does per call is, and the same code gives the same count whatever the neighbours do. Needs
Debian's ``valgrind``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from . import procs
from .cells import Cell, measure_cell
from .clients import RawHttpClient, StdioClient

BARE_ASGI = Path(__file__).resolve().parent / "bare_asgi.py"


def _control(*args: str) -> None:
    subprocess.run(["callgrind_control", *args], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=120)


def _instructions(dump: Path) -> int:
    """The ``summary:`` (or ``totals:``) line of a callgrind dump: instructions executed (Ir)."""
    for line in dump.read_text().splitlines():
        match = re.match(r"(?:summary|totals):\s+(\d+)", line)
        if match:
            return int(match.group(1))
    raise RuntimeError(f"no instruction count in {dump}")


async def _count(name: str, src: str | None, folder: Path, calls: int, concurrency: int, base: int,
                 threads: bool, front: str = "http") -> dict[str, Any]:
    cfg = procs.fast_config(folder)
    env = procs.clean_env(folder)
    env.pop("PYTHONPATH", None)
    if src is not None:
        env["PYTHONPATH"] = src
    port = procs.free_port()
    out = folder / f"callgrind-{name}-{base}"
    hangar = [procs.PYTHON, procs.CLI, "serve", *(["--http", "--port", str(port)] if front == "http" else []),
              "--data-dir", str(folder / f"data-{name}-{base}"), "--log-level", "WARNING", "-c", str(cfg)]
    served = [procs.PYTHON, str(BARE_ASGI), "--port", str(port)] if name == "bare" else hangar
    argv = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
            *(["--separate-threads=yes"] if threads else []), *served]
    async with _served(front, argv, folder, port, name, env) as (pid, client):
        await measure_cell(client.call, Cell("warm", concurrency), 0, 200, base)
        await asyncio.to_thread(procs.settle, pid, 1.0, 60.0)
        await asyncio.to_thread(_control, "-i", "on", str(pid))
        cell = Cell(name, concurrency)
        await measure_cell(client.call, cell, calls, 0, base + 1000)
        await asyncio.to_thread(procs.settle, pid, 1.0, 60.0)  # the writers' share is counted too
        await asyncio.to_thread(_control, "-d", str(pid))
    # The explicit dump is ``<out>.1`` (one file per thread with ``-NN`` after it; ``-01`` is the main
    # thread, the event loop's); the dump at exit (``<out>``) is not read.
    dumps = sorted(folder.glob(f"{out.name}.1*"))
    if not dumps:
        raise RuntimeError(f"callgrind wrote no dump for {name} (log {folder / f'{name}.log'})")
    counts = {d.name.removeprefix(f"{out.name}.1").lstrip("-") or "all": _instructions(d) for d in dumps}
    result = {"instructions_per_call": sum(counts.values()) / calls, "errors": cell.errors}
    if threads:
        result["main_thread_per_call"] = counts.get("01", 0) / calls
    return result


@contextlib.asynccontextmanager
async def _served(front: str, argv: list[str], folder: Path, port: int, name: str,
                  env: dict[str, str]) -> AsyncIterator[tuple[int, RawHttpClient | StdioClient]]:
    """The process under valgrind and a raw client of it: over HTTP, or over its stdin and stdout."""
    if front == "stdio":
        # ``env`` execs valgrind in its place: the client's child is the process counted.
        stdio = StdioClient(["env", "-i", *(f"{k}={v}" for k, v in env.items()), *argv], folder / f"{name}.log",
                            "fast__echo")
        try:
            await stdio.start()  # inside: a child whose handshake fails is stopped too
            yield stdio.pid, stdio
        finally:
            await stdio.close()
        return
    with procs.http_process(argv, folder, port, folder / f"{name}.log", env) as (proc, _):
        client = RawHttpClient(f"http://127.0.0.1:{port}", "fast__echo")
        try:
            yield proc.pid, client
        finally:
            await client.close()


async def _main(*, other_src: str | None = None, bare: bool = False, calls: int = 2000, concurrency: int = 8,
                rounds: int = 1, keep: str | None = None, separate_threads: bool = False, quiet: bool = False,
                front: str = "http") -> dict[str, list[dict[str, Any]]]:
    trees = [("this", None)] + ([("other", str(Path(other_src).resolve()))] if other_src else []) + (
        [("bare", None)] if bare else [])
    results: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in trees}
    with contextlib.ExitStack() as stack:
        tmp = keep or stack.enter_context(tempfile.TemporaryDirectory(prefix="hangar-instr-"))
        Path(tmp).mkdir(parents=True, exist_ok=True)
        for r in range(rounds):
            for name, src in trees if r % 2 == 0 else list(reversed(trees)):
                res = await _count(name, src, Path(tmp), calls, concurrency, 100_000 * (r + 1),
                                   separate_threads, front)
                results[name].append(res)
                main_thread = (f"  (event loop's thread {res['main_thread_per_call']:,.0f})"
                               if "main_thread_per_call" in res and name != "bare" else "")
                if not quiet:
                    print(f"round {r + 1} {name:6s} {res['instructions_per_call']:12,.0f} instructions/call"
                          f"{main_thread}  errors {res['errors']}", flush=True)
    if not quiet:
        best = {name: min(x["instructions_per_call"] for x in rows) for name, rows in results.items()}
        for name in ("other", "bare"):
            if name in best:
                print(f"this / {name}: {best['this'] / best[name]:.3f}")
    return results


def measure(calls: int, concurrency: int = 8) -> dict[str, Any]:
    """For the harness: Hangar's modern HTTP front and the bare endpoint (at ``concurrency``), and Hangar's
    stdio front (one call at a time), each thread counted apart; or why not."""
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        return {"skipped": "valgrind is not installed (Debian package valgrind)"}
    try:  # a count that fails costs the run its line, not the rest of its figures
        results = asyncio.run(_main(bare=True, calls=calls, concurrency=concurrency, separate_threads=True,
                                    quiet=True))
        # The stdio front as the stdio ratio is measured: one call at a time.
        stdio = asyncio.run(_main(calls=calls, concurrency=1, separate_threads=True, quiet=True,
                                  front="stdio"))["this"][0]
    except (OSError, RuntimeError, TimeoutError, subprocess.SubprocessError) as exc:
        return {"skipped": f"callgrind failed: {exc}"}
    hangar, bare = results["this"][0], results["bare"][0]
    return {"calls": calls, "concurrency": concurrency, "hangar": hangar, "bare": bare, "stdio": stdio,
            "ratio": hangar["instructions_per_call"] / bare["instructions_per_call"],
            "loop_ratio": hangar["main_thread_per_call"] / bare["instructions_per_call"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--other-src", help="a src folder (another checkout) to compare with")
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--bare", action="store_true", help="count the bare ASGI endpoint too (the HTTP baseline)")
    parser.add_argument("--keep", help="a folder to keep the callgrind dumps in (for callgrind_annotate)")
    parser.add_argument("--separate-threads", action="store_true",
                        help="count each thread apart and report the event loop's thread too")
    parser.add_argument("--json", action="store_true", help="print the results as JSON only")
    parser.add_argument("--front", choices=("http", "stdio"), default="http",
                        help="the modern HTTP front (default) or the stdio front (without --bare)")
    args = parser.parse_args()
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        sys.exit("valgrind is not installed (Debian: apt-get install valgrind)")
    if args.front == "stdio" and args.bare:
        sys.exit("--bare is the HTTP front's baseline; the stdio front's (the upstream called directly) runs no Hangar")
    with contextlib.suppress(KeyboardInterrupt):
        results = asyncio.run(_main(other_src=args.other_src, bare=args.bare, calls=args.calls,
                                    concurrency=args.concurrency, rounds=args.rounds, keep=args.keep,
                                    separate_threads=args.separate_threads, quiet=args.json, front=args.front))
        if args.json:
            print(json.dumps(results))


if __name__ == "__main__":
    main()
