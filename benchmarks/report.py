"""Results: the JSON file (raw samples and environment) and the markdown section of BENCHMARKS.md."""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import re
from pathlib import Path
from typing import Any

START, END = "<!-- benchmarks:start -->", "<!-- benchmarks:end -->"
PACKAGES = ("mcp-hangar", "uvicorn", "uvloop", "httptools", "httpx", "orjson", "starlette", "mcp")
LABELS = {"direct_stdio": "direct stdio (baseline)", "hangar_stdio": "Hangar stdio front",
          "bare_asgi": "bare ASGI endpoint (baseline)", "hangar_http_modern": "Hangar HTTP front, modern",
          "hangar_http_legacy": "Hangar HTTP front, legacy"}


def environment() -> dict[str, Any]:
    cpu = platform.processor()
    with open("/proc/cpuinfo") if os.path.exists("/proc/cpuinfo") else open(os.devnull) as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return {"cpu": cpu, "cpu_count": os.cpu_count(), "machine": platform.machine(),
            "platform": platform.platform(), "python": platform.python_version(),
            "python_implementation": platform.python_implementation(), "packages": versions}


def _cell(results: dict[str, Any], scenario: str, concurrency: int) -> dict[str, Any]:
    for cell in results["summary"]:
        if cell["scenario"] == scenario and cell["concurrency"] == concurrency:
            return dict(cell)
    raise KeyError((scenario, concurrency))


