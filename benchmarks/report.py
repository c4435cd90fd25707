"""Results: the JSON file (raw samples and environment) and the markdown section of BENCHMARKS.md."""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import re
from pathlib import Path
from typing import Any

from .targets import cell as _cell
from .targets import targets

START, END = "<!-- benchmarks:start -->", "<!-- benchmarks:end -->"
PACKAGES = ("mcp-hangar", "uvicorn", "uvloop", "httptools", "httpx", "orjson", "starlette", "mcp")
LABELS = {"direct_stdio": "direct stdio (baseline)", "hangar_stdio": "Hangar stdio front",
          "direct_stdio_rr": "direct stdio, round robin over 4 upstreams (baseline)",
          "hangar_stdio_group": "Hangar stdio front, group of 4",
          "bare_asgi": "bare ASGI endpoint (baseline)", "hangar_http_modern": "Hangar HTTP front, modern",
          "hangar_http_legacy": "Hangar HTTP front, legacy",
          "hangar_http_group": "Hangar HTTP front, modern, group of 4",
          "hangar_http_modern_default_limit": "Hangar HTTP front, modern, server at the default max_concurrency 10",
          "sdk_direct": "SDK client -> SDK upstream, direct (baseline)",
          "sdk_hangar_stdio": "SDK client -> Hangar stdio -> SDK upstream",
          "sdk_hangar_http": "SDK client -> Hangar HTTP modern -> SDK upstream",
          "hangar_http_batch": "Hangar HTTP modern, hangar_call batch of 1 (baseline)",
          "peer_http_batch": "older mcp-hangar 2.34.4 HTTP, hangar_call batch of 1",
          "hangar_http_batch_raw": "Hangar HTTP modern, hangar_call batch of 1, raw client (baseline)",
          "peer_http_batch_raw": "older mcp-hangar 2.34.4 HTTP, hangar_call batch of 1, raw client"}


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
    return {"cpu": cpu, "cpu_count": os.cpu_count(),
            "load_average": [round(x, 2) for x in os.getloadavg()], "machine": platform.machine(),
            "platform": platform.platform(), "python": platform.python_version(),
            "python_implementation": platform.python_implementation(), "packages": versions}


