"""The projection loss: pixel MSE plus a structural term that needs no learned weights.

Images are compared in [0, 1] (the model's output range mapped there). The structural term is
1 − multiscale SSIM: SSIM (Gaussian window σ = 1.5, 7 taps, per channel) at the full size and
at 2×, 4× box-downsampled sizes while the side stays ≥ 8, averaged with the MS-SSIM scale
weights renormalised to the scales used. An arithmetic mean of per-scale SSIM (not the
product of powers of the original MS-SSIM) keeps the term defined when a scale's SSIM is
negative, as it is early in a search. Example::

    losses = loss(candidates, targets[owner], value_range)   # [m]
"""

from __future__ import annotations

import functools

import numpy as np

from latentserve.core.arrays import F32, F64

STRUCTURE_WEIGHT = 0.05
"""λ in MSE + λ (1 − MS-SSIM); chosen by bench/scenarios/project.py (loss comparison)."""

_TAPS = np.exp(-0.5 * (np.arange(-3, 4) / 1.5) ** 2)
_TAPS /= _TAPS.sum()
_MS_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
_C1, _C2 = np.float32(0.01**2), np.float32(0.03**2)
_MIN_SIDE = 8


def unit_range(images: F32, value_range: tuple[float, float]) -> F32:
    """Images mapped from the model's output range to [0, 1] (float32)."""
    lo, hi = value_range
    return ((np.asarray(images, np.float32) - lo) / (hi - lo)).astype(np.float32, copy=False)


def mse(a: F32, b: F32) -> F64:
    """Mean squared error per image ([m, C, H, W] each, in [0, 1])."""
    d = a.astype(np.float32) - b.astype(np.float32)
    return np.asarray(np.mean(d * d, axis=(1, 2, 3)), np.float64)


def psnr(a: F32, b: F32) -> F64:
    """PSNR in dB per image (peak 1)."""
    return np.asarray(10.0 * np.log10(1.0 / np.maximum(mse(a, b), 1e-12)), np.float64)


@functools.cache
def _blur_matrix(n: int) -> F32:
    """[n, n] matrix of the 7-tap Gaussian filter along one axis, reflect padding folded in."""
    m = np.zeros((n, n), np.float64)
    pad = len(_TAPS) // 2
    for i in range(n):
        for k, w in enumerate(_TAPS):
            j = i + k - pad
            j = -j if j < 0 else (2 * (n - 1) - j if j >= n else j)
            m[i, min(max(j, 0), n - 1)] += w
    return m.astype(np.float32)


def ssim(a: F32, b: F32) -> F64:
    """SSIM per image (mean over pixels and channels) of [m, C, H, W] arrays in [0, 1]."""
    gh, gw = _blur_matrix(a.shape[-2]), _blur_matrix(a.shape[-1])
    stack = np.stack([a, b, a * a, b * b, a * b])  # one pair of matmuls blurs all five
    h, w = a.shape[-2:]
    rows = (stack.reshape(-1, w) @ gw.T).reshape(stack.shape)  # one GEMM per axis
    cols = rows.swapaxes(-1, -2).reshape(-1, h) @ gh.T
    mu_a, mu_b, aa, bb, ab = cols.reshape(*stack.shape[:-2], w, h).swapaxes(-1, -2)
    var_a = aa - mu_a * mu_a
    var_b = bb - mu_b * mu_b
    cov = ab - mu_a * mu_b
    num = (2 * mu_a * mu_b + _C1) * (2 * cov + _C2)
    den = (mu_a * mu_a + mu_b * mu_b + _C1) * (var_a + var_b + _C2)
    return np.asarray(np.mean(num / den, axis=(1, 2, 3)), np.float64)


def _half(x: F32) -> F32:
    """2×2 box downsampling (odd sides drop their last row/column)."""
    h, w = x.shape[-2] // 2 * 2, x.shape[-1] // 2 * 2
    x = x[..., :h, :w]
    return np.asarray(0.25 * (x[..., 0::2, 0::2] + x[..., 1::2, 0::2] + x[..., 0::2, 1::2]
                              + x[..., 1::2, 1::2]), np.float32)


def ms_ssim(a: F32, b: F32) -> F64:
    """Multiscale SSIM per image: weighted mean of SSIM over the scales with side ≥ 8."""
    total = np.zeros(len(a), np.float64)
    weights = 0.0
    for w in _MS_WEIGHTS:
        if min(a.shape[-2:]) < _MIN_SIDE:
            break
        total += w * ssim(a, b)
        weights += w
        a, b = _half(a), _half(b)
    if weights == 0.0:
        return ssim(a, b)
    return total / weights


def loss(candidates: F32, targets: F32, *, structure_weight: float = STRUCTURE_WEIGHT) -> F64:
    """The projection loss per row: MSE + λ (1 − MS-SSIM), both [m, C, H, W] in [0, 1]."""
    value = mse(candidates, targets)
    if structure_weight:
        value = value + structure_weight * (1.0 - ms_ssim(candidates, targets))
    return value