def ratios(results: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for c in sorted({cell["concurrency"] for cell in results["summary"]}):
        for front, base in (("hangar_stdio", "direct_stdio"), ("hangar_http_modern", "bare_asgi"),
                            ("hangar_http_legacy", "bare_asgi")):
            f, b = _cell(results, front, c), _cell(results, base, c)
            rows.append({"concurrency": c, "front": front, "baseline": base,
                         "p50_ratio": round(f["p50_ms"] / b["p50_ms"], 2),
                         "p99_ratio": round(f["p99_ms"] / b["p99_ms"], 2),
                         "throughput_ratio": round(f["throughput_per_s"] / b["throughput_per_s"], 2)})
    return rows


def targets(results: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(what, target, measured, met) for every target of issue 10; unmeasured ones say so."""
    def r(front: str, base: str) -> float:
        return float(_cell(results, front, 1)["p50_ms"] / _cell(results, base, 1)["p50_ms"])

    def verdict(ok: bool) -> str:
        return "yes" if ok else "**no**"

    rows = []
    stdio = r("hangar_stdio", "direct_stdio")
    rows.append(("warm call p50, Hangar stdio front / direct stdio (c=1)", "<= 3.0", f"{stdio:.2f}",
                 verdict(stdio <= 3.0)))
    modern, legacy = r("hangar_http_modern", "bare_asgi"), r("hangar_http_legacy", "bare_asgi")
    rows.append(("warm call p50, Hangar HTTP front / bare ASGI endpoint (c=1)", "<= 1.3",
                 f"modern {modern:.2f}, legacy {legacy:.2f}", verdict(modern <= 1.3 and legacy <= 1.3)))
    tails = {s: _cell(results, s, 1)["p99_ms"] / _cell(results, s, 1)["p50_ms"]
             for s in ("hangar_stdio", "hangar_http_modern", "hangar_http_legacy")}
    rows.append(("p99 / p50 through Hangar at concurrency 1", "<= 3",
                 ", ".join(f"{s.removeprefix('hangar_')} {v:.2f}" for s, v in tails.items()),
                 verdict(max(tails.values()) <= 3)))
    tool = "wrk" if results.get("throughput_wrk") else "httpx"
    tp = results.get("throughput_wrk") or results["throughput"]
    hangar, bare = tp["hangar_http_modern"], tp["bare_asgi"]
    share = hangar["throughput_per_s"] / bare["throughput_per_s"]
    rows.append((f"throughput, modern HTTP front, c=32, {hangar['seconds']:.0f} s ({tool})",
                 ">= 2,000/s, >= 40% of bare, 0 errors",
                 f"{hangar['throughput_per_s']:,.0f}/s, {share:.0%} of bare, {hangar['errors']} errors",
                 verdict(hangar["throughput_per_s"] >= 2000 and share >= 0.4 and hangar["errors"] == 0)))
    rows.append(("warm call p50 versus the older implementation's HTTP front", ">= 10x lower",
                 "not measured (no --peer yet)", "-"))
    boot_ms = results["boot"]["boot_to_ready_ms_median"]
    rows.append(("boot to /health/ready (embedded default config)", "<= 0.5 s, >= 3x faster than older",
                 f"{boot_ms / 1000:.2f} s (older: not measured)", verdict(boot_ms <= 500)))
    rss = results["boot"]["idle_rss_mib"]
    rows.append(("RSS idle / with 1,000 cold servers / growth after 100k calls", "<= 60 MB / <= 120 MB / <= 5%",
                 f"{rss:.1f} MiB / not measured / not measured", verdict(rss <= 60) + " (idle only)"))
    rows.append(("GET /api/mcp_servers with 1,000 servers; tools/list of 2,000 tools", "p50 <= 20 ms; p50 <= 10 ms",
                 "not measured", "-"))
    return rows


def markdown(results: dict[str, Any]) -> str:
    env = results["environment"]
    lines = [START, "",
             f"Run `{results['started']}` ({'quick' if results['quick'] else 'full'}: "
             f"{results['calls_per_cell']} calls "
             f"per cell after {results['warmup_per_cell']} warm-up calls, distinct arguments), raw data "
             f"`{results['json_file']}`"
             + (f", chart `{results['chart_file']}`." if results.get("chart_file") else "."),
             f"Machine: {env['cpu']} ({env['cpu_count']} CPUs), Python {env['python']}, "
             + ", ".join(f"{k} {v}" for k, v in env["packages"].items() if v) + ".", "",
             "### Warm `tools/call` latency (ms) and throughput", "",
             "| scenario | conc. | p50 | p90 | p99 | calls/s | errors |", "|---|---:|---:|---:|---:|---:|---:|"]
    for cell in sorted(results["summary"], key=lambda c: (list(LABELS).index(c["scenario"]), c["concurrency"])):
        lines.append(f"| {LABELS[cell['scenario']]} | {cell['concurrency']} | {cell['p50_ms']:.3f} | "
                     f"{cell['p90_ms']:.3f} | {cell['p99_ms']:.3f} | {cell['throughput_per_s']:,.0f} | "
                     f"{cell['errors']} |")
    lines += ["", "### Ratios (through Hangar / baseline, same client, same run)", "",
              "| front / baseline | conc. | p50 | p99 | throughput |", "|---|---:|---:|---:|---:|"]
    for row in results["ratios"]:
        lines.append(f"| {LABELS[row['front']]} / {LABELS[row['baseline']].removesuffix(' (baseline)')} | "
                     f"{row['concurrency']} | {row['p50_ratio']:.2f} | {row['p99_ratio']:.2f} | "
                     f"{row['throughput_ratio']:.2f} |")
    b = results["boot"]
    lines += ["", "### Boot and memory", "",
              f"- boot of `mcp-hangar serve --http` to `/health/ready` (embedded default config): median "
              f"{b['boot_to_ready_ms_median']} ms, min {b['boot_to_ready_ms_min']} ms over {b['runs']} runs; with the "
              f"benchmark config: {results['hangar_http_boot_to_ready_ms']} ms",
              f"- cold start of the lazy `math` server (REST start): median {b['math_cold_start_ms_median']} ms",
              f"- idle RSS: {b['idle_rss_mib']} MiB (+ reaper {b['reaper_rss_mib']} MiB); HTTP Hangar with the fast "
              f"upstream: {results['hangar_http_rss_idle_mib']} MiB idle, "
              f"{results['hangar_http_rss_after_calls_mib']} MiB "
              f"after the latency cells; stdio Hangar after them: {results['hangar_stdio_rss_after_calls_mib']} MiB",
              "- sustained throughput at concurrency 32: " + "; ".join(
                  f"{LABELS[k]} {v['throughput_per_s']:,.0f} calls/s ({v['calls']} calls, {v['errors']} errors, "
                  f"{v['seconds']} s)" for k, v in results["throughput"].items()),
              "- the same with wrk (one thread, 32 keep-alive connections, modern requests): " + ("; ".join(
                  f"{LABELS[k]} {v['throughput_per_s']:,.0f} calls/s ({v['calls']} calls, {v['errors']} errors, "
                  f"p50 {v['p50_ms']:.2f} ms, p99 {v['p99_ms']:.2f} ms)"
                  for k, v in results["throughput_wrk"].items()) if results.get("throughput_wrk")
                  else "skipped (wrk is not installed)"),
              "", "### Targets of issue 10", "", "| what | target | measured | met |", "|---|---|---|---|"]
    lines += [f"| {a} | {b_} | {c} | {d} |" for a, b_, c, d in targets(results)]
    lines += ["", END]
    return "\n".join(lines)


def chart(results: dict[str, Any], path: Path) -> bool:
    """A PNG of p50 latency (with p99 whiskers) by scenario and concurrency; False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    levels = sorted({c["concurrency"] for c in results["summary"]})
    fig, axes = plt.subplots(1, len(levels), figsize=(5 * len(levels), 4.5))
    for ax, level in zip(axes, levels, strict=True):
        cells = [_cell(results, s, level) for s in LABELS]
        p50 = [c["p50_ms"] for c in cells]
        p99 = [c["p99_ms"] - c["p50_ms"] for c in cells]
        ax.bar(range(len(cells)), p50, yerr=[[0] * len(cells), p99], capsize=3,
               color=["#888", "#1f77b4", "#aaa", "#2ca02c", "#98df8a"])
        ax.set_xticks(range(len(cells)), [LABELS[s].replace(" (baseline)", "*").replace("Hangar ", "H. ")
                                          for s in LABELS], rotation=35, ha="right", fontsize=8)
        ax.set_yscale("log")
        ax.set_title(f"concurrency {level}")
        ax.set_ylabel("ms (bar p50, whisker p99; log)")
    fig.suptitle(f"warm tools/call latency, {results['started']} (* = baseline)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def write(results: dict[str, Any], out_dir: Path, markdown_path: Path | None) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{results['started'].replace(':', '').replace('-', '')}.json"
    results["json_file"] = os.path.relpath(path, markdown_path.parent) if markdown_path else str(path)
    png = path.with_suffix(".png")
    if chart(results, png):
        results["chart_file"] = os.path.relpath(png, markdown_path.parent) if markdown_path else str(png)
    path.write_text(json.dumps(results, indent=1))
    section = markdown(results)
    (out_dir / "summary.md").write_text(section + "\n")
    if markdown_path is not None:
        text = markdown_path.read_text() if markdown_path.exists() else "# Benchmarks\n\n"
        if START in text and END in text:
            text = re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _: section, text, flags=re.S)
        else:
            text = text.rstrip("\n") + "\n\n" + section + "\n"
        markdown_path.write_text(text)
    return path
