"""The results document: required keys, targets, merging runs, writing latest + dated JSON.

`results[<scenario>]` is each scenario's section; the top level holds machine facts, the setup,
keys derived from two sections of the same run (`derived`) and the evaluated targets. Example::

    doc = new_document(cfg, machine, setup, sections)
    doc = merge_previous(doc, out_dir / LATEST)          # keep sections not run this time
    latest, dated = write_json(doc, out_dir)
    missing_keys(doc, "batching")                        # [] when well-formed
"""

from __future__ import annotations

import json
import math
import operator
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
LATEST = "latest.json"
LATENCY_RPCS = ("sample_n1", "sample_n16", "sample_n64", "interpolate_3x16", "edit_4x9",
                "encode_16")
BACKENDS = ("embedded", "triton")

REQUIRED: dict[str, tuple[str, ...]] = {
    "batching": ("batched_ips", "concurrent_ips", "sequential_ips", "inprocess_ips",
                 "concurrent_vs_batched_ratio", "concurrent_vs_sequential_ratio",
                 "service_vs_inprocess_ratio", "service_cpu_ms_per_request"),
    "triton": ("service_ips", "direct_ips", "service_vs_direct_ratio", "p50_ms_service",
               "p50_ms_direct", "p50_overhead_ms", "avg_batch", "avg_batch_direct",
               "avg_batch_ratio"),
    "latency": tuple(f"{rpc}.{backend}.{p}_ms" for rpc in LATENCY_RPCS for backend in BACKENDS
                     for p in ("p50", "p90", "p99")),
    "scaling": ("curve",),
    "payload": (*(f"{fmt}.{k}" for fmt in ("float32", "uint8", "png") for k in ("bytes", "ms")),
                "ok"),
    "hot_swap": ("requests", "failed", "switch_s"),
    "cache": ("hit_speedup", "bit_identical", "setting_known", "hit_p50_ms", "miss_p50_ms"),
    "workers": ("curve", "setting_known"),
    "peers": (*(f"mlserver.{k}" for k in ("batched_ips", "concurrent_ips", "sequential_ips",
                                          "sequential_p50_ms", "settings", "defaults")),
              *(f"latentserve.{k}" for k in ("batched_ips", "concurrent_ips", "sequential_ips",
                                             "sequential_p50_ms")),
              "concurrent_ratio", "sequential_p50_ratio", "sequential_p50_below"),
    "transport": (*(f"variants.{v}.{k}" for v in ("aio", "aio-uvloop", "sync")
                    for k in ("concurrent_rps", "sequential_p50_ms", "cpu_ms_per_request")),
                  "floor_cpu_ms_per_request"),
    "http": (*(f"transports.{t}.{k}" for t in ("grpc", "http_json", "http_binary")
               for k in ("concurrent_rps", "sequential_p50_ms", "cpu_ms_per_request")),
             "http_json_vs_grpc_concurrent", "http_binary_vs_grpc_concurrent",
             *(f"oip.{t}.{k}" for t in ("latentserve_grpc", "latentserve_http", "mlserver_grpc")
               for k in ("concurrent_rps", "sequential_p50_ms")),
             "oip.concurrent_ratio", "oip.sequential_p50_ratio"),
    "realistic": ("inprocess_n64_ips", "inprocess_n1_p50_ms", "batched_vs_inprocess_ratio",
                  "concurrent_vs_inprocess_ratio", "sequential_p50_overhead_ms",
                  "concurrent_vs_mlserver_ratio", "model.export.parameters",
                  *(f"batching.{k}" for k in ("batched_ips", "concurrent_ips", "sequential_ips",
                                              "inprocess_ips", "service_cpu_ms_per_request")),
                  *(f"triton.{k}" for k in ("service_ips", "direct_ips",
                                            "service_vs_direct_ratio", "p50_overhead_ms",
                                            "avg_batch", "avg_batch_direct")),
                  *(f"peers.{k}" for k in ("mlserver.concurrent_ips", "latentserve.concurrent_ips",
                                           "concurrent_ratio", "sequential_p50_ratio"))),
}
"""Keys (dotted, inside the scenario's section) every full result must carry, non-null."""

_OPS: dict[str, Callable[[Any, Any], bool]] = {">=": operator.ge, "<=": operator.le,
                                               "==": operator.eq}
