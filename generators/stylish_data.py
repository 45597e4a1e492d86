"""Stylish shapes: the procedural 64×64 colour data set of the `stylish-shapes` W+ generator,
with coarse factors (shape, scale, orientation, position) and fine ones (object hue,
background hue, stripe frequency), and the latent each factor is read from. Example::

    z = np.random.default_rng(0).standard_normal((8, LATENT_DIM))
    f = factors_of(z)                      # [8, 8] factor values (FACTORS order)
    x = render(f)                          # float32 [8, 3, 64, 64] in [0, 1]

The prior is the factor distribution: a fixed orthonormal projection reads one normal score
per factor from z (N = 64), and each factor's place in its range is Φ(s / SCORE_SPREAD). Hue and
orientation are circular and run over a whole period along the score (both tails meet at the
same colour / angle), so every z draws a valid image and the image is continuous in z. The
object is a superellipse |u/a|^p + |v/b|^p ≤ 1 (p from 1, a diamond, through 2, an ellipse, to
5, nearly a rectangle; aspect b/a = 0.5) with stripes across its long axis.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import numpy.typing as npt

from latentserve.core.arrays import F32, F64

IMAGE_SIZE = 64
LATENT_DIM = 64
FACTORS: tuple[str, ...] = (
    "shape", "scale", "orientation", "pos_x", "pos_y", "object_hue", "background_hue",
    "stripes",
)  # fmt: skip
GEOMETRY: tuple[str, ...] = ("shape", "scale", "orientation", "pos_x", "pos_y")
"""Coarse factors: where and what the object is."""
APPEARANCE: tuple[str, ...] = ("object_hue", "background_hue", "stripes")
"""Fine factors: colours and texture."""
CIRCULAR: tuple[str, ...] = ("orientation", "object_hue", "background_hue")
"""Factors whose range is one period (turns for hues, half-turns for orientation)."""
SCORE_SPREAD = 1.5
"""u = Φ(s / SCORE_SPREAD): a −3…3 σ sweep covers most of a factor's range from most seeds."""
EXPONENT_RANGE = (1.0, 5.0)
"""Superellipse exponent p = lo · (hi / lo)^u of the shape factor (geometric)."""
SCALE_RANGE = (10.0, 20.0)
"""Semi-major axis a in pixels."""
ASPECT = 0.5
POSITION_RANGE = 7.0
"""Centre offset from the image centre, ± pixels on each axis (the object never reaches the
4-pixel border, which shows only background)."""
STRIPE_RANGE = (1.0, 4.0)
"""Stripe cycles along the object's long axis (2a)."""
OBJECT_SATURATION = 0.85
OBJECT_VALUE = 0.8
STRIPE_AMPLITUDE = 0.16
BACKGROUND_SATURATION = 0.4
BACKGROUND_VALUE = 0.95
DATASET_TEXT = (
    "stylish shapes rendered by latentserve.generators.stylish_data (64×64 RGB; superellipse "
    "shape p ∈ [1, 5], scale, orientation, position; object hue, background hue, stripe "
    "cycles), factors read from z ~ N(0, I₆₄) by a fixed orthonormal projection, fresh "
    "renders every step"
)
_PROJECTION_SEED = 0x57F1E
_EDGE = 1.0
"""Antialiasing ramp width in pixels."""


@functools.cache
def projection() -> F64:
    """The fixed orthonormal rows [len(FACTORS), LATENT_DIM] reading factor scores from z."""
    rng = np.random.default_rng(_PROJECTION_SEED)
    q, _ = np.linalg.qr(rng.standard_normal((LATENT_DIM, len(FACTORS))))
    return np.ascontiguousarray(q.T)


def scores_of(z: npt.ArrayLike) -> F64:
    """Normal scores s = P z [n, len(FACTORS)] (each N(0, 1) under the prior)."""
    return np.asarray(z, np.float64) @ projection().T


def quantiles_of(scores: F64) -> F64:
    """u = Φ(s / SCORE_SPREAD) in (0, 1)."""
    from scipy.special import ndtr

    return np.asarray(ndtr(np.asarray(scores, np.float64) / SCORE_SPREAD), np.float64)


