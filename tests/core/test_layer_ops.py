"""W+ latent math: per-layer truncation with a cutoff, layer-range edits, style mixing, noise."""

from __future__ import annotations

import numpy as np
import pytest

from latentserve.core import layer_ops, seeding

L, D = 6, 4


def _ws(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, L * D)).astype(np.float32)


def test_broadcast_repeats_w_for_every_layer() -> None:
    w = _ws(3)[:, :D]
    ws = layer_ops.broadcast_ws(w, L).reshape(3, L, D)
    assert (ws == w[:, None, :]).all()


def test_truncation_cutoff_moves_only_the_first_layers() -> None:
    ws, center = _ws(5), np.arange(D, dtype=np.float32)
    out = layer_ops.truncate_layers(ws, L, 0.5, center, cutoff=2).reshape(5, L, D)
    src = ws.reshape(5, L, D)
    want = (center + 0.5 * (src[:, :2].astype(np.float64) - center)).astype(np.float32)
    assert (out[:, :2] == want).all()
    assert (out[:, 2:] == src[:, 2:]).all()
    full = layer_ops.truncate_layers(ws, L, 0.5, center).reshape(5, L, D)
    assert np.allclose(full, center + 0.5 * (src - center), atol=1e-6)


def test_edit_layers_changes_only_the_range_and_keeps_strength_zero_exact() -> None:
    ws, d = _ws(2), np.array([3.0, 4.0, 0.0, 0.0])
    out = layer_ops.edit_layers(ws, L, d, [-1.0, 0.0, 2.0], 0.5, layers=(1, 3))
    out = out.reshape(2, 3, L, D)
    src = ws.reshape(2, L, D)
    assert (out[:, 1] == src).all()
    assert (out[:, :, [0, 3, 4, 5]] == src[:, None][:, :, [0, 3, 4, 5]]).all()
    step = np.array([0.6, 0.8, 0, 0]) * 0.5 * 2.0
    assert np.allclose(out[:, 2, 1:3], src[:, 1:3] + step, atol=1e-6)


def test_style_mix_takes_the_range_from_the_column() -> None:
    rows, cols = _ws(3, 1), _ws(2, 2)
    grid = layer_ops.style_mix(rows, cols, L, (2, 5)).reshape(3, 2, L, D)
    r, c = rows.reshape(3, L, D), cols.reshape(2, L, D)
    for i in range(3):
        for j in range(2):
            want = r[i].copy()
            want[2:5] = c[j, 2:5]
            assert (grid[i, j] == want).all()


@pytest.mark.parametrize("layers", [(3, 3), (0, L + 1), (-1, 2)])
def test_bad_layer_ranges_are_refused(layers: tuple[int, int]) -> None:
    with pytest.raises(ValueError, match="layers"):
        layer_ops.check_layers(layers, L)


def test_noise_is_its_definition_and_independent_of_the_batch() -> None:
    shape = (1, 4, 4)
    want = np.random.default_rng(
        np.random.SeedSequence([9, 3, 1, seeding.NOISE_DOMAIN])).standard_normal(shape)
    assert (seeding.noise(9, 3, 1, shape) == want.astype(np.float32)).all()
    rows = seeding.noise_rows(9, range(8), 1, shape)
    assert (rows[3] == seeding.noise_rows(9, [3], 1, shape)[0]).all()
    assert not (seeding.noise(9, 3, 2, shape) == rows[3]).all()


def test_prior_latents_scale_and_shift_and_keep_the_standard_prior_exact() -> None:
    eps = seeding.sample_latents(1, 4, 8)
    assert seeding.prior_latents(eps, 0.0, 1.0) is eps
    z = seeding.prior_latents(eps, 0.5, 5.0)
    assert np.allclose(z, 0.5 + 5.0 * eps, atol=1e-5)
