"""The committed zoo bundles: valid, small, runnable, and meeting their quality targets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from latentserve.registry.bundle import load_bundle

ZOO = Path(__file__).resolve().parents[1] / "generators" / "zoo"
MAX_ONNX_BYTES = 10 * 2**20


@pytest.mark.parametrize("name", ["sprites-vae", "digits-cvae"])
def test_zoo_bundle_loads_and_runs(name: str) -> None:
    bundle = load_bundle(ZOO / name)
    spec = bundle.spec
    assert spec.name == name and spec.max_batch_size == 256
    assert bundle.encoder_path is not None
    for path in (bundle.decoder_path, bundle.encoder_path):
        assert path.stat().st_size < MAX_ONNX_BYTES
    assert spec.metrics["onnx_parity_max_abs_diff"] <= 1e-4
    assert spec.provenance["seed"] == 0 and spec.provenance["torch_version"]
    feeds: dict[str, np.ndarray] = {
        spec.decoder.input: np.zeros((256, spec.latent_dim), np.float32)
    }
    if spec.decoder.condition_input:
        feeds[spec.decoder.condition_input] = np.arange(256, dtype=np.int64) % spec.num_classes
    session = ort.InferenceSession(str(bundle.decoder_path), providers=["CPUExecutionProvider"])
    (x,) = session.run([spec.decoder.output], feeds)
    assert x.shape == (256, *spec.output.shape)
    assert spec.output.range[0] <= x.min() and x.max() <= spec.output.range[1]


def test_sprites_vae_meets_its_targets() -> None:
    metrics = load_bundle(ZOO / "sprites-vae").spec.metrics
    for factor in ("scale", "pos_x", "pos_y"):
        assert metrics[f"monotonicity_{factor}"] >= 0.95, factor
    assert metrics["leakage_top_pair_ratio"] <= 0.5
    assert 0.0 < metrics["mig"] <= 1.0


def test_digits_cvae_directions_edit_what_they_name() -> None:
    metrics = load_bundle(ZOO / "digits-cvae").spec.metrics
    assert metrics["monotonicity_thickness"] >= 0.9
    assert metrics["monotonicity_slant"] >= 0.9
