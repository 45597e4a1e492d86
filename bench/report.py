"""RESULTS.md from a results document: machine, setup, targets, one table per scenario, plots.

A hand-written analysis (bench/ANALYSIS.md: shortfalls, profiles, fixes) is appended when it
exists, so regenerating the tables never loses it. Example::

    text = render(doc, plots={"scaling": Path("bench/results/scaling.png")},
                  report_path=Path("bench/RESULTS.md"))
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from bench.results import BACKENDS, DERIVED, LATENCY_RPCS

SETUP_TEXT = (
    "Each service under test is `latentserve serve` in its own process (`python -m bench.serve "
    "serve`), configured only by the `LATENTSERVE_*` settings listed below. Load comes from one "
    "harness process: the asyncio `AsyncClient` with many concurrent tasks on one channel "
    "(closed loop: each task sends its next request when the previous one returns). The local "
    "tritonserver (pip `nvidia-pytriton` wheel, python backend running the same ONNX with "
    "onnxruntime) is a third process. All of them share the machine's CPUs, so the load "
    "generator competes with the server: absolute numbers are for this machine only, ratios are "
    "measured side by side in the same run (interleaved rounds)."
)


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in rows]
    return [*lines, ""]


def _rel(path: Path, report_path: Path) -> str:
    return os.path.relpath(path, report_path.parent)


def _machine(doc: dict[str, Any]) -> list[str]:
    m = doc.get("machine", {})
    git = m.get("git") or {}
    packages = ", ".join(f"{k} {v}" for k, v in (m.get("packages") or {}).items() if v)
    rows = [("CPU", m.get("cpu_model")), ("logical / usable CPUs",
            f"{m.get('logical_cpus')} / {m.get('usable_cpus')}"),
            ("cgroup CPU quota", m.get("cgroup_cpus") or "none"),
            ("memory GiB", m.get("memory_gib")), ("OS", m.get("os")),
            ("Python", m.get("python")), ("packages", packages),
            ("git commit", f"{git.get('commit')}{' (dirty tree)' if git.get('dirty') else ''}"),
            ("load average at start (1/5/15 min)", m.get("load_average"))]
    return ["## Machine", "", *table(["fact", "value"], rows)]


def _setup(doc: dict[str, Any]) -> list[str]:
    setup = doc.get("setup") or {}
    model = setup.get("model") or {}
    lines = ["## Setup", "", SETUP_TEXT, ""]
    if model:
        source = ("the shipped bundle generators/zoo/sprites-vae" if model.get("source") == "zoo"
                  else "a tiny analytic stand-in (one dense layer + sigmoid) of sprites-vae's "
                       "size, because the zoo bundle was not there")
        classes = (f"; class-conditional ({model['num_classes']} classes): every path sends "
                   f"item k of request i the label (i + k) mod {model['num_classes']}"
                   if model.get("num_classes") else "")
        lines += [f"Model: **{model.get('name')}** — {source}; latent {model.get('latent_dim')}, "
                  f"output {model.get('output_shape')}, max batch {model.get('max_batch_size')}"
                  f"{classes}.", ""]
    for label, svc in (setup.get("services") or {}).items():
        settings = ", ".join(f"`{k}={v}`" for k, v in svc.get("settings", {}).items()
                             if k not in ("REGISTRY_URI", "CACHE_DIR"))
        lines += [f"- service `{label}` (start-up {_fmt(svc.get('startup_s'))} s): {settings}"]
    return [*lines, ""]


def _targets(doc: dict[str, Any]) -> list[str]:
    rows = [(f"`{t['key']}`", f"{t['op']} {t['target']}", t["value"],
             "—" if t["met"] is None else ("met" if t["met"] else "**missed**"))
            for t in doc.get("targets", [])]
    derived = ", ".join(f"`{k}` = {' ÷ '.join(f'`{p}`' for p in parts)}"
                        for k, parts in DERIVED.items())
    return ["## Targets", "", *table(["key", "target", "measured", ""], rows),
            f"Derived across scenarios (only when both were measured in the same run): "
            f"{derived}.", ""]


def _cores(mode: dict[str, Any]) -> str:
    cores = mode.get("cores") or {}
    return " / ".join(f"{name} {_fmt(value)}" for name, value in cores.items()) or "—"


def _modes(section: dict[str, Any]) -> list[str]:
    rows = [(name, m.get("items_per_s"), m.get("requests_per_s"), m.get("p50_ms"),
             m.get("p99_ms"), m.get("requests"), m.get("failed"), _cores(m),
             m.get("avg_backend_batch"), m.get("backend_busy"))
            for name, m in (section.get("modes") or {}).items()]
    return [*table(["mode", "images/s", "requests/s", "p50 ms", "p99 ms", "requests", "failed",
                    "CPU cores used", "backend batch", "backend busy"], rows),
            "CPU cores used: CPU seconds / wall seconds per process over the window (warm-up "
            "included); `machine` counts every process on the machine, so machine minus the "
            "others is work not ours. Backend batch: rows per decoder call; backend busy: "
            "share of wall time inside decoder calls (the service's own metrics; embedded "
            "backend only).", ""]


def _batching(s: dict[str, Any]) -> list[str]:
    ratios = [(k, s.get(k)) for k in ("concurrent_vs_batched_ratio",
                                      "concurrent_vs_sequential_ratio",
                                      "service_vs_inprocess_ratio",
                                      "service_cpu_ms_per_request")]
    policy = s.get("policy") or {}
    columns = ("sequential_p50_ms", "sequential_ips", "sequential_cpu_ms_per_request",
               "concurrent_ips", "concurrent_p50_ms", "concurrent_cpu_ms_per_request")
    policy_rows = [(name, *((policy.get(name) or {}).get(c) for c in columns))
                   for name in ("adaptive", "fixed_delay", "spinning", "asyncio_loop")
                   if name in policy]
    head = ["Modes: `batched` one client n=64, `concurrent` 64 clients n=1, `sequential` one "
            "client n=1, `inprocess` onnxruntime session.run on the same 64-row batches in the "
            "harness process.", "", *_modes(s), *table(["ratio", "value"], ratios)]
    if not policy_rows:
        return head
    return [*head,
            f"Service variants: `adaptive` (the default: no timer, spinning off), "
            f"`fixed_delay` (a {policy.get('fixed_delay_ms', '?')} ms window, "
            "`LATENTSERVE_BATCH_MAX_DELAY_MS`), `spinning` (`LATENTSERVE_INTRA_OP_SPINNING=true`), "
            "`asyncio_loop` (the standard event loop instead of uvloop, "
            "`LATENTSERVE_EVENT_LOOP=asyncio`). "
            "CPU ms/request: the service process, all threads.",
            "", *table(["variant", "lone n=1 p50 ms", "lone n=1 ips", "lone CPU ms/req",
                        "64×n=1 ips", "64×n=1 p50 ms", "64×n=1 CPU ms/req"], policy_rows)]


def _triton(s: dict[str, Any]) -> list[str]:
    keys = ("service_ips", "direct_ips", "service_vs_direct_ratio", "batched_service_ips",
            "batched_direct_ips", "batched_service_vs_direct_ratio", "p50_ms_service",
            "p50_ms_direct", "p50_overhead_ms", "avg_batch", "avg_batch_direct",
            "avg_batch_ratio", "triton_version")
    return ["Headline throughput: 64 concurrent clients × n=1; p50: one client × n=1. "
            "`avg_batch` / `avg_batch_direct`: Triton's statistics (Δ inference count ÷ Δ "
            "execution count) over the 64×n=1 windows through the service / straight to "
            "Triton.", "", *table(["key", "value"], [(k, s.get(k))
                                                                       for k in keys]),
            *_modes(s)]


def _latency(s: dict[str, Any]) -> list[str]:
    rows = []
    for rpc in LATENCY_RPCS:
        for backend in BACKENDS:
            cell = (s.get(rpc) or {}).get(backend) or {}
            rows.append((rpc, backend, cell.get("p50_ms"), cell.get("p90_ms"),
                         cell.get("p99_ms"), cell.get("requests"), cell.get("failed")))
    lines = table(["rpc", "backend", "p50 ms", "p90 ms", "p99 ms", "requests", "failed"], rows)
    errors = s.get("errors") or {}
    return lines + [f"- {backend} could not run: {msg}" for backend, msg in errors.items()]


def _scaling(s: dict[str, Any]) -> list[str]:
    rows = [(p.get("axis"), p.get("concurrency"), p.get("n"), p.get("items_per_s"),
             p.get("requests_per_s"), p.get("p50_ms"), p.get("p99_ms"), p.get("failed"))
            for p in s.get("curve") or []]
    return table(["axis", "clients", "n", "images/s", "requests/s", "p50 ms", "p99 ms",
                  "failed"], rows)


def _payload(s: dict[str, Any]) -> list[str]:
    rows = [(fmt, (s.get(fmt) or {}).get("bytes"), (s.get(fmt) or {}).get("bytes_per_item"),
             (s.get(fmt) or {}).get("ms"), (s.get(fmt) or {}).get("error"))
            for fmt in ("float32", "uint8", "png")]
    return [*table(["format", "bytes", "bytes/item", "median ms", "error"], rows),
            f"All three succeeded: {_fmt(s.get('ok'))}", ""]


def _hot_swap(s: dict[str, Any]) -> list[str]:
    rows = [(m.get("kind"), f"v{m.get('from')} → v{m.get('to')}", m.get("at_s"),
             m.get("switch_s"), m.get("old_served_until_s")) for m in s.get("moves") or []]
    head = (f"{_fmt(s.get('requests'))} requests over {_fmt(s.get('duration_s'))} s, "
            f"{_fmt(s.get('failed'))} failed; max switch {_fmt(s.get('switch_s'))} s "
            f"(registry poll {_fmt((s.get('settings') or {}).get('registry_poll_s'))} s).")
    return [head, "", *table(["move", "versions", "at s", "first new response after s",
                              "last old response after s"], rows)]


def _unknown_setting(s: dict[str, Any]) -> list[str]:
    return [f"**Note:** {s['note']}", ""] if s.get("note") else []


def _cache(s: dict[str, Any]) -> list[str]:
    keys = ("hit_speedup", "bit_identical", "setting_known", "hit_p50_ms", "miss_p50_ms",
            "hit_ips", "miss_ips")
    metrics = s.get("cache_metrics") or {}
    return [*_unknown_setting(s),
            "One client, Sample n=64: `hit` repeats one request, `miss` a new seed each time "
            "(interleaved). `hit_speedup` = miss p50 ÷ hit p50; `bit_identical`: the hit equals "
            "the first answer and a cache-off service's answer byte for byte.", "",
            *table(["key", "value"], [(k, s.get(k)) for k in keys]),
            *(table(["cache metric (Δ over the windows)", "value"], metrics.items())
              if metrics else [])]


def _workers(s: dict[str, Any]) -> list[str]:
    rows = [(p.get("workers"), p.get("processes"), p.get("concurrent_ips"),
             p.get("concurrent_p50_ms"), p.get("sequential_ips"), p.get("p50_ms"),
             p.get("service_cpu_ms_per_request"), p.get("failed"))
            for p in s.get("curve") or []]
    return [*_unknown_setting(s),
            f"`LATENTSERVE_WORKERS` per point; 64 clients × n=1 over "
            f"{(s.get('settings') or {}).get('channels', '?')} connections, and one client × "
            "n=1. CPU: the service process and its children.", "",
            *table(["workers", "processes", "64×n=1 images/s", "64×n=1 p50 ms",
                    "sequential images/s", "sequential p50 ms", "service CPU ms/req",
                    "failed"], rows),
            f"64×n=1, 2 workers ÷ 1 worker: {_fmt(s.get('concurrent_ratio_2_vs_1'))}", ""]


def _peers(s: dict[str, Any]) -> list[str]:
    ml = s.get("mlserver") or {}
    ours = s.get("latentserve") or {}
    cols = ("batched_ips", "concurrent_ips", "sequential_ips", "sequential_p50_ms")
    rows = [("latentserve (embedded)", *(ours.get(c) for c in cols), "", "")]
    for label, c in (ml.get("configs") or {}).items():
        if "error" in c:
            rows.append((f"MLServer `{label}`", None, None, None, None, None, c["error"][:200]))
            continue
        out = c.get("outputs") or {}
        rows.append((f"MLServer `{label}`", *(c.get(k) for k in cols), out.get("match"),
                     ""))
    rows.append(("MLServer best per load", *(ml.get(c) for c in cols), "", ""))
    won = ml.get("settings") or {}
    ratios = [(k, s.get(k)) for k in ("concurrent_ratio", "batched_ratio", "sequential_ratio",
                                      "sequential_p50_ratio", "sequential_p50_below")]
    return ["The same decoder ONNX: latentserve's embedded service (SDK Sample) vs MLServer + "
            "mlserver-mlflow serving it from an MLflow registry (V2 gRPC, tritonclient), "
            "interleaved. Loads: one client × n=64, 64 clients × n=1, one client × n=1.", "",
            *table(["server", "1×n=64 images/s", "64×n=1 images/s", "sequential images/s",
                    "sequential p50 ms", "outputs = onnxruntime", "error"], rows),
            "MLServer's best per load: " + ", ".join(f"{k} `{v}`" for k, v in won.items()),
            "", *table(["ratio (latentserve ÷ MLServer best)", "value"], ratios)]


def _transport(s: dict[str, Any]) -> list[str]:
    cols = ("concurrent_rps", "sequential_rps", "sequential_p50_ms", "cpu_ms_per_request")
    rows = [(f"`{name}`", *(v.get(c) for c in cols))
            for name, v in (s.get("variants") or {}).items()]
    return ["Bare gRPC servers (one method answering 16 KiB of fixed bytes, no protobuf, no "
            "handler work) under the same small-request loads: the floor under the service's "
            "own per-request CPU.", "",
            *table(["server", "64 clients req/s", "one client req/s", "one client p50 ms",
                    "server CPU ms/req (64 clients)"], rows),
            f"Floor: {_fmt(s.get('floor_cpu_ms_per_request'))} ms of server CPU per request.",
            ""]


def _http(s: dict[str, Any]) -> list[str]:
    def rows(section: dict[str, Any]) -> list[tuple[Any, ...]]:
        return [(f"`{name}`", v.get("concurrent_rps"), v.get("cpu_ms_per_request"),
                 (v.get("concurrent") or {}).get("client_cpu_ms_per_request"),
                 (v.get("sequential") or {}).get("rps"), v.get("sequential_p50_ms"))
                for name, v in section.items() if isinstance(v, dict) and "concurrent" in v]

    header = ["path", "64 clients req/s", "server CPU ms/req (64 clients)",
              "load generator CPU ms/req", "one client req/s", "one client p50 ms"]
    oip = s.get("oip") or {}
    ratios = [(k, s.get(k)) for k in ("http_json_vs_grpc_concurrent",
                                      "http_binary_vs_grpc_concurrent", "http_json_vs_grpc_cpu",
                                      "http_binary_vs_grpc_cpu",
                                      "http_json_vs_grpc_sequential_p50")]
    ratios += [(f"oip.{k}", oip.get(k)) for k in ("concurrent_ratio", "sequential_p50_ratio",
                                                  "http_vs_grpc_concurrent")]
    return ["One service serving gRPC and HTTP: Sample n=1 (float32) over gRPC (SDK), HTTP JSON "
            "and HTTP binary protobuf (aiohttp), interleaved.", "", *table(header, rows(
                s.get("transports") or {})),
            "Open Inference Protocol decode n=1 through tritonclient: latentserve's OIP on its "
            "gRPC and HTTP ports vs MLServer + mlserver-mlflow on the same decoder (its best "
            "small-request configuration), interleaved.", "", *table(header, rows(oip)),
            *([f"MLServer failed: {oip['mlserver_error'][:300]}", ""]
              if oip.get("mlserver_error") else []),
            *table(["ratio", "value"], ratios)]


REALISTIC_PARTS = {"batching": _batching, "triton": _triton, "peers": _peers}
REALISTIC_HEADLINE = (
    ("batched_vs_inprocess_ratio", "one client × n=64 ÷ in-process n=64",
     ("batching.batched_ips", "batching.inprocess_ips")),
    ("concurrent_vs_inprocess_ratio", "64 clients × n=1 ÷ in-process n=64",
     ("batching.concurrent_ips", "batching.inprocess_ips")),
    ("sequential_p50_overhead_ms", "one client × n=1: service p50 − in-process p50 (ms)",
     ("reference.service_n1_p50_ms", "reference.inprocess_n1_p50_ms")),
    ("concurrent_vs_mlserver_ratio", "64 clients × n=1 ÷ MLServer's best",
     ("peers.latentserve.concurrent_ips", "peers.mlserver.concurrent_ips")),
)


def _sci(value: Any) -> str:
    return f"{value:.1e}" if isinstance(value, float) else _fmt(value)


def _dig(node: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def _realistic(s: dict[str, Any]) -> list[str]:
    model = s.get("model") or {}
    export = model.get("export") or {}
    made = ("the cached export" if export.get("cache_hit")
            else f"exported in {_fmt(export.get('export_s'))} s")
    lines = [f"Model: **{model.get('name')}** — {export.get('architecture')}, "
             f"{_fmt(export.get('parameters'))} parameters, latent {model.get('latent_dim')}, "
             f"output {model.get('output_shape')}, max batch {model.get('max_batch_size')}; "
             f"weights {export.get('weights')}. ONNX: {made} (cache key "
             f"`{export.get('cache_key')}`, torch ↔ onnxruntime max |Δ| "
             f"{_sci(export.get('parity_max_abs_diff'))}), made into a bundle by the project's "
             "builder. Its own registry and services; the `batching`, `triton` and `peers` "
             "scenarios below ran on it unchanged (MLServer: `parallel_workers` 0 only, its best "
             "settings).", ""]
    targets = s.get("targets") or {}
    rows = []
    for key, what, (num, den) in REALISTIC_HEADLINE:
        value, target = s.get(key), targets.get(key)
        op = "≤" if key.endswith("_ms") else "≥"
        met = None if value is None or target is None else (
            value <= target if op == "≤" else value >= target)
        rows.append((what, _dig(s, num), _dig(s, den), value, f"{op} {_fmt(target)}",
                     "—" if met is None else ("met" if met else "**missed**")))
    ref = s.get("reference") or {}
    lines += table(["figure", "service", "in-process / peer", "value", "target", ""], rows)
    if "error" in ref:
        lines += ["**reference failed:**", "", "```", str(ref["error"])[-2000:], "```", ""]
    else:
        lines += ["In-process reference, interleaved with one client × n=1 through the "
                  f"service: in-process p50 {_fmt(ref.get('inprocess_n1_p50_ms'))} ms "
                  f"({_fmt(ref.get('inprocess_n1_ips'))} images/s), service p50 "
                  f"{_fmt(ref.get('service_n1_p50_ms'))} ms ({_fmt(ref.get('service_n1_ips'))}"
                  f" images/s), service CPU {_fmt(ref.get('service_n1_cpu_ms_per_request'))} "
                  "ms per request.", "", *_modes(ref)]
    for name, render_part in REALISTIC_PARTS.items():
        part = s.get(name)
        if not isinstance(part, dict):
            continue
        lines += [f"### realistic · {name}", ""]
        if "error" in part:
            lines += ["**Failed:**", "", "```", str(part["error"])[-3000:], "```", ""]
            continue
        lines += render_part(part)
    return lines


SECTIONS = {"batching": _batching, "triton": _triton, "latency": _latency,
            "scaling": _scaling, "payload": _payload, "hot_swap": _hot_swap,
            "cache": _cache, "workers": _workers, "peers": _peers,
            "transport": _transport, "http": _http, "realistic": _realistic}


def render(doc: dict[str, Any], *, plots: dict[str, Path], report_path: Path,
           analysis: Path | None = None) -> str:
    """The Markdown report of `doc` (links relative to `report_path`)."""
    quick = " — **quick mode: smoke-test numbers, not results**" if doc.get("quick") else ""
    lines = ["# latentserve benchmark results", "",
             f"Generated {doc.get('generated')} by `{doc.get('command')}`{quick}.", "",
             *_machine(doc), *_setup(doc), *_targets(doc)]
    for name, section_fn in SECTIONS.items():
        section = doc.get(name)
        if not isinstance(section, dict):
            continue
        meta = section.get("meta") or {}
        lines += [f"## {name}", "",
                  f"Measured {meta.get('started')} in {_fmt(meta.get('seconds'))} s; load "
                  f"average before/after {meta.get('load_average_before')} / "
                  f"{meta.get('load_average_after')}.", ""]
        if "error" in section:
            lines += ["**Failed:**", "", "```", str(section["error"])[-3000:], "```", ""]
            continue
        lines += section_fn(section)
        if name in plots:
            lines += [f"![{name}]({_rel(plots[name], report_path)})", ""]
    if analysis is not None and analysis.is_file():
        lines += [analysis.read_text().rstrip(), ""]
    return "\n".join(lines)
