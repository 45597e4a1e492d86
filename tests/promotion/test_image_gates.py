"""The gates that look at pictures (image drift, diversity, Fréchet distance and
precision/recall over a feature network the test builds), the per-pixel latency budget, the
measured-directions policy, the parity line of ONNX-only bundles, and `promote --explain` —
on DCGAN-tutorial generators with random weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from latentserve.promotion.gates import (
    ImagesConfig,
    LatencyConfig,
    ParityConfig,
    PolicyConfig,
    ReferenceConfig,
    parity_gate,
    policy_gate,
)
from latentserve.promotion.gates_images import (
    diversity_gate,
    image_drift_gate,
    reference_gates,
    samples,
)
from latentserve.promotion.gates_runtime import latency_gate
from latentserve.registry.bundle.builder import BundleOptions, build_bundle
from latentserve.registry.bundle.files import Bundle
from latentserve.registry.bundle.update import add_directions
from latentserve.registry.quality import image_sets
from latentserve.registry.quality.discovery import sefa
from latentserve.registry.store.mlflow_store import register_bundle
from latentserve.service.settings import Settings
from tests.fixtures import foreign_generators as fg
from tests.fixtures.cli import run_cli

IMAGES = ImagesConfig(items=16)


def _bundle(root: Path, generator: nn.Module, name: str = "dcgan") -> Bundle:
    path = fg.export(generator, torch.randn(1, fg.NZ, 1, 1), root / f"{name}.onnx",
                     input_name="z", output_name="image")
    return build_bundle(root / name, BundleOptions(name, (-1.0, 1.0)), {"decoder": path})


@pytest.fixture(scope="module")
def versions(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Bundle]:
    """holder (seed 0), a retrain with the same pictures (weights moved by 1e-6), a retrain
    that draws new pictures (seed 1), and a collapsed generator (its last layer zeroed)."""
    root = tmp_path_factory.mktemp("versions")
    holder = fg.dcgan(8, seed=0)
    same = fg.dcgan(8, seed=0)
    with torch.no_grad():
        for p in same.parameters():
            p.add_(1e-6 * torch.randn_like(p))
    collapsed = fg.dcgan(8, seed=2)
    with torch.no_grad():
        last = collapsed.main[-2]
        assert isinstance(last, nn.ConvTranspose2d)
        last.weight.zero_()
    return {"holder": _bundle(root / "h", holder), "same": _bundle(root / "s", same),
            "changed": _bundle(root / "c", fg.dcgan(8, seed=1)),
            "collapsed": _bundle(root / "x", collapsed)}


def test_image_drift_fails_new_pictures_and_passes_a_retrain_with_the_same_ones(
        versions: dict[str, Bundle]) -> None:
    changed = image_drift_gate(versions["changed"], versions["holder"], IMAGES)
    assert changed.passed is False and "16 items over 0.05" in changed.detail
    same = image_drift_gate(versions["same"], versions["holder"], IMAGES)
    assert same.passed is True and float(same.value) < 1e-3
    assert image_drift_gate(versions["same"], None, IMAGES).passed is None


def test_diversity_fails_a_collapsed_generator(versions: dict[str, Bundle]) -> None:
    collapsed = diversity_gate(versions["collapsed"], None, IMAGES)
    assert collapsed.passed is False and float(collapsed.value) < 1e-6
    assert diversity_gate(versions["holder"], None, IMAGES).passed is True
    assert diversity_gate(versions["collapsed"], versions["holder"], IMAGES).passed is False
    assert diversity_gate(versions["same"], versions["holder"], IMAGES).passed is True


class Features(nn.Module):
    """A small feature network: strided conv, ReLU, 2×2 average pool → 64 features."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 8, 8)
        self.pool = nn.AdaptiveAvgPool2d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.pool(torch.relu(self.conv(x))).flatten(1)
        return out


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory,
              versions: dict[str, Bundle]) -> ReferenceConfig:
    """The holder's pictures of another seed as PNG files, and the feature network."""
    root = tmp_path_factory.mktemp("reference")
    torch.manual_seed(0)
    net = fg.export(Features(), torch.rand(2, 3, 64, 64), root / "features.onnx",
                    input_name="images", output_name="features")
    folder = root / "images"
    folder.mkdir()
    for i, image in enumerate(samples(versions["holder"], 100, 96)):
        pixels = np.round(image.transpose(1, 2, 0) * 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"{i:03d}.png")
    return ReferenceConfig(images=folder, features=net, samples=96, min_precision=0.5,
                           max_fid=1e9)