TARGETS: tuple[tuple[str, str, Any], ...] = (
    ("batching.concurrent_vs_batched_ratio", ">=", 0.8),
    ("batching.concurrent_vs_sequential_ratio", ">=", 5.0),
    ("batching.service_vs_inprocess_ratio", ">=", 0.9),
    ("batching.service_cpu_ms_per_request", "<=", 0.5),
    ("batching.concurrent_vs_triton_direct", ">=", 1.0),
    ("triton.service_vs_direct_ratio", ">=", 0.7),
    ("triton.avg_batch_ratio", ">=", 0.6),
    ("triton.p50_overhead_ms", "<=", 1.0),
    ("peers.concurrent_ratio", ">=", 3.0),
    ("peers.sequential_p50_below", "==", True),
    ("peers.sequential_p50_ratio", "<=", 0.8),
    ("cache.hit_speedup", ">=", 10.0),
    ("cache.bit_identical", "==", True),
    ("payload.ok", "==", True),
    ("hot_swap.failed", "<=", 0),
    ("realistic.batched_vs_inprocess_ratio", ">=", 0.95),
    ("realistic.concurrent_vs_inprocess_ratio", ">=", 0.85),
    ("realistic.sequential_p50_overhead_ms", "<=", 0.5),
    ("realistic.concurrent_vs_mlserver_ratio", ">=", 1.5),
)
"""(dotted key, comparison, target); evaluated into `results["targets"]`."""


def scenario_targets(scenario: str) -> dict[str, Any]:
    """The `TARGETS` of one scenario, keyed inside its section (what its results carry)."""
    prefix = f"{scenario}."
    return {key.removeprefix(prefix): target for key, _op, target in TARGETS
            if key.startswith(prefix)}  # fmt: skip


DERIVED: dict[str, tuple[str, str]] = {
    "batching.concurrent_vs_triton_direct": ("batching.concurrent_ips", "triton.direct_ips"),
}
"""Ratios of keys in two scenarios (numerator, denominator), computed only when both
sections were measured by the same run (their `meta.run` agree); stored under `derived`."""


def lookup(doc: dict[str, Any], dotted: str) -> Any:
    """The value at a dotted key path (a derived key: its value under `derived`), or None
    when any part is missing."""
    if dotted in DERIVED:
        return (doc.get("derived") or {}).get(dotted)
    node: Any = doc
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def missing_keys(doc: dict[str, Any], scenario: str) -> list[str]:
    """Required keys of `scenario` that are absent or null in `doc` (dotted, with prefix)."""
    keys = [f"{scenario}.{k}" for k in REQUIRED[scenario]]
    return [k for k in keys if lookup(doc, k) is None]


def derive(doc: dict[str, Any]) -> dict[str, Any]:
    """The `DERIVED` ratios of `doc` (None where a part is missing or the two sections come
    from different runs)."""
    out: dict[str, Any] = {}
    for key, (num, den) in DERIVED.items():
        runs = {lookup(doc, f"{k.split('.')[0]}.meta.run") for k in (num, den)}
        a, b = lookup(doc, num), lookup(doc, den)
        same = len(runs) == 1 and None not in runs
        out[key] = round(a / b, 3) if same and isinstance(a, int | float) and \
            isinstance(b, int | float) and b else None
    return out


def evaluate_targets(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target with the measured value and whether it is met (None: not measured)."""
    rows = []
    for key, op, target in TARGETS:
        value = lookup(doc, key)
        met = None if value is None else bool(_OPS[op](value, target))
        rows.append({"key": key, "op": op, "target": target, "value": value, "met": met})
    return rows


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def new_document(*, quick: bool, command: str, machine: dict[str, Any], setup: dict[str, Any],
                 sections: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A results document for this run (targets evaluated)."""
    doc: dict[str, Any] = {"schema_version": SCHEMA_VERSION, "generated": now_iso(),
                           "quick": quick, "command": command, "machine": machine,
                           "setup": setup, **sections}
    doc["derived"] = derive(doc)
    doc["targets"] = evaluate_targets(doc)
    return doc


def merge_previous(doc: dict[str, Any], previous_path: Path, scenarios: Iterable[str]) -> dict[
        str, Any]:
    """Keep the sections of `previous_path` (same quick flag) that this run did not produce."""
    try:
        previous = json.loads(previous_path.read_text())
    except (OSError, ValueError):
        return doc
    if previous.get("schema_version") != SCHEMA_VERSION or previous.get("quick") != doc["quick"]:
        return doc
    merged = dict(doc)
    for name in scenarios:
        if name not in merged and isinstance(previous.get(name), dict):
            merged[name] = previous[name]
    old_services = (previous.get("setup") or {}).get("services") or {}
    setup = dict(merged.get("setup") or {})
    setup["services"] = {**old_services, **(setup.get("services") or {})}
    setup["model"] = setup.get("model") or (previous.get("setup") or {}).get("model")
    merged["setup"] = setup
    merged["derived"] = derive(merged)
    merged["targets"] = evaluate_targets(merged)
    return merged


def clean(value: Any) -> Any:
    """`value` with NaN/inf replaced by None, so the JSON is strict."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    return value


def write_json(doc: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    """Write `latest.json` and a dated copy into `out_dir`; returns both paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    text = json.dumps(clean(doc), indent=2, allow_nan=False) + "\n"
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H-%M-%SZ")
    latest, dated = out_dir / LATEST, out_dir / f"results-{stamp}.json"
    latest.write_text(text)
    dated.write_text(text)
    return latest, dated
