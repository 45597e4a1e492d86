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
from latentserve.generators.factor_models import FactorEncoder, SpritesDecoder
from latentserve.generators.factor_pipeline import FactorConfig, training_data
from latentserve.generators.factor_training import fit_factor_model
from latentserve.generators.models import DigitsCVAE
from latentserve.generators.sprites_vae import LAYOUT, WORLD, train_sprites_vae
from latentserve.generators.training import Objective, fit_vae
from latentserve.registry.bundle.files import Bundle, load_bundle
from tests.fixtures.generators import MINI_EVAL

pytestmark = pytest.mark.slow

COMMON_METRICS = {
    "onnx_parity_max_abs_diff",
    "recon_mse",
    "lerp_midpoint_norm_ratio",
    "slerp_midpoint_norm_ratio",
    "path_length_lerp",
    "path_length_slerp",
}
SPRITES_DIRECTIONS = ["scale", "orientation", "pos_x", "pos_y"]


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
        assert d.spec.unit.startswith("1.0 = ")
    for path in (bundle.decoder_path, bundle.encoder_path):
        assert path is not None and path.stat().st_size < 10 * 2**20
    assert (bundle.root / "preview.png").read_bytes()[:4] == b"\x89PNG"


def test_mini_sprites_bundle_is_complete(mini_sprites_bundle: Bundle) -> None:
    bundle = mini_sprites_bundle
    _check_common(bundle)
    spec = bundle.spec
    assert spec.name == "sprites-vae" and spec.latent_dim == 4
    assert spec.condition is not None and spec.condition.labels == ["square", "ellipse", "heart"]
    assert spec.decoder.condition_input == "label" and spec.encoder is not None
    assert spec.output.shape == [1, 64, 64]
    assert [d.name for d in spec.directions] == SPRITES_DIRECTIONS
    for d in spec.directions:  # every direction carries its quality measured on images
        assert d.method == "supervised" and d.factor == d.name and d.quality is not None
        for what in ("spearman_within", "spearman_pooled", "leak_plain", "leak_conditional"):
            assert f"direction.{d.name}.{what}" in spec.metrics
            assert f"direction.{d.name}.{what}" in spec.metric_notes
    for key in ("prior_holes", "condition_accuracy", "roundtrip_class_accuracy",
                "roundtrip_orientation_error_deg", "path_max_step_ratio_slerp"):  # fmt: skip
        assert key in spec.metrics and key in spec.metric_notes
    # the shipped files run in onnxruntime at any batch size
    decoder = ort.InferenceSession(str(bundle.decoder_path), providers=["CPUExecutionProvider"])
    labels = np.array([0, 1, 2], np.int64)
    x = decoder.run(None, {"z": np.zeros((3, 4), np.float32), "label": labels})[0]
    assert x.shape == (3, 1, 64, 64) and x.min() >= 0.0 and x.max() <= 1.0
    encoder = ort.InferenceSession(str(bundle.encoder_path), providers=["CPUExecutionProvider"])
    mu, logvar = encoder.run(None, {"x": x, "label": labels})
    assert mu.shape == logvar.shape == (3, 4)


def test_a_checkpoint_skips_training_and_gives_the_same_bundle(tmp_path: Path) -> None:
    cfg = FactorConfig(epochs=1, train_size=256, eval_size=200, metric_samples=20, threads=1,
                       polish_epochs=1, polish_size=128, evaluation=MINI_EVAL)  # fmt: skip
    ckpt = tmp_path / "run.pt"
    first = train_sprites_vae(tmp_path / "a", seed=0, progress=False, config=cfg, checkpoint=ckpt)
    second = train_sprites_vae(tmp_path / "b", seed=0, progress=False, config=cfg,
                               checkpoint=ckpt)  # fmt: skip
    assert (first.decoder_path.read_bytes() == second.decoder_path.read_bytes())
    assert first.spec.directions == second.spec.directions
    assert "1 × gradient-difference loss" in first.spec.provenance["objective"]
    with pytest.raises(ValueError, match="another run"):
        train_sprites_vae(tmp_path / "c", seed=1, progress=False, config=cfg, checkpoint=ckpt)


def test_mini_digits_bundle_is_conditional(mini_digits_bundle: Bundle) -> None:
    bundle = mini_digits_bundle
    _check_common(bundle)
    spec = bundle.spec
    assert spec.name == "digits-cvae" and spec.latent_dim == 8
    assert spec.condition is not None and spec.condition.labels == [str(d) for d in range(10)]
    assert spec.decoder.condition_input == "label"
    assert spec.encoder is not None and spec.encoder.condition_input == "label"
    names = [d.name for d in spec.directions]
    assert names[:6] == ["thickness", "slant", "pos_x", "pos_y", "width", "height"]
    assert all(d.quality is not None for d in spec.directions)
    # every PCA/SeFa candidate is shipped renamed after what it moves, or its drop explained
    for candidate in ("pc0", "pc1", "pc2", "sefa0", "sefa1", "sefa2"):
        assert (candidate in spec.provenance["directions_dropped"]) != any(
            n.endswith(f"_{candidate}") for n in names), candidate
    assert {"monotonicity_thickness", "monotonicity_slant", "sample_spread_width",
            "direction.slant.pos_y_leak_plain"} <= set(spec.metrics)
    decoder = ort.InferenceSession(str(bundle.decoder_path), providers=["CPUExecutionProvider"])
    z = np.zeros((10, 8), np.float32)
    x = decoder.run(None, {"z": z, "label": np.arange(10, dtype=np.int64)})[0]
    assert x.shape == (10, 1, 32, 32)
    assert np.abs(x[0] - x[1]).mean() > 0.01  # the label changes the digit


def test_training_is_reproducible_from_the_seed() -> None:
    data = training_data(WORLD, FactorConfig(train_size=128), seed=0)
    weights = []
    for _ in range(2):
        torch.manual_seed(0)
        decoder, encoder = SpritesDecoder(LAYOUT), FactorEncoder(LAYOUT, 1, 3)
        fit_factor_model(decoder, encoder, data, epochs=1, seed=5, progress=False)
        weights.append(torch.cat([p.detach().flatten()
                                  for p in [*decoder.parameters(), *encoder.parameters()]]))
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
        fit_vae(DigitsCVAE(), torch.zeros(4, 1, 32, 32), torch.zeros(3, dtype=torch.int64),
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
