"""A dSprites-spec renderer: 64×64 one-channel sprites from five known factors.

Factors (named so everywhere): `shape` ∈ {square, ellipse, heart}, `scale` (6 values in
[0.5, 1]), `orientation` (40 values in [0, 2π), counter-clockwise), `pos_x` (32 values in
[0, 1], left → right) and `pos_y` (32 values in [0, 1], top → bottom). Rendering is pure
geometry with 4×4 supersampling (pixel values are the covered fraction, in [0, 1]), so the
same factors always give the same image; datasets are drawn from a seed. Example::

    idx = sample_factor_indices(8, seed=0)           # int64 [8, 5] grid indices
    images = render_indices(idx)                     # float32 [8, 1, 64, 64]
    one = render(shape=["heart"], scale=[0.75], orientation=[0.3], pos_x=[0.5], pos_y=[0.5])
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from latentserve.core.arrays import F32, F64, I64

IMAGE_SIZE = 64
FACTOR_NAMES: tuple[str, ...] = ("shape", "scale", "orientation", "pos_x", "pos_y")
SHAPES: tuple[str, ...] = ("square", "ellipse", "heart")
FACTOR_SIZES: dict[str, int] = {"shape": 3, "scale": 6, "orientation": 40, "pos_x": 32, "pos_y": 32}
SYMMETRY_ORDER: dict[str, int] = {"square": 4, "ellipse": 2, "heart": 1}
"""Rotational symmetry of each shape: orientation θ and θ + 2π/k render the same image."""

_SUPERSAMPLE = 4
_HALF_EXTENT = 10.0
"""Half size of a sprite at scale 1, in pixels (rotated squares reach √2 × this)."""
_MARGIN = 16.0
"""Pixel distance from the border of the outermost sprite centres (pos 0 and pos 1)."""
_WINDOW = 32
"""Side of the pixel window rendered around a sprite centre: covers √2 × _HALF_EXTENT + 1."""


def factor_values(name: str) -> F64:
    """The grid values of one factor (for `shape`: 0, 1, 2 indexing SHAPES)."""
    if name == "shape":
        return np.arange(3, dtype=np.float64)
    if name == "scale":
        return np.linspace(0.5, 1.0, 6)
    if name == "orientation":
        return np.linspace(0.0, 2.0 * np.pi, 40, endpoint=False)
    if name in ("pos_x", "pos_y"):
        return np.linspace(0.0, 1.0, 32)
    raise ValueError(f"unknown factor {name!r}; factors are {', '.join(FACTOR_NAMES)}")


def sample_factor_indices(n: int, seed: int, *, stream: int = 0) -> I64:
    """`n` factor combinations drawn uniformly over the grid: int64 [n, 5] in FACTOR_NAMES order.

    (`seed`, `stream`) picks an independent draw, e.g. stream 0 for training, 1 for testing.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = np.random.default_rng(np.random.SeedSequence([seed, stream, 0x5B1]))
    sizes = np.array([FACTOR_SIZES[f] for f in FACTOR_NAMES])
    return rng.integers(0, sizes, size=(n, len(FACTOR_NAMES)), dtype=np.int64)


def indices_to_values(indices: I64) -> F64:
    """Grid indices [n, 5] → factor values [n, 5] (shape stays its index 0/1/2)."""
    idx = _check_indices(indices)
    return np.stack([factor_values(f)[idx[:, i]] for i, f in enumerate(FACTOR_NAMES)], axis=1)


def render_indices(indices: I64, *, chunk: int = 512) -> F32:
    """Render grid factor combinations [n, 5] → float32 images [n, 1, 64, 64]."""
    values = indices_to_values(indices)
    shape = values[:, 0].astype(np.int64)
    return _render(shape, values[:, 1], values[:, 2], values[:, 3], values[:, 4], chunk)


