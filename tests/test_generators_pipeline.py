"""The full training path on miniatures: render → train → directions → export → parity →
write_bundle → load_bundle, plus the `train` command and its bad-input errors."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from typer.testing import CliRunner

from latentserve.generators.cli import app
from latentserve.generators.digits_cvae import train_digits_cvae
from latentserve.generators.models import SpritesVAE
from latentserve.generators.sprites import render_indices, sample_factor_indices
from latentserve.generators.sprites_vae import train_sprites_vae
from latentserve.generators.training import Objective, fit_vae
from latentserve.registry.bundle import Bundle, load_bundle

pytestmark = pytest.mark.slow

COMMON_METRICS = {
    "onnx_parity_max_abs_diff",
    "recon_mse",
    "lerp_midpoint_norm_ratio",
    "slerp_midpoint_norm_ratio",
    "path_length_lerp",
    "path_length_slerp",
}
SPRITES_SUPERVISED = [
    "scale",
    "pos_x",
    "pos_y",
    "orientation",
    "shape_square",
    "shape_ellipse",
    "shape_heart",
]


def _check_common(bundle: Bundle) -> None:
    again = load_bundle(bundle.root)
    assert again.content_hash == bundle.content_hash
    spec = bundle.spec
    assert set(spec.metrics) >= COMMON_METRICS
    assert all(math.isfinite(v) for v in spec.metrics.values())
    assert spec.metrics["onnx_parity_max_abs_diff"] <= 1e-4
    assert 0.6 < spec.metrics["lerp_midpoint_norm_ratio"] < 0.8
    assert 0.9 < spec.metrics["slerp_midpoint_norm_ratio"] < 1.1
    assert "LPIPS" in spec.metric_notes["path_length_lerp"]
    assert spec.max_batch_size == 256 and spec.encoder is not None
    for key in ("dataset", "seed", "epochs", "torch_version", "train_seconds", "git_sha"):
        assert key in spec.provenance
    for d in again.directions.values():
        assert abs(float(np.linalg.norm(d.vector)) - 1) < 1e-5 and d.sigma > 0
        assert "1.0 = 1 σ" in d.spec.unit
    for path in (bundle.decoder_path, bundle.encoder_path):
        assert path is not None and path.stat().st_size < 10 * 2**20
    assert (bundle.root / "preview.png").read_bytes()[:4] == b"\x89PNG"


def test_mini_sprites_bundle_is_complete(mini_sprites_bundle: Bundle) -> None:
    bundle = mini_sprites_bundle
    _check_common(bundle)
    spec = bundle.spec
    assert spec.name == "sprites-vae" and spec.latent_dim == 10 and spec.condition is None
    assert spec.output.shape == [1, 64, 64]
    names = [d.name for d in spec.directions]
    assert names == [*SPRITES_SUPERVISED, "pc0", "pc1", "pc2", "sefa0", "sefa1", "sefa2"]
    methods = {d.name: d.method for d in spec.directions}
    assert (
        methods["pc0"] == "pca" and methods["sefa0"] == "sefa" and methods["scale"] == "supervised"
    )
    factors = {d.name: d.factor for d in spec.directions}
    assert factors["shape_heart"] == "shape" and factors["orientation"] == "orientation"
    for d in SPRITES_SUPERVISED:
        assert f"monotonicity_{d}" in spec.metrics
        assert f"leakage_{d}_plain" in spec.metrics and f"leakage_{d}_conditional" in spec.metrics
        assert -1.0 <= spec.metrics[f"monotonicity_{d}"] <= 1.0
    assert 0.0 <= spec.metrics["mig"] <= 1.0
    assert "leakage_top_pair_ratio" in spec.metrics
    # the shipped files run in onnxruntime at any batch size
    decoder = ort.InferenceSession(str(bundle.decoder_path), providers=["CPUExecutionProvider"])
    x = decoder.run(None, {"z": np.zeros((3, 10), np.float32)})[0]
    assert x.shape == (3, 1, 64, 64) and x.min() >= 0.0 and x.max() <= 1.0
    encoder = ort.InferenceSession(str(bundle.encoder_path), providers=["CPUExecutionProvider"])
    mu, logvar = encoder.run(None, {"x": x})
    assert mu.shape == logvar.shape == (3, 10)


def test_mini_digits_bundle_is_conditional(mini_digits_bundle: Bundle) -> None:
    bundle = mini_digits_bundle
    _check_common(bundle)
    spec = bundle.spec
    assert spec.name == "digits-cvae" and spec.latent_dim == 8
    assert spec.condition is not None and spec.condition.labels == [str(d) for d in range(10)]
    assert spec.decoder.condition_input == "label"
    assert spec.encoder is not None and spec.encoder.condition_input == "label"
    names = [d.name for d in spec.directions]
    assert names[:2] == ["thickness", "slant"] and "pc0" in names and "sefa0" in names
    assert {"monotonicity_thickness", "monotonicity_slant"} <= set(spec.metrics)
    decoder = ort.InferenceSession(str(bundle.decoder_path), providers=["CPUExecutionProvider"])
    z = np.zeros((10, 8), np.float32)
    x = decoder.run(None, {"z": z, "label": np.arange(10, dtype=np.int64)})[0]
    assert x.shape == (10, 1, 32, 32)
    assert np.abs(x[0] - x[1]).mean() > 0.01  # the label changes the digit


def test_training_is_reproducible_from_the_seed() -> None:
    images = torch.from_numpy(
        np.round(render_indices(sample_factor_indices(256, seed=0)) * 16).astype(np.uint8)
    )
    weights = []
    for _ in range(2):
        torch.manual_seed(0)
        vae = SpritesVAE()
        fit_vae(vae, images, None, epochs=1, objective=Objective(), seed=5, levels=16,
                batch_size=64, progress=False)  # fmt: skip
        weights.append(torch.cat([p.detach().flatten() for p in vae.parameters()]))
    assert torch.equal(weights[0], weights[1])


def test_bad_training_input_fails_fast_naming_it(tmp_path: Path) -> None:
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    with pytest.raises(ValueError, match=r"file\.txt"):
        train_sprites_vae(a_file, epochs=1, progress=False)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.md").write_text("mine")
    with pytest.raises(ValueError, match="busy"):
        train_digits_cvae(busy, epochs=1, progress=False)
    with pytest.raises(ValueError, match="epochs"):
        train_digits_cvae(tmp_path / "new", epochs=0, progress=False)
    with pytest.raises(ValueError, match="seed"):
        train_digits_cvae(tmp_path / "new", seed=-1, progress=False)
    with pytest.raises(ValueError, match="labels"):
        fit_vae(SpritesVAE(), torch.zeros(4, 1, 64, 64), torch.zeros(3, dtype=torch.int64),
                epochs=1, objective=Objective(), seed=0)  # fmt: skip


def test_train_command_rejects_bad_input(tmp_path: Path) -> None:
    runner = CliRunner()
    unknown = runner.invoke(app, ["gan-64"])
    assert unknown.exit_code == 2 and "gan-64" in unknown.output
    epochs = runner.invoke(app, ["digits-cvae", "--epochs", "0"])
    assert epochs.exit_code == 2 and "--epochs" in epochs.output
    a_file = tmp_path / "taken"
    a_file.write_text("x")
    taken = runner.invoke(app, ["digits-cvae", "--out", str(a_file), "--quiet"])
    assert taken.exit_code == 1 and "taken" in taken.output


def test_train_command_writes_a_bundle(tmp_path: Path) -> None:
    out = tmp_path / "digits"
    result = CliRunner().invoke(
        app, ["digits-cvae", "--out", str(out), "--epochs", "1", "--seed", "3", "--quiet",
              "--threads", "1"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    bundle = load_bundle(out)
    assert bundle.spec.provenance["seed"] == 3 and bundle.spec.provenance["epochs"] == 1
    assert "monotonicity_slant" in result.output
