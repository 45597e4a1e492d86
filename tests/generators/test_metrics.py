"""Latent-quality metrics, MIG and the digit attributes on synthetic cases with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from latentserve.core.seeding import sample_latents
from latentserve.generators.digits import ink_mass, minus_class_mean, slant
from latentserve.generators.mig import mig
from latentserve.registry.quality.latent_metrics import midpoint_norm_ratios, path_length, recon_mse


def test_path_length_of_a_linear_decoder_is_exact() -> None:
    dim, pixels, n = 6, 50, 200
    w = np.random.default_rng(0).standard_normal((pixels, dim))

    def decode(z: np.ndarray, items: np.ndarray) -> np.ndarray:
        assert len(items) == len(z)
        return z.astype(np.float64) @ w.T

    got = path_length(decode, dim, "lerp", samples=n, seed=3)
    z = sample_latents(3, 2 * n, dim).astype(np.float64)
    per_pair = np.sum(((z[n:] - z[:n]) @ w.T) ** 2, axis=1) / pixels  # ‖W(b − a)‖² / P
    lo, hi = np.percentile(per_pair, [1, 99])
    expected = per_pair[(per_pair >= lo) & (per_pair <= hi)].mean()
    assert got == pytest.approx(expected, rel=0.02)
    slerp_len = path_length(decode, dim, "slerp", samples=n, seed=3)
    assert slerp_len > 0 and np.isfinite(slerp_len)


def test_midpoint_norm_ratios_match_the_gaussian_geometry() -> None:
    ratios = midpoint_norm_ratios(dim=64, pairs=300, seed=1)
    assert ratios["lerp_midpoint_norm_ratio"] == pytest.approx(np.sqrt(0.5), abs=0.03)
    assert ratios["slerp_midpoint_norm_ratio"] == pytest.approx(1.0, abs=0.03)


def test_recon_mse() -> None:
    x = np.zeros((2, 1, 4, 4), np.float32)
    assert recon_mse(x, x + 0.5) == pytest.approx(0.25)
    with pytest.raises(ValueError, match="reconstructions"):
        recon_mse(x, x[:1])
    with pytest.raises(ValueError, match="empty"):
        recon_mse(x[:0], x[:0])


def test_mig_separates_disentangled_from_rotated_codes() -> None:
    rng = np.random.default_rng(2)
    factors = rng.integers(0, 10, size=(5000, 3))
    clean = factors + 0.1 * rng.standard_normal(factors.shape)
    codes = np.concatenate([clean, rng.standard_normal((5000, 2))], axis=1)
    assert mig(codes, factors) > 0.7
    q, _ = np.linalg.qr(rng.standard_normal((5, 5)))
    assert mig(codes @ q, factors) < 0.3
    duplicated = np.concatenate([clean, clean[:, :1]], axis=1)  # factor 0 in two dims
    assert mig(duplicated, factors) < mig(codes, factors)
    with pytest.raises(ValueError, match="latents"):
        mig(codes[:10], factors[:9])


def _bar(shear: float, width: int) -> np.ndarray:
    img = np.zeros((1, 1, 32, 32))
    for row in range(4, 28):
        col = round(16 + shear * (16 - row))
        img[0, 0, row, col - width // 2 : col + (width + 1) // 2] = 1.0
    return img


def test_digit_attributes_measure_slant_and_thickness() -> None:
    assert slant(_bar(0.3, 2))[0] > 0.2  # top right of bottom: leans right
    assert slant(_bar(-0.3, 2))[0] < -0.2
    assert abs(slant(_bar(0.0, 2))[0]) < 0.02
    assert ink_mass(_bar(0.0, 1))[0] < ink_mass(_bar(0.0, 3))[0]
    centred = minus_class_mean([1.0, 3.0, 10.0, 14.0], [0, 0, 1, 1])
    assert np.allclose(centred, [-1, 1, -2, 2])
    with pytest.raises(ValueError, match="images"):
        slant(np.zeros((2, 32, 32)))
