"""The sprites-vae encoder refit: sprites drawn by other routines mean the same factors as the
data spec's renders, and a refit keeps the decoder, is reproducible and is measured."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from latentserve.generators.drawn_sprites import draw_sprites
from latentserve.generators.sprites import render
from latentserve.generators.sprites_encoder import RefitConfig, refit_sprites_encoder
from latentserve.registry.bundle.files import load_bundle

ZOO = Path(__file__).resolve().parents[2] / "generators" / "zoo" / "sprites-vae"


def _centroid(img: np.ndarray) -> np.ndarray:
    """Centroid of the ink (pixels above a quarter: drawings may carry faint noise)."""
    ink = np.where(img > 0.25, img, 0.0)
    ys, xs = np.mgrid[0 : img.shape[0], 0 : img.shape[1]]
    return np.array([(ink * xs).sum(), (ink * ys).sum()]) / ink.sum()


def test_drawn_sprites_sit_where_the_renderer_puts_them() -> None:
    rng = np.random.default_rng(3)
    n = 24
    shape = np.arange(n) % 3
    scale, angle = rng.uniform(0.5, 1.0, n), rng.uniform(0, 2 * np.pi, n)
    pos_x, pos_y = rng.uniform(0, 1, n), rng.uniform(0, 1, n)
    drawn = draw_sprites(shape, scale, angle, pos_x, pos_y, rng)
    rendered = render(shape=list(shape), scale=scale, orientation=angle, pos_x=pos_x,
                      pos_y=pos_y)
    assert drawn.shape == (n, 1, 64, 64) and drawn.dtype == np.float32
    assert drawn.min() >= 0.0 and drawn.max() <= 1.0
    for d, r in zip(drawn[:, 0], rendered[:, 0], strict=True):
        assert np.abs(_centroid(d) - _centroid(r)).max() < 1.5
        inside, drawn_ink = r > 0.5, d > 0.5
        assert (inside & drawn_ink).sum() / (inside | drawn_ink).sum() > 0.6


def test_refit_keeps_the_decoder_and_is_reproducible(tmp_path: Path) -> None:
    cfg = RefitConfig(samples=256, chunk=128, eval_size=64, drawn_check=4)
    copies = []
    for name in ("a", "b"):
        copy = tmp_path / name
        shutil.copytree(ZOO, copy)
        copies.append(refit_sprites_encoder(copy, cfg, seed=1, progress=False))
    a, b = copies
    assert (a.root / "encoder.onnx").read_bytes() == (b.root / "encoder.onnx").read_bytes()
    shipped = load_bundle(ZOO)
    assert (a.root / "decoder.onnx").read_bytes() == (ZOO / "decoder.onnx").read_bytes()
    assert (a.root / "encoder.onnx").read_bytes() != (ZOO / "encoder.onnx").read_bytes()
    assert set(a.directions) == set(shipped.directions)
    for name, d in shipped.directions.items():
        np.testing.assert_array_equal(a.directions[name].vector, d.vector)
    metrics = a.spec.metrics
    for shape in ("square", "ellipse", "heart"):
        assert 0.0 <= metrics[f"encoder_drawn_class_accuracy_{shape}"] <= 1.0
        assert f"encoder_drawn_orientation_error_deg_{shape}" in a.spec.metric_notes
    assert metrics["encoder_onnx_parity_max_abs_diff"] < 1e-3
    assert "fine-tuned alone" in a.spec.provenance["encoder"]