def test_reference_gates_judge_pictures_against_the_reference_set(
        versions: dict[str, Bundle], reference: ReferenceConfig) -> None:
    same = {g.name: g for g in reference_gates(versions["same"], versions["holder"], reference)}
    assert all(g.passed for g in same.values()), same
    changed = {g.name: g for g in reference_gates(versions["changed"], versions["holder"],
                                                  reference)}
    assert changed["fid"].passed is False, changed["fid"]
    alone = {g.name: g for g in reference_gates(versions["holder"], None, reference)}
    assert alone["precision"].passed is True and "absolute bound ≥ 0.5" in alone["precision"].detail
    assert alone["recall"].passed is None and "recorded only" in alone["recall"].detail
    unset = reference_gates(versions["holder"], None, ReferenceConfig())
    assert [g.passed for g in unset] == [None, None, None]


def test_frechet_distance_and_precision_recall_on_known_sets() -> None:
    from scipy import linalg

    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((400, 3)), rng.standard_normal((400, 3))
    assert image_sets.frechet_distance(a, b) < 0.1
    shifted = b @ rng.standard_normal((3, 3)) + np.array([3.0, 0.0, 0.0])
    ca, cb = np.cov(a, rowvar=False), np.cov(shifted, rowvar=False)
    mu = a.mean(axis=0) - shifted.mean(axis=0)
    expected = mu @ mu + np.trace(ca + cb - 2 * linalg.sqrtm(ca @ cb).real)
    assert image_sets.frechet_distance(a, shifted) == pytest.approx(expected, rel=1e-6)
    precision, recall = image_sets.precision_recall(a, b)
    assert precision > 0.9 and recall > 0.9
    far = b + np.array([6.0, 0.0, 0.0])
    assert image_sets.precision_recall(a, far)[0] < 0.1


def test_latency_without_a_holder_is_budgeted_per_output_pixel(
        versions: dict[str, Bundle]) -> None:
    config = LatencyConfig(batch=4, runs=3, warmup=0, budget_us_per_pixel=1e6)
    gate = latency_gate(versions["holder"], None, Settings(), config)  # type: ignore[call-arg]
    assert gate.passed is True and "µs per output pixel" in gate.detail
    assert "4 × 64 × 64 pixels" in gate.detail and "budget_us_per_pixel" in gate.key
    tight = config.model_copy(update={"budget_us_per_pixel": 1e-9})
    assert latency_gate(versions["holder"], None, Settings(), tight).passed is False  # type: ignore[call-arg]


def test_the_policy_fails_unmeasured_named_directions(tmp_path: Path,
                                                      versions: dict[str, Bundle]) -> None:
    bundle = versions["holder"]
    assert policy_gate(bundle, PolicyConfig()).passed is None
    found = sefa(bundle, 2)
    copy = build_bundle(tmp_path / "b", BundleOptions("dcgan", (-1.0, 1.0)),
                        {"decoder": bundle.decoder_path})
    copy = add_directions(copy.root, [(d.spec(), d.vector, d.sigma) for d in found])
    gate = policy_gate(copy, PolicyConfig(require_measured=["*"]))
    assert gate.passed is False and "no measured quality for sefa0, sefa1" in gate.detail
    missing = policy_gate(copy, PolicyConfig(require_measured=["smile"]))
    assert missing.passed is False and "no direction named smile" in missing.detail


def test_the_parity_line_of_an_onnx_bundle_says_it_is_determinism() -> None:
    gate = parity_gate({"onnx_determinism_max_abs_diff": 0.0}, ParityConfig(), "onnx")
    assert gate.passed is True and gate.value == "0 (determinism; no torch parity: built from ONNX)"
    assert gate.key.startswith("[parity]")


def test_promote_explain_lists_every_rule_with_its_key(
        empty_registry_uri: str, versions: dict[str, Bundle]) -> None:
    uri = empty_registry_uri
    register_bundle(uri, versions["holder"].root, "dcgan", alias="production", force=True)
    v2 = register_bundle(uri, versions["changed"].root, "dcgan", force=True)
    code, out = run_cli("registry", "promote", "dcgan", "--version", str(v2), "--alias",
                        "production", "--registry-uri", uri, "--explain", "--dry-run")
    assert code == 1, out
    text = " ".join(out.split())
    assert "fail image_drift" in text and "([images] items, seed, drift_max_rms)" in text
    assert '([[metrics]] pattern = "path_length_*")' in text or \
        'skip [[metrics]] pattern = "path_length_*": no metric' in text
    assert "pass bundle: valid (no key: always run)" in text
    assert "skip fid: not configured ([reference]" in text
    assert "gates failed: onnx_parity, image_drift" in text   # not evaluated: no determinism
