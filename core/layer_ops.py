"""W+ latent math: per-layer truncation, layer-range edits and style mixing.

A W+ latent holds one w per synthesis layer, [L, w_dim] per item; the service keeps them as flat
C-order rows [n, L·w_dim] and these functions take either form (with `num_ws`). Pure numpy,
float64 math, float32 results, `ValueError` naming the argument. Example::

    ws = broadcast_ws(w, num_ws=8)                                  # [n, 8·w_dim]
    ws = truncate_layers(ws, 8, psi=0.7, center=w_bar, cutoff=4)     # ψ on layers 0-3 only
    rows = edit_layers(ws, 8, d, [-2.0, 2.0], sigma=1.3, layers=(0, 4))
    grid = style_mix(row_ws, col_ws, 8, layers=(4, 8))              # [R·C, 8·w_dim]
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from latentserve.core.arrays import F32, F64
from latentserve.core.checks import check_int

__all__ = ["broadcast_ws", "check_layers", "edit_layers", "parse_layer_range", "style_mix",
           "truncate_layers"]


def parse_layer_range(text: str) -> tuple[int, int]:
    """'START:END' (e.g. '0:4', the [start, end) of a W+ layer range) as a pair of ints;
    ValueError when it is not two integers around a colon (bounds are `check_layers`' job)."""
    start, sep, end = text.partition(":")
    if not sep:
        raise ValueError(f"expected START:END, got {text!r}")
    return int(start), int(end)


def check_layers(layers: tuple[int, int] | None, num_ws: int) -> tuple[int, int]:
    """A layer range [start, end) within [0, num_ws]; None means every layer."""
    if layers is None:
        return 0, num_ws
    start, end = (check_int(v, name, low=0, high=num_ws)
                  for v, name in zip(layers, ("layers.start", "layers.end"), strict=True))
    if start >= end:
        raise ValueError(f"layers must be [start, end) with start < end ≤ {num_ws}, got "
                         f"[{start}, {end})")
    return start, end


def _ws(x: npt.ArrayLike, num_ws: int, name: str) -> F64:
    """`x` as float64 [n, L, w_dim] (from [n, L·w_dim] or [n, L, w_dim]), finite."""
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 2 and arr.shape[1] % num_ws == 0:
        arr = arr.reshape(len(arr), num_ws, arr.shape[1] // num_ws)
    if arr.ndim != 3 or arr.shape[1] != num_ws:
        raise ValueError(f"{name} must be [n, {num_ws}·w_dim] or [n, {num_ws}, w_dim], got "
                         f"shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or Inf")
    return arr


def broadcast_ws(w: npt.ArrayLike, num_ws: int) -> F32:
    """One w per item [n, w_dim] repeated for every layer: flat rows [n, num_ws·w_dim]."""
    arr = np.asarray(w, dtype=np.float32)
    if arr.ndim != 2:
        raise ValueError(f"w must be [n, w_dim], got shape {arr.shape}")
    num_ws = check_int(num_ws, "num_ws", low=1)
    return np.ascontiguousarray(np.repeat(arr[:, None, :], num_ws, axis=1).reshape(len(arr), -1))


def truncate_layers(ws: npt.ArrayLike, num_ws: int, psi: float, center: npt.ArrayLike,
                    cutoff: int | None = None) -> F32:
    """w'_l = w̄ + ψ (w_l − w̄) for layers l < cutoff (all when None); other layers unchanged,
    bit for bit. Returns flat rows [n, L·w_dim]. StyleGAN3's `truncation_cutoff`."""
    value = float(psi)
    if not math.isfinite(value) or value <= 0.0:
        raise ValueError(f"psi must be finite and > 0, got {psi!r}")
    arr = _ws(ws, num_ws, "ws")
    c = np.asarray(center, dtype=np.float64)
    if c.shape != (arr.shape[2],):
        raise ValueError(f"center has shape {c.shape}, W has size {arr.shape[2]}")
    k = num_ws if cutoff is None else check_int(cutoff, "cutoff", low=0, high=num_ws)
    out = np.asarray(ws, dtype=np.float32).reshape(len(arr), num_ws, -1).copy()
    if value != 1.0 and k > 0:
        out[:, :k] = (c + value * (arr[:, :k] - c)).astype(np.float32)
    return out.reshape(len(arr), -1)


def edit_layers(base: npt.ArrayLike, num_ws: int, direction: npt.ArrayLike,
                strengths: npt.ArrayLike, sigma: float,
                layers: tuple[int, int] | None = None) -> F32:
    """Sweep W+ latents along a W direction on layers [start, end) only: row b·S + s is base[b]
    with strengths[s]·σ·d̂ added to those layers (others unchanged; strength 0 returns the base
    row exactly). `direction` [w_dim]; returns flat rows [B·S, L·w_dim] (GANSpace's edit)."""
    arr = _ws(base, num_ws, "base")
    d = np.asarray(direction, dtype=np.float64)
    if d.shape != (arr.shape[2],):
        raise ValueError(f"direction has shape {d.shape}, W has size {arr.shape[2]}")
    norm = float(np.linalg.norm(d))
    if not math.isfinite(norm) or norm == 0.0:
        raise ValueError("direction is zero or not finite")
    alpha = np.asarray(strengths, dtype=np.float64)
    if alpha.ndim != 1 or not np.isfinite(alpha).all():
        raise ValueError("strengths must be a 1-D array of finite numbers")
    step = float(sigma)
    if not math.isfinite(step) or step <= 0.0:
        raise ValueError(f"sigma must be finite and > 0, got {sigma!r}")
    start, end = check_layers(layers, num_ws)
    exact = np.asarray(base, dtype=np.float32).reshape(arr.shape)
    out = np.repeat(exact[:, None], len(alpha), axis=1)  # [B, S, L, w_dim]
    moved = arr[:, None, start:end] + (alpha * step)[None, :, None, None] * (d / norm)
    out[:, :, start:end] = moved.astype(np.float32)
    out[:, alpha == 0.0] = exact[:, None]
    return out.reshape(len(arr) * len(alpha), -1)


def style_mix(rows: npt.ArrayLike, cols: npt.ArrayLike, num_ws: int,
              layers: tuple[int, int]) -> F32:
    """StyleGAN's style-mixing grid: item r·C + c is row latent r with layers [start, end)
    taken from column latent c (copied, bit for bit). Returns flat rows [R·C, L·w_dim]."""
    r = np.asarray(rows, dtype=np.float32)
    c = np.asarray(cols, dtype=np.float32)
    _ws(r, num_ws, "rows")
    _ws(c, num_ws, "cols")
    r3, c3 = r.reshape(len(r), num_ws, -1), c.reshape(len(c), num_ws, -1)
    if r3.shape[2] != c3.shape[2]:
        raise ValueError(f"rows and cols have different w sizes ({r3.shape[2]}, {c3.shape[2]})")
    start, end = check_layers(layers, num_ws)
    out = np.repeat(r3[:, None], len(c3), axis=1)  # [R, C, L, w_dim]
    out[:, :, start:end] = c3[None, :, start:end]
    return out.reshape(len(r3) * len(c3), -1)