def factor_values(u: F64) -> F64:
    """Factor values [n, 8] from quantiles: exponent p, semi-major a (px), orientation (turns of
    π, [0, 1)), pos_x, pos_y (px), object and background hue (turns), stripe cycles."""
    u = np.asarray(u, np.float64)
    lo, hi = EXPONENT_RANGE
    out = np.empty_like(u)
    out[:, 0] = lo * (hi / lo) ** u[:, 0]
    out[:, 1] = SCALE_RANGE[0] + (SCALE_RANGE[1] - SCALE_RANGE[0]) * u[:, 1]
    out[:, 2] = u[:, 2]
    out[:, 3] = POSITION_RANGE * (2.0 * u[:, 3] - 1.0)
    out[:, 4] = POSITION_RANGE * (2.0 * u[:, 4] - 1.0)
    out[:, 5] = u[:, 5]
    out[:, 6] = u[:, 6]
    out[:, 7] = STRIPE_RANGE[0] + (STRIPE_RANGE[1] - STRIPE_RANGE[0]) * u[:, 7]
    return out


def factors_of(z: npt.ArrayLike) -> F64:
    """Factor values [n, 8] of latents z [n, LATENT_DIM]."""
    return factor_values(quantiles_of(scores_of(z)))


def hsv_to_rgb(h: F32, s: F32 | float, v: F32) -> F32:
    """HSV (hue in turns) → RGB stacked on a new axis 1: [n, 3, ...] for [n, ...] inputs."""
    h6 = np.mod(h, 1.0) * 6.0
    out = []
    for k in (5.0, 3.0, 1.0):
        t = np.mod(k + h6, 6.0)
        out.append(v - v * s * np.clip(np.minimum(t, 4.0 - t), 0.0, 1.0))
    return np.stack(out, axis=1).astype(np.float32)


def render(values: npt.ArrayLike) -> F32:
    """Images float32 [n, 3, 64, 64] in [0, 1] of factor values [n, 8] (`factor_values`)."""
    f = np.asarray(values, np.float32)
    if f.ndim != 2 or f.shape[1] != len(FACTORS):
        raise ValueError(f"values: expected [n, {len(FACTORS)}], got {f.shape}")
    n = len(f)
    p, a = f[:, 0, None, None], f[:, 1, None, None]
    theta = f[:, 2, None, None] * np.float32(math.pi)
    grid = np.arange(IMAGE_SIZE, dtype=np.float32) + 0.5 - IMAGE_SIZE / 2
    x = grid[None, None, :] - f[:, 3, None, None]
    y = grid[None, :, None] - f[:, 4, None, None]
    cos, sin = np.cos(theta), np.sin(theta)
    u = x * cos + y * sin
    v = -x * sin + y * cos
    b = a * np.float32(ASPECT)
    au = np.abs(u) / a + 1e-6
    av = np.abs(v) / b + 1e-6
    radius = (au**p + av**p) ** (1.0 / p)  # 1 on the outline
    mask = np.clip((1.0 - radius) * b / np.float32(_EDGE) + 0.5, 0.0, 1.0)
    phase = 2.0 * np.float32(math.pi) * f[:, 7, None, None] * u / (2.0 * a)
    value = OBJECT_VALUE + STRIPE_AMPLITUDE * np.sin(phase)
    tint = hsv_to_rgb(f[:, 5], OBJECT_SATURATION, np.ones(n, np.float32))  # at value 1
    bg = hsv_to_rgb(f[:, 6], BACKGROUND_SATURATION, np.full(n, BACKGROUND_VALUE, np.float32))
    m = mask[:, None]
    obj = tint[:, :, None, None] * value[:, None]
    return np.asarray(m * obj + (1.0 - m) * bg[:, :, None, None], np.float32)


def render_latents(z: npt.ArrayLike) -> F32:
    """Images of latents z [n, LATENT_DIM]."""
    return render(factors_of(z))


def mixed_values(geometry_from: F64, appearance_from: F64) -> F64:
    """Factor values with the geometry of the first [n, 8] and the appearance of the second:
    what a W+ code with coarse layers from one seed and fine layers from another draws."""
    out = np.array(appearance_from, np.float64, copy=True)
    idx = [FACTORS.index(g) for g in GEOMETRY]
    out[:, idx] = np.asarray(geometry_from, np.float64)[:, idx]
    return out