def render(
    *,
    shape: Sequence[str] | Sequence[int],
    scale: Sequence[float] | F64,
    orientation: Sequence[float] | F64,
    pos_x: Sequence[float] | F64,
    pos_y: Sequence[float] | F64,
    chunk: int = 512,
) -> F32:
    """Render any (also off-grid) factor values, one image per position → float32 [n, 1, 64, 64].

    `shape` items are names from SHAPES or their indices; the other factors must lie in their
    ranges (orientation is taken modulo 2π).
    """
    shape_idx = np.array(
        [SHAPES.index(s) if isinstance(s, str) and s in SHAPES else s for s in shape], dtype=object
    )
    for s in shape_idx:
        if isinstance(s, str) or not 0 <= int(s) < len(SHAPES):
            raise ValueError(f"shape: {s!r} is not one of {SHAPES} or an index 0..2")
    cols = {
        "scale": np.asarray(scale, np.float64),
        "orientation": np.mod(np.asarray(orientation, np.float64), 2.0 * np.pi),
        "pos_x": np.asarray(pos_x, np.float64),
        "pos_y": np.asarray(pos_y, np.float64),
    }
    n = len(shape_idx)
    for name, col in cols.items():
        if col.shape != (n,):
            raise ValueError(f"{name}: expected {n} values like shape, got shape {col.shape}")
        if not np.all(np.isfinite(col)):
            raise ValueError(f"{name}: values must be finite")
    for name, (lo, hi) in {"scale": (0.5, 1.0), "pos_x": (0.0, 1.0), "pos_y": (0.0, 1.0)}.items():
        if np.any((cols[name] < lo) | (cols[name] > hi)):
            raise ValueError(f"{name}: values must lie in [{lo}, {hi}]")
    return _render(
        shape_idx.astype(np.int64),
        cols["scale"],
        cols["orientation"],
        cols["pos_x"],
        cols["pos_y"],
        chunk,
    )


def _check_indices(indices: I64) -> I64:
    idx = np.asarray(indices)
    if idx.ndim != 2 or idx.shape[1] != len(FACTOR_NAMES):
        raise ValueError(f"indices: expected shape [n, {len(FACTOR_NAMES)}], got {idx.shape}")
    if not np.issubdtype(idx.dtype, np.integer):
        raise ValueError(f"indices: expected integers, got {idx.dtype}")
    for i, f in enumerate(FACTOR_NAMES):
        if np.any((idx[:, i] < 0) | (idx[:, i] >= FACTOR_SIZES[f])):
            raise ValueError(f"indices: {f} must be in 0..{FACTOR_SIZES[f] - 1}")
    return idx.astype(np.int64)


def _inside(shape: int, u: F64, v: F64) -> npt.NDArray[np.bool_]:
    """Point-in-shape for sprite-local coordinates (unit = half extent, v pointing up)."""
    if shape == 0:
        return np.maximum(np.abs(u), np.abs(v)) <= 0.8
    if shape == 1:
        return u**2 + (v / 0.5) ** 2 <= 1.0
    hx, hy = u * 1.15, v * 1.15 + 0.12  # centre the heart's bounding box on the origin
    return (hx**2 + hy**2 - 1.0) ** 3 - hx**2 * hy**3 <= 0.0


def _render(shape: I64, scale: F64, orientation: F64, pos_x: F64, pos_y: F64, chunk: int) -> F32:
    """Rasterise each sprite inside a _WINDOW-pixel square around its centre (all it can cover)."""
    n, k, w = len(shape), _SUPERSAMPLE, _WINDOW
    out = np.zeros((n, 1, IMAGE_SIZE, IMAGE_SIZE), np.float32)
    span = IMAGE_SIZE - 2.0 * _MARGIN
    cx, cy = _MARGIN + span * pos_x, _MARGIN + span * pos_y
    ox = np.clip(np.round(cx).astype(np.int64) - w // 2, 0, IMAGE_SIZE - w)
    oy = np.clip(np.round(cy).astype(np.int64) - w // 2, 0, IMAGE_SIZE - w)
    sub = (np.arange(w * k, dtype=np.float64) + 0.5) / k
    for lo in range(0, n, chunk):
        sl = slice(lo, min(lo + chunk, n))
        gx = ox[sl, None, None] + sub[None, None, :] - cx[sl, None, None]
        gy = cy[sl, None, None] - (oy[sl, None, None] + sub[None, :, None])  # up on screen
        extent = (_HALF_EXTENT * scale[sl])[:, None, None]
        cos, sin = np.cos(orientation[sl])[:, None, None], np.sin(orientation[sl])[:, None, None]
        u = (cos * gx + sin * gy) / extent  # rotate by -θ into sprite coordinates
        v = (-sin * gx + cos * gy) / extent
        mask = np.zeros(u.shape, np.float32)
        for s in np.unique(shape[sl]):
            sel = shape[sl] == s
            mask[sel] = _inside(int(s), u[sel], v[sel])
        pooled = mask.reshape(-1, w, k, w, k).mean(axis=(2, 4))
        for j, i in enumerate(range(sl.start, sl.stop)):
            out[i, 0, oy[i] : oy[i] + w, ox[i] : ox[i] + w] = pooled[j]
    return out
