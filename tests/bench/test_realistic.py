"""The realistic decoder of the bench: the DCGAN-tutorial generator exported once into the
cache, made into a bundle by the project's builder; its headline keys, targets and report.
The scenario itself runs end to end in tests/e2e/test_bench_smoke.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest

from bench import realistic
from bench.cli import parse_args, selected
from bench.plots import write_plots
from bench.report import render
from bench.results import missing_keys, new_document
from bench.scenarios.realistic import headline
from latentserve.registry.bundle.builder import BundleOptions, build_bundle
from latentserve.service.backends.embedded import make_session


@pytest.mark.timeout(180)
def test_exported_once_then_cached_and_built_into_a_bundle(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    path, facts = realistic.exported_decoder(cache)
    assert facts["cache_hit"] is False and facts["parameters"] == 3_576_704
    assert facts["parity_max_abs_diff"] < 1e-4
    graph = onnx.load(str(path)).graph
    dims = [[d.dim_value or d.dim_param for d in t.type.tensor_type.shape.dim]
            for t in (graph.input[0], graph.output[0])]
    assert dims == [["batch", 100, 1, 1], ["batch", 3, 64, 64]]

    again, facts_again = realistic.exported_decoder(cache)
    assert again == path and facts_again["cache_hit"] is True
    assert [p.name for p in cache.iterdir()] == [f"dcgan-{realistic.cache_key()}"]

    bundle = build_bundle(tmp_path / "bundle", BundleOptions("dcgan-64", (-1.0, 1.0)),
                          {"decoder": path})
    spec = bundle.spec
    assert (spec.latent_dim, tuple(spec.output.shape)) == (100, (3, 64, 64))
    z = np.random.default_rng(1).standard_normal((5, 100)).astype(np.float32)
    flat = make_session(bundle.decoder_path, 1).run(None, {spec.decoder.input: z})[0]
    raw = make_session(path, 1).run(None, {"z": z.reshape(5, 100, 1, 1)})[0]
    np.testing.assert_array_equal(flat, raw)
    assert flat.shape == (5, 3, 64, 64) and np.all(np.abs(flat) <= 1.0)


def realistic_section() -> dict[str, Any]:
    """A well-formed realistic section with made-up figures (for the key and report checks)."""
    sections: dict[str, dict[str, Any]] = {
        "reference": {"inprocess_n1_p50_ms": 1.6, "service_n1_p50_ms": 2.3,
                      "inprocess_n1_ips": 600.0, "service_n1_ips": 420.0, "modes": {}},
        "batching": {"batched_ips": 1900.0, "concurrent_ips": 1500.0, "sequential_ips": 420.0,
                     "inprocess_ips": 2000.0, "service_cpu_ms_per_request": 0.6,
                     "modes": {}, "policy": {}},
        "triton": {"service_ips": 900.0, "direct_ips": 1000.0, "service_vs_direct_ratio": 0.9,
                   "p50_overhead_ms": 0.8, "avg_batch": 8.0, "avg_batch_direct": 10.0,
                   "p50_ms_service": 3.0, "p50_ms_direct": 2.2, "modes": {}},
        "peers": {"mlserver": {"concurrent_ips": 500.0, "sequential_p50_ms": 2.5,
                               "configs": {}},
                  "latentserve": {"concurrent_ips": 1500.0, "sequential_p50_ms": 2.3},
                  "concurrent_ratio": 3.0, "sequential_p50_ratio": 0.92, "modes": {}},
    }
    return {**headline(sections), **sections,
            "targets": {"batched_vs_inprocess_ratio": 0.95,
                        "concurrent_vs_inprocess_ratio": 0.85,
                        "sequential_p50_overhead_ms": 0.5, "concurrent_vs_mlserver_ratio": 1.5},
            "model": {"name": "dcgan-64", "latent_dim": 100, "output_shape": [3, 64, 64],
                      "export": {"parameters": 3_576_704, "cache_hit": True}},
            "meta": {"run": "r"}}


def test_headline_ratios_targets_and_report(tmp_path: Path) -> None:
    section = realistic_section()
    assert section["batched_vs_inprocess_ratio"] == 0.95
    assert section["concurrent_vs_inprocess_ratio"] == 0.75
    assert section["sequential_p50_overhead_ms"] == 0.7
    assert section["concurrent_vs_mlserver_ratio"] == 3.0
    assert headline({})["batched_vs_inprocess_ratio"] is None

    doc = new_document(quick=True, command="python -m bench", machine={}, setup={},
                       sections={"realistic": section})
    assert missing_keys(doc, "realistic") == []
    met = {t["key"]: t["met"] for t in doc["targets"] if t["key"].startswith("realistic.")}
    assert met == {"realistic.batched_vs_inprocess_ratio": True,
                   "realistic.concurrent_vs_inprocess_ratio": False,
                   "realistic.sequential_p50_overhead_ms": False,
                   "realistic.concurrent_vs_mlserver_ratio": True}

    plots = write_plots(doc, tmp_path)
    report = render(doc, plots=plots, report_path=tmp_path / "RESULTS.md")
    assert "## realistic" in report and "![realistic](realistic.png)" in report
    assert "| 64 clients × n=1 ÷ in-process n=64 | 1,500.0 | 2,000.0 | 0.750 | ≥ 0.850 | " \
           "**missed** |" in report
    for part in ("batching", "triton", "peers"):
        assert f"### realistic · {part}" in report
    assert "Service variants" not in report  # the variants were not run

    broken = new_document(quick=True, command="", machine={}, setup={},
                          sections={"realistic": {**section, "peers": {"error": "Boom"}}})
    assert "Boom" in render(broken, plots={}, report_path=tmp_path / "R.md")


def test_the_cli_takes_the_realistic_model_and_scenario() -> None:
    args = parse_args(["--model", "realistic", "--scenario", "realistic"])
    assert args.model == "realistic" and selected(args) == ["realistic"]
