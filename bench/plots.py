"""PNG plots of a results document (matplotlib, Agg backend): one figure per scenario.

Example::

    paths = write_plots(doc, Path("bench/results"))   # {"scaling": Path(".../scaling.png"), ...}
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from bench.results import BACKENDS, LATENCY_RPCS


def _bar_labels(ax: Any, bars: Any, fmt: str = "{:.0f}") -> None:
    for bar in bars:
        height = bar.get_height()
        ax.annotate(fmt.format(height), (bar.get_x() + bar.get_width() / 2, height),
                    ha="center", va="bottom", fontsize=8)


def plot_batching(section: dict[str, Any]) -> Figure:
    fig, ax = plt.subplots(figsize=(7, 4))
    names = ["sequential_ips", "concurrent_ips", "batched_ips", "inprocess_ips"]
    labels = ["sequential\nn=1", "64 concurrent\nn=1", "one client\nn=64",
              "in-process ORT\nbatch 64"]
    values = [section.get(n) or 0.0 for n in names]
    _bar_labels(ax, ax.bar(labels, values, color=["#999", "#4c72b0", "#55a868", "#c44e52"]))
    ax.set_ylabel("images / s")
    ax.set_title("Embedded backend: batching")
    return fig


def plot_triton(section: dict[str, Any]) -> Figure:
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 4))
    loads = [("64 × n=1", "service_ips", "direct_ips"),
             ("1 × n=64", "batched_service_ips", "batched_direct_ips")]
    xs = range(len(loads))
    width = 0.38
    _bar_labels(left, left.bar([x - width / 2 for x in xs],
                               [section.get(s) or 0.0 for _, s, _ in loads], width,
                               label="via service"))
    _bar_labels(left, left.bar([x + width / 2 for x in xs],
                               [section.get(d) or 0.0 for _, _, d in loads], width,
                               label="direct tritonclient"))
    left.set_xticks(list(xs), [name for name, _, _ in loads])
    left.set_ylabel("images / s")
    left.legend(fontsize=8)
    left.set_title("Throughput")
    p50 = [section.get("p50_ms_service") or 0.0, section.get("p50_ms_direct") or 0.0]
    _bar_labels(right, right.bar(["via service", "direct"], p50, color=["#4c72b0", "#dd8452"]),
                "{:.2f}")
    right.set_ylabel("p50 ms, sequential n=1")
    right.set_title("Latency")
    fig.suptitle("Triton backend (CPU tritonserver, python flavour)")
    return fig


def plot_latency(section: dict[str, Any]) -> Figure:
    fig, ax = plt.subplots(figsize=(9, 4))
    width = 0.38
    for k, backend in enumerate(BACKENDS):
        p50, err = [], []
        for rpc in LATENCY_RPCS:
            cell = (section.get(rpc) or {}).get(backend) or {}
            mid = cell.get("p50_ms") or 0.0
            p50.append(mid)
            err.append(max((cell.get("p99_ms") or mid) - mid, 0.0))
        xs = [i + (k - 0.5) * width for i in range(len(LATENCY_RPCS))]
        ax.bar(xs, p50, width, yerr=[[0.0] * len(err), err], capsize=3, label=backend)
    ax.set_xticks(range(len(LATENCY_RPCS)), LATENCY_RPCS, rotation=20, fontsize=8)
    ax.set_ylabel("ms (bar: p50, whisker: p99)")
    ax.set_title("Latency per RPC, one client")
    ax.legend()
    return fig


def plot_scaling(section: dict[str, Any]) -> Figure:
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    curve = section.get("curve") or []
    panels = ((left, "concurrency", "concurrency", "concurrent clients (n=1)"),
              (right, "size", "n", "items per request (one client)"))
    for ax, axis, x_key, xlabel in panels:
        pts = sorted((p for p in curve if p.get("axis") == axis), key=lambda p: p[x_key])
        xs = [p[x_key] for p in pts]
        ax.plot(xs, [p["items_per_s"] for p in pts], marker="o")
        ax.set_xscale("log", base=2)
        ax.set_xticks(xs, [str(x) for x in xs])
        ax.set_xlabel(xlabel)
        ax.set_ylim(bottom=0)
        ax.set_ylabel("images / s")
        ax.grid(alpha=0.3)
    fig.suptitle("Embedded backend: throughput scaling")
    return fig


def plot_payload(section: dict[str, Any]) -> Figure:
    fig, (left, right) = plt.subplots(1, 2, figsize=(8, 3.5))
    formats = [f for f in ("float32", "uint8", "png") if isinstance(section.get(f), dict)]
    sizes = [(section[f].get("bytes") or 0) / 2**20 for f in formats]
    ms = [section[f].get("ms") or 0.0 for f in formats]
    _bar_labels(left, left.bar(formats, sizes), "{:.2f}")
    left.set_ylabel("MiB per 256-item response")
    _bar_labels(right, right.bar(formats, ms, color="#dd8452"), "{:.1f}")
    right.set_ylabel("median ms")
    fig.suptitle("Output formats: Sample n=256")
    return fig


def plot_hot_swap(section: dict[str, Any]) -> Figure:
    fig, ax = plt.subplots(figsize=(9, 4))
    timeline = section.get("timeline") or []
    versions = sorted({v for b in timeline for v in b.get("versions", {})}, key=int)
    ts = [b["t"] for b in timeline]
    bottom = [0.0] * len(timeline)
    width = timeline[1]["t"] - timeline[0]["t"] if len(timeline) > 1 else 0.5
    for v in versions:
        rate = [b["versions"].get(v, 0) / width for b in timeline]
        ax.bar(ts, rate, width, bottom=bottom, align="edge", label=f"v{v}")
        bottom = [a + b for a, b in zip(bottom, rate, strict=True)]
    failed = [b.get("failed", 0) / width for b in timeline]
    if any(failed):
        ax.bar(ts, failed, width, bottom=bottom, align="edge", color="red", label="failed")
    for move in section.get("moves", []):
        ax.axvline(move["at_s"], color="k", ls="--", lw=1)
        ax.text(move["at_s"], 0.97, f" {move['kind']} → v{move['to']}", fontsize=8,
                va="top", transform=ax.get_xaxis_transform())
    ax.set_xlabel("s since load start")
    ax.set_ylabel("responses / s by version")
    ax.set_title(f"Hot swap under load: {section.get('failed')} failed of "
                 f"{section.get('requests')} requests")
    ax.legend(fontsize=8, loc="lower right")
    return fig


def plot_cache(section: dict[str, Any]) -> Figure:
    fig, ax = plt.subplots(figsize=(5, 4))
    values = [section.get("miss_p50_ms") or 0.0, section.get("hit_p50_ms") or 0.0]
    _bar_labels(ax, ax.bar(["miss\n(new seed)", "hit\n(same request)"], values,
                           color=["#999", "#55a868"]), "{:.2f}")
    ax.set_ylabel("p50 ms, Sample n=64, one client")
    known = "" if section.get("setting_known", True) else " (setting unknown to the service)"
    ax.set_title(f"Response cache: {section.get('hit_speedup')}× faster{known}", fontsize=10)
    return fig


def plot_workers(section: dict[str, Any]) -> Figure:
    fig, ax = plt.subplots(figsize=(6, 4))
    curve = sorted(section.get("curve") or [], key=lambda p: p["workers"])
    xs = range(len(curve))
    width = 0.38
    _bar_labels(ax, ax.bar([x - width / 2 for x in xs],
                           [p.get("concurrent_ips") or 0.0 for p in curve], width,
                           label="64 clients × n=1"))
    _bar_labels(ax, ax.bar([x + width / 2 for x in xs],
                           [p.get("sequential_ips") or 0.0 for p in curve], width,
                           label="one client × n=1"))
    ax.set_xticks(list(xs), [f"{p['workers']} worker(s)" for p in curve])
    ax.set_ylabel("images / s")
    ax.legend(fontsize=8)
    known = "" if section.get("setting_known", True) else " (setting unknown to the service)"
    ax.set_title(f"Embedded backend: worker processes{known}", fontsize=10)
    return fig


def plot_peers(section: dict[str, Any]) -> Figure:
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5),
                                      gridspec_kw={"width_ratios": [3, 1]})
    servers = {"latentserve": section.get("latentserve") or {}}
    for label, c in ((section.get("mlserver") or {}).get("configs") or {}).items():
        if "error" not in c:
            servers[f"MLServer {label}"] = c
    loads = [("1 × n=64", "batched_ips"), ("64 × n=1", "concurrent_ips"),
             ("1 × n=1", "sequential_ips")]
    width = 0.8 / max(len(servers), 1)
    for k, (name, figs) in enumerate(servers.items()):
        xs = [i + (k - (len(servers) - 1) / 2) * width for i in range(len(loads))]
        left.bar(xs, [figs.get(key) or 0.0 for _, key in loads], width, label=name)
    left.set_xticks(range(len(loads)), [name for name, _ in loads])
    left.set_ylabel("images / s")
    left.legend(fontsize=7)
    left.set_title("Throughput per load")
    names = list(servers)
    p50 = [servers[n].get("sequential_p50_ms") or 0.0 for n in names]
    right.barh(range(len(names)), p50, color="#dd8452")
    right.set_yticks(range(len(names)), names, fontsize=7)
    right.invert_yaxis()
    right.set_xlabel("p50 ms, one client × n=1")
    right.set_title("Latency")
    fig.suptitle(f"latentserve vs MLServer + mlserver-mlflow: 64×n=1 ratio "
                 f"{section.get('concurrent_ratio')} (vs MLServer's best)")
    return fig


def plot_transport(section: dict[str, Any]) -> Figure:
    fig, ax = plt.subplots(figsize=(6, 4))
    variants = section.get("variants") or {}
    names = list(variants)
    _bar_labels(ax, ax.bar(names, [variants[n].get("cpu_ms_per_request") or 0.0
                                   for n in names], color="#4c72b0"), "{:.2f}")
    ax.set_ylabel("server CPU ms per request, 64 clients")
    ax.set_title("Bare gRPC server, 16 KiB reply: the per-request floor", fontsize=10)
    return fig


def plot_realistic(section: dict[str, Any]) -> Figure:
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5),
                                      gridspec_kw={"width_ratios": [3, 2]})
    bat = section.get("batching") or {}
    tri = section.get("triton") or {}
    peer = section.get("peers") or {}
    ref = section.get("reference") or {}
    ml = peer.get("mlserver") or {}
    throughput = [("in-process\nn=64", bat.get("inprocess_ips"), "#c44e52"),
                  ("service\n1 × n=64", bat.get("batched_ips"), "#55a868"),
                  ("service\n64 × n=1", bat.get("concurrent_ips"), "#4c72b0"),
                  ("MLServer best\n64 × n=1", ml.get("concurrent_ips"), "#999"),
                  ("Triton direct\n64 × n=1", tri.get("direct_ips"), "#dd8452"),
                  ("service→Triton\n64 × n=1", tri.get("service_ips"), "#8172b2")]
    _bar_labels(left, left.bar([t[0] for t in throughput], [t[1] or 0.0 for t in throughput],
                               color=[t[2] for t in throughput]))
    left.tick_params(axis="x", labelsize=7)
    left.set_ylabel("images / s")
    left.set_title("Throughput")
    latency = [("in-process", ref.get("inprocess_n1_p50_ms")),
               ("service", ref.get("service_n1_p50_ms")),
               ("MLServer best", ml.get("sequential_p50_ms")),
               ("Triton direct", tri.get("p50_ms_direct")),
               ("service→Triton", tri.get("p50_ms_service"))]
    _bar_labels(right, right.bar([name for name, _ in latency], [v or 0.0 for _, v in latency],
                                 color="#4c72b0"), "{:.2f}")
    right.tick_params(axis="x", labelsize=7)
    right.set_ylabel("p50 ms, one client × n=1")
    right.set_title("Latency")
    model = section.get("model") or {}
    params = (model.get("export") or {}).get("parameters")
    fig.suptitle(f"Realistic decoder {model.get('name')} "
                 f"({params / 1e6:.1f} M parameters)" if params else "Realistic decoder")
    return fig


PLOTS: dict[str, Callable[[dict[str, Any]], Figure]] = {
    "batching": plot_batching,
    "triton": plot_triton,
    "latency": plot_latency,
    "scaling": plot_scaling,
    "payload": plot_payload,
    "hot_swap": plot_hot_swap,
    "cache": plot_cache,
    "workers": plot_workers,
    "peers": plot_peers,
    "transport": plot_transport,
    "realistic": plot_realistic,
}


def write_plots(doc: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    """One PNG per scenario section present in `doc`, into `out_dir`; returns them by name."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for name, plot in PLOTS.items():
        section = doc.get(name)
        if not isinstance(section, dict) or "error" in section:
            continue
        fig = plot(section)
        fig.tight_layout()
        path = out_dir / f"{name}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written[name] = path
    return written
