"""`latentserve bundle evaluate`: latent-quality metrics of any bundle written into it, read
by registration and the promotion gates as for the shipped generators."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from latentserve.core.seeding import sample_latents
from latentserve.promotion.gates import load_gates, parity_gate, quality_gates, version_metrics
from latentserve.registry.bundle.files import load_bundle
from latentserve.registry.bundle.spec import SPEC_FILE
from latentserve.registry.quality.latent_eval import spearman
from latentserve.registry.store.mlflow_store import (
    TAG_METRIC_PREFIX,
    RegistryClient,
    register_bundle,
)
from tests.fixtures.cli import run_cli
from tests.fixtures.tiny import build_tiny_bundle


@pytest.fixture
def measured(tmp_path: Path) -> Path:
    """A tiny bundle with a user direction along latent axis 1, evaluated with image
    measures that read each latent axis back."""
    bundle = build_tiny_bundle(tmp_path / "t")
    axis1 = tmp_path / "axis1.npy"
    np.save(axis1, np.array([0.0, 1.0, 0.0, 0.0]))
    code, text = run_cli("directions", "add", str(bundle.root), "--name", "axis1", "--vector",
                      str(axis1), "--factor", "z1")
    assert code == 0, text
    code, text = run_cli("bundle", "evaluate", str(bundle.root), "--measures",
                      "tests.fixtures.measures:tiny_axes", "--measure-of", "pc0=z0")
    assert code == 0, text
    return bundle.root


def test_evaluate_records_metrics_and_direction_quality(measured: Path) -> None:
    bundle = load_bundle(measured)
    m = bundle.spec.metrics
    for key in ("onnx_determinism_max_abs_diff", "output_finite_fraction",
                "path_max_step_ratio_lerp", "path_max_step_ratio_slerp", "path_length_lerp",
                "path_length_slerp", "lerp_midpoint_norm_ratio", "slerp_midpoint_norm_ratio"):
        assert key in m and key in bundle.spec.metric_notes, key
    assert m["output_finite_fraction"] == 1.0
    assert m["onnx_determinism_max_abs_diff"] < 1e-5
    assert m["lerp_midpoint_norm_ratio"] < 0.8 < 0.95 < m["slerp_midpoint_norm_ratio"]
    assert m["path_max_step_ratio_lerp"] >= 1.0
    for name, own in (("pc0", "z0"), ("axis1", "z1")):
        quality = bundle.directions[name].spec.quality
        assert quality is not None and quality.measure == own
        assert quality.spearman_within == 1.0 and quality.spearman_pooled > 0.99
        assert quality.reliable
        assert quality.leak_plain < 1e-3          # the axes are orthogonal: no leakage
        assert m[f"direction.{name}.spearman_within"] == 1.0
    assert bundle.directions["d0"].spec.quality is None   # no measure named for it


def test_gates_read_a_user_bundle_with_only_some_metrics(measured: Path,
                                                         empty_registry_uri: str) -> None:
    version = register_bundle(empty_registry_uri, measured, alias="staging")
    tags = RegistryClient(empty_registry_uri).version_tags("tiny", version)
    assert TAG_METRIC_PREFIX + "path_max_step_ratio_lerp" in tags
    config = load_gates()
    metrics = version_metrics(tags, load_bundle(measured))
    results = {r.name: r for r in quality_gates(metrics, None, config.metrics,
                                                exclude=frozenset({config.parity.metric}))}
    assert results["quality.output_finite_fraction"].passed is True
    assert results["quality.onnx_determinism_max_abs_diff"].passed is True
    assert results["quality.direction.pc0.spearman_within"].passed is True
    assert results["quality.path_length_lerp"].passed is None       # recorded, no threshold
    assert results["quality.recon_mse"].passed is None              # neither version has it
    assert not [r for r in results.values() if r.passed is False]
    # against itself as the holder every gate passes
    again = quality_gates(metrics, metrics, config.metrics)
    assert not [r for r in again if r.passed is False]
    parity = parity_gate(metrics, config.parity)
    assert parity.passed is False and "[parity] required = false" in parity.detail


def test_labels_fit_pixel_measures(tmp_path: Path) -> None:
    bundle = build_tiny_bundle(tmp_path / "t")
    z = sample_latents(9, 400, 4)
    labels = tmp_path / "labels.npz"
    np.savez(labels, latents=z, first=z[:, 0].astype(np.float64))
    code, text = run_cli("bundle", "evaluate", str(bundle.root), "--labels", str(labels),
                      "--measure-of", "pc0=first")
    assert code == 0, text
    quality = load_bundle(bundle.root).directions["pc0"].spec.quality
    assert quality is not None and quality.measure == "first"
    assert quality.spearman_within > 0.95


def test_bad_measures_exit_2(tmp_path: Path) -> None:
    bundle = build_tiny_bundle(tmp_path / "t")
    before = (bundle.root / SPEC_FILE).read_text()
    code, text = run_cli("bundle", "evaluate", str(bundle.root), "--measures",
                      "tests.fixtures.measures:broken")
    assert code == 2 and "error: measures: 'oops' has shape" in text
    code, text = run_cli("bundle", "evaluate", str(bundle.root), "--measures", "no_such_mod:f")
    assert code == 2 and "error: measures: cannot import" in text
    assert (bundle.root / SPEC_FILE).read_text() == before
    assert json.loads(before)["metrics"] == {}


def test_spearman_matches_rank_correlation_with_ties() -> None:
    a = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    assert spearman(a, a**3) == pytest.approx(1.0)
    assert spearman(a, -a) == pytest.approx(-1.0)
    # ties share average ranks: ranks of b are [1.5, 1.5, 3, 4, 5]
    b = np.array([0.0, 0.0, 1.0, 2.0, 3.0])
    ra, rb = np.arange(1.0, 6.0), np.array([1.5, 1.5, 3.0, 4.0, 5.0])
    assert spearman(a, b) == pytest.approx(float(np.corrcoef(ra, rb)[0, 1]))