def ratios(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Every scenario against its baseline, at each concurrency."""
    rows = []
    present = {c["scenario"] for c in results["summary"]}
    for c in sorted({cell["concurrency"] for cell in results["summary"]}):
        for front, base in results["baselines"].items():
            if base is None or front not in present:
                continue
            f, b = _cell(results, front, c), _cell(results, base, c)
            rows.append({"concurrency": c, "front": front, "baseline": base,
                         "p50_ratio": round(f["p50_ms"] / b["p50_ms"], 2),
                         "p99_ratio": round(f["p99_ms"] / b["p99_ms"], 2),
                         "throughput_ratio": round(f["throughput_per_s"] / b["throughput_per_s"], 2)})
    return rows


def _latency_rows(results: dict[str, Any]) -> list[str]:
    lines = ["| scenario | conc. | p50 | p90 | p99 | calls/s | errors |", "|---|---:|---:|---:|---:|---:|---:|"]
    for c in sorted(results["summary"], key=lambda c: (list(LABELS).index(c["scenario"]), c["concurrency"])):
        lines.append(f"| {LABELS[c['scenario']]} | {c['concurrency']} | {c['p50_ms']:.3f} | {c['p90_ms']:.3f} | "
                     f"{c['p99_ms']:.3f} | {c['throughput_per_s']:,.0f} | {c['errors']} |")
    lines += ["", "### Ratios (scenario / its baseline, same client, same run)", "",
              "| scenario / baseline | conc. | p50 | p99 | throughput |", "|---|---:|---:|---:|---:|"]
    for row in results["ratios"]:
        lines.append(f"| {LABELS[row['front']]} / {LABELS[row['baseline']].removesuffix(' (baseline)')} | "
                     f"{row['concurrency']} | {row['p50_ratio']:.2f} | {row['p99_ratio']:.2f} | "
                     f"{row['throughput_ratio']:.2f} |")
    return lines


def _throughput(results: dict[str, Any]) -> list[str]:
    lines = ["- httpx client, concurrency 32: " + "; ".join(
        f"{LABELS[k]} {v['throughput_per_s']:,.0f} calls/s ({v['calls']} calls, {v['errors']} errors, "
        f"{v['seconds']} s)" for k, v in results["throughput"].items()) + " (bound by the httpx client)"]
    if results.get("throughput_wrk"):
        lines.append("- wrk (one thread, 32 keep-alive connections, modern requests, every answer checked): "
                     + "; ".join(f"{LABELS[k]} {v['throughput_per_s']:,.0f} calls/s ({v['calls']} calls in "
                                 f"{v['seconds']} s, {v['errors']} errors, p50 {v['p50_ms']:.2f} ms, "
                                 f"p99 {v['p99_ms']:.2f} ms)" for k, v in results["throughput_wrk"].items()))
    else:
        lines.append("- wrk: skipped (not installed; Debian package `wrk`)")
    ins = results.get("instructions") or {"skipped": "not measured"}
    if "skipped" in ins:
        lines.append(f"- instructions per call (callgrind): skipped ({ins['skipped']})")
    else:
        h, b = ins["hangar"], ins["bare"]
        lines.append(
            f"- instructions per warm call, counted by callgrind over {ins['calls']:,} raw-client calls at "
            f"concurrency {ins['concurrency']} (user space only; the same code gives the same count on a busy "
            f"host): modern HTTP front {h['instructions_per_call']:,.0f} (the event loop's thread "
            f"{h['main_thread_per_call']:,.0f}, the persistence writers and other threads the rest), bare endpoint "
            f"{b['instructions_per_call']:,.0f}: {ins['ratio']:.2f}x ({ins['loop_ratio']:.2f}x on the loop's thread); "
            f"stdio front at concurrency 1 {ins['stdio']['instructions_per_call']:,.0f} (the loop's thread "
            f"{ins['stdio']['main_thread_per_call']:,.0f})")
    return lines


def _boot_memory(results: dict[str, Any]) -> list[str]:
    b, g, fl = results["boot"], results["growth"], results["fleet"]
    many, cold, cat = fl["many_servers"], fl["cold_start"], fl["catalogue"]
    lines = [f"- boot of `mcp-hangar serve --http` to `/health/ready` (embedded default config, one lazy server): "
             f"median {b['boot_to_ready_ms_median']} ms, min {b['boot_to_ready_ms_min']} ms over {b['runs']} runs "
             f"(CPU time of the process by then: median {b['boot_cpu_ms_median']} ms); "
             "with the benchmark config (4-member group started at boot): "
             f"{results['hangar_http_boot_to_ready_ms']} ms"]
    peer = results.get("peer")
    if peer:
        pb = peer["boot"]
        lines.append(f"- older mcp-hangar {peer['version'].split()[-1]} (`{peer['path']}`): boot to `/health/ready` "
                     f"median {pb['boot_to_ready_ms_median']} ms, min {pb['boot_to_ready_ms_min']} ms over "
                     f"{pb['runs']} runs (one lazy server); idle RSS {pb['idle_rss_mib']} MiB; in the latency run "
                     f"{results['peer_http_rss_idle_mib']} MiB idle, {results['peer_http_rss_after_calls_mib']} MiB "
                     "after its cells")
    imp = results["imports"]
    lines += [
        f"- imports during a boot (`-X importtime`, until ready): {imp['modules']} modules, "
        f"{imp['total_import_ms']} ms cumulative over top-level imports; "
        "top level: " + ", ".join(f"`{r['module']}` {r['cumulative_us'] / 1000:.0f} ms" for r in imp["top_level"][:6]),
        "- largest single modules (self time): " + ", ".join(
            f"`{r['module']}` {r['self_us'] / 1000:.1f} ms" for r in imp["top_self"][:8]),
        f"- idle RSS: {b['idle_rss_mib']} MiB (+ reaper {b['reaper_rss_mib']} MiB); the first REST request, "
        f"which loads the REST API, took {b['first_rest_request_ms']} ms and left {b['rss_after_rest_mib']} MiB; "
        f"with {many['servers']:,} "
        f"registered cold servers {many['rss_cold_mib']} MiB; with {many['running']} of them running "
        f"{many['rss_running_mib']} MiB "
        f"(their processes {many['children_rss_mib']} MiB)",
        f"- growth: stdio Hangar, after {g['warmup_calls']:,} warm-up calls at concurrency 32, "
        f"{g['rss_before_mib']} MiB; "
        f"after {g['calls']:,} more {g['rss_after_mib']} MiB ({g['growth_pct']:+.2f}%; every fifth: "
        f"{', '.join(str(x) for x in g['rss_steps_mib'])} MiB, second half {g['second_half_growth_pct']:+.2f}%; "
        f"{g['errors']} errors, {g['seconds']} s); HTTP Hangar "
        f"{results['hangar_http_rss_idle_mib']} MiB idle, {results['hangar_http_rss_after_calls_mib']} MiB after "
        "its cells",
        f"- cold start: {cold['concurrent_calls']} concurrent first calls on one lazy server: "
        f"{cold['spawns_counted_by_process']} process spawned (Hangar's starts counter: "
        f"{cold['spawns_counted_by_hangar']:.0f}), {cold['ok']} ok, all answered in {cold['total_ms']} ms "
        f"(p50 {cold['per_call_ms']['p50_ms']} ms) against {cold['lone_first_call_ms']} ms for one lone first call "
        f"on an identical server ({cold['total_over_lone']}x); REST start of the demo `math`: median "
        f"{b['math_cold_start_ms_median']} ms",
        f"- scale: `GET /api/mcp_servers` with {many['servers']:,} servers p50 {many['list_servers']['p50_ms']} ms, "
        f"p90 {many['list_servers']['p90_ms']} ms ({many['list_servers']['n']} requests); aggregated `tools/list` "
        f"over {cat['servers']} ready servers x {cat['tools_each']} tools ({cat['listed_tools']:,} tools with the "
        f"management ones, {cat['pages']} pages, all fetched) with the raw keep-alive client p50 "
        f"{cat['full_list']['p50_ms']} ms, p90 {cat['full_list']['p90_ms']} ms ({cat['full_list']['n']} listings); "
        f"with httpx (alternated) p50 {cat['full_list_httpx']['p50_ms']} ms, "
        f"p90 {cat['full_list_httpx']['p90_ms']} ms",
    ]
    return lines


def markdown(results: dict[str, Any]) -> str:
    env = results["environment"]
    lines = [START, "",
             f"Run `{results['started']}` ({'quick' if results['quick'] else 'full'}: "
             f"{results['calls_per_cell']} calls per cell after {results['warmup_per_cell']} warm-up calls, "
             f"distinct arguments, {results['rounds']} interleaved rounds), raw data `{results['json_file']}`"
             + (f", chart `{results['chart_file']}`." if results.get("chart_file") else "."),
             f"Machine: {env['cpu']} ({env['cpu_count']} CPUs), load average {env.get('load_average_at_start')} at the "
             f"start and {env.get('load_average')} at the end, "
             f"Python {env['python']}, " + ", ".join(f"{k} {v}" for k, v in env["packages"].items() if v) + ".", "",
             "### Warm `tools/call` latency (ms) and throughput", ""]
    lines += _latency_rows(results)
    lines += ["", "### Throughput, boot, memory, cold start, scale", ""]
    lines += _throughput(results) + _boot_memory(results)
    lines += ["", "### Targets", "", "| what | target | measured | met |", "|---|---|---|---|"]
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
    fig, axes = plt.subplots(1, len(levels), figsize=(6 * len(levels), 5.5))
    for ax, level in zip(axes, levels, strict=True):
        names = [s for s in LABELS if any(c["scenario"] == s for c in results["summary"])]
        cells = [_cell(results, s, level) for s in names]
        p50 = [c["p50_ms"] for c in cells]
        p99 = [c["p99_ms"] - c["p50_ms"] for c in cells]
        ax.bar(range(len(cells)), p50, yerr=[[0] * len(cells), p99], capsize=3,
               color=["#999" if results["baselines"].get(s, "") is None else "#1f77b4" for s in names])
        ax.set_xticks(range(len(cells)), [s + ("*" if results["baselines"].get(s, "") is None else "")
                                          for s in names], rotation=45, ha="right", fontsize=7)
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
