"""Latent-space math: truncation, interpolation and direction edits (sampling: `seeding`).

Pure numpy (no server extras), shared by the service, the generators' metrics code and the
promotion gates, so every component builds latents the same way. Inputs may be any float
array-likes; results are new float32 arrays (math is done in float64). Bad input raises
`ValueError` with a message naming the argument. Example::

    z = truncate(sample_latents(seed=7, n=4, dim=16), psi=0.7)   # pull toward the center (0)
    path = interpolate_path(z[:2], steps=9, method="slerp")          # [9, 16]
    d = orthogonalize(smile, [age, glasses])             # move along smile, hold the others
    edits = edit_latents(z, d, strengths=[-2.0, 0.0, 2.0], sigma=1.5)  # [12, 16]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, get_args

import numpy as np
import numpy.typing as npt

from latentserve.core.arrays import F32, F64
from latentserve.core.checks import check_int

__all__ = [
    "F32",
    "Method",
    "edit_latents",
    "interpolate_path",
    "lerp",
    "normalize",
    "orthogonalize",
    "slerp",
    "truncate",
    "vp_lerp",
]

Method = Literal["lerp", "slerp", "vp_lerp"]

_SLERP_MIN_SIN = 1e-6  # below this sin Ω, slerp falls back to lerp


# --------------------------------------------------------------------------- validation helpers


def _finite_array(x: npt.ArrayLike, name: str, ndim: int) -> F64:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or Inf")
    return arr


def _positive_float(x: float, name: str) -> float:
    value = float(x)
    if not math.isfinite(value) or value <= 0.0:
        raise ValueError(f"{name} must be finite and > 0, got {x!r}")
    return value


def _endpoints(a: npt.ArrayLike, b: npt.ArrayLike) -> tuple[F64, F64]:
    va = _finite_array(a, "a", 1)
    vb = _finite_array(b, "b", 1)
    if va.shape != vb.shape:
        raise ValueError(f"a and b must have the same shape, got {va.shape} and {vb.shape}")
    return va, vb


def _times(t: npt.ArrayLike) -> F64:
    ts = np.asarray(t, dtype=np.float64)
    if ts.ndim > 1:
        raise ValueError(f"t must be a scalar or 1-D, got shape {ts.shape}")
    if not np.isfinite(ts).all():
        raise ValueError("t contains NaN or Inf")
    return ts


def _finish(out: F64, a: F64, b: F64, ts: F64) -> F32:
    """Cast to float32 and pin t = 0 / t = 1 to a / b exactly."""
    res = out.astype(np.float32)
    res[ts == 0.0] = a.astype(np.float32)
    res[ts == 1.0] = b.astype(np.float32)
    return res


# ------------------------------------------------------------------------------- truncation


def truncate(z: npt.ArrayLike, psi: float, center: npt.ArrayLike | None = None) -> F32:
    """Truncation trick: z' = c + ψ (z − c); c = `center` (default 0), ψ finite and > 0.

    `z` is [N] or [B, N]; `center` is [N]. ψ = 1 returns z unchanged (bit for bit)::

        z = truncate(sample_latents(0, 4, 8), psi=0.5)   # half-way toward the origin
    """
    psi = _positive_float(psi, "psi")
    zs = np.asarray(z, dtype=np.float64)
    if zs.ndim not in (1, 2):
        raise ValueError(f"z must be [N] or [B, N], got shape {zs.shape}")
    if not np.isfinite(zs).all():
        raise ValueError("z contains NaN or Inf")
    if center is None:
        c = np.zeros(zs.shape[-1], dtype=np.float64)
    else:
        c = _finite_array(center, "center", 1)
        if c.shape[0] != zs.shape[-1]:
            raise ValueError(f"center has size {c.shape[0]} but latents have size {zs.shape[-1]}")
    if psi == 1.0:
        return np.asarray(z, dtype=np.float32).copy()
    out: F32 = (c + psi * (zs - c)).astype(np.float32)
    return out


# ---------------------------------------------------------------------------- interpolation


def lerp(a: npt.ArrayLike, b: npt.ArrayLike, t: npt.ArrayLike) -> F32:
    """Linear interpolation: (1 − t) a + t b.

    `a`, `b` are [N]; `t` is a scalar (→ [N]) or [T] (→ [T, N]); t = 0 / 1 give a / b exactly::

        frames = lerp(z0, z1, np.linspace(0, 1, 5))   # [5, N]
    """
    va, vb = _endpoints(a, b)
    ts = _times(t)
    tt = ts[..., None]
    return _finish((1.0 - tt) * va + tt * vb, va, vb, ts)


def vp_lerp(a: npt.ArrayLike, b: npt.ArrayLike, t: npt.ArrayLike) -> F32:
    """Variance-preserving lerp: ((1 − t) a + t b) / √((1 − t)² + t²).

    For independent N(0, I) endpoints every frame is again N(0, I) (plain lerp shrinks the
    midpoint's variance to 1/2). Shapes and exact endpoints as in `lerp`::

        mid = vp_lerp(z0, z1, 0.5)
    """
    va, vb = _endpoints(a, b)
    ts = _times(t)
    tt = ts[..., None]
    scale = np.sqrt((1.0 - tt) ** 2 + tt**2)
    return _finish(((1.0 - tt) * va + tt * vb) / scale, va, vb, ts)


def slerp(a: npt.ArrayLike, b: npt.ArrayLike, t: npt.ArrayLike) -> F32:
    """Spherical interpolation along the great circle from `a` to `b`.

    Ω = arccos(clip(â·b̂, −1, 1)); result = (sin((1 − t)Ω)/sin Ω) a + (sin(tΩ)/sin Ω) b.
    Falls back to `lerp` when sin Ω < 1e-6 (parallel or antiparallel) or either end is the
    zero vector, so it never returns NaN. Shapes and exact endpoints as in `lerp`::

        frames = slerp(z0, z1, np.linspace(0, 1, 9))   # [9, N]
    """
    va, vb = _endpoints(a, b)
    ts = _times(t)
    tt = ts[..., None]
    norm_a = float(np.linalg.norm(va))
    norm_b = float(np.linalg.norm(vb))
    if norm_a == 0.0 or norm_b == 0.0:
        return _finish((1.0 - tt) * va + tt * vb, va, vb, ts)
    cos_omega = float(np.clip(np.dot(va / norm_a, vb / norm_b), -1.0, 1.0))
    omega = math.acos(cos_omega)
    sin_omega = math.sin(omega)
    if sin_omega < _SLERP_MIN_SIN:
        return _finish((1.0 - tt) * va + tt * vb, va, vb, ts)
    wa = np.sin((1.0 - tt) * omega) / sin_omega
    wb = np.sin(tt * omega) / sin_omega
    return _finish(wa * va + wb * vb, va, vb, ts)


_METHODS = {"lerp": lerp, "slerp": slerp, "vp_lerp": vp_lerp}


def interpolate_path(keyframes: npt.ArrayLike, steps: int, method: Method) -> F32:
    """Piecewise path through `keyframes` [k, N] (k ≥ 2): `steps` frames per segment.

    Each segment runs t = linspace(0, 1, steps) with `method` ("lerp" | "slerp" | "vp_lerp");
    shared keyframes appear once, so the path has (k − 1)(steps − 1) + 1 frames and frame
    j·(steps − 1) is keyframe j exactly::

        path = interpolate_path(sample_latents(3, 3, 8), steps=5, method="slerp")  # [9, 8]
    """
    if not isinstance(method, str) or method not in _METHODS:
        raise ValueError(f"method must be one of {list(get_args(Method))}, got {method!r}")
    steps = check_int(steps, "steps", low=2)
    kf = _finite_array(keyframes, "keyframes", 2)
    k, dim = kf.shape
    if k < 2:
        raise ValueError(f"keyframes must hold at least 2 latents, got {k}")
    interp = _METHODS[method]
    ts = np.linspace(0.0, 1.0, steps)
    out = np.empty(((k - 1) * (steps - 1) + 1, dim), dtype=np.float32)
    for j in range(k - 1):
        seg = interp(kf[j], kf[j + 1], ts)
        skip = 0 if j == 0 else 1  # a shared keyframe ends the previous segment
        first = j * (steps - 1)
        out[first + skip : first + steps] = seg[skip:]
    return out


# ------------------------------------------------------------------------------- directions


def normalize(v: npt.ArrayLike) -> F32:
    """Unit vector v / ‖v‖ of a 1-D vector.

    Raises ValueError if v is the zero vector or not finite::

        d_hat = normalize([3.0, 4.0])   # [0.6, 0.8]
    """
    out: F32 = _unit(v, "vector").astype(np.float32)
    return out


def _unit(v: npt.ArrayLike, name: str) -> F64:
    vec = _finite_array(v, name, 1)
    norm = float(np.linalg.norm(vec))
    if norm == 0.0:
        raise ValueError(f"{name} is the zero vector and has no direction")
    unit: F64 = vec / norm
    return unit


def orthogonalize(
    direction: npt.ArrayLike, held: Sequence[npt.ArrayLike], *, min_residual: float = 1e-3
) -> F32:
    """Unit component of `direction` orthogonal to span(`held`) (conditional edit).

    d' = (d − P d) / ‖d − P d‖ with P the orthogonal projector onto span(held), taken from an
    SVD of the held set (so correlated or duplicated held directions are fine). Raises
    ValueError if ‖d − P d‖ / ‖d‖ < `min_residual` (d lies almost in the span), if d is zero,
    or if a held vector has the wrong size. No held directions: just normalise d::

        d = orthogonalize(smile, [age, glasses])   # smile edit that keeps age and glasses
    """
    d = _finite_array(direction, "direction", 1)
    min_residual = _positive_float(min_residual, "min_residual")
    d_norm = float(np.linalg.norm(d))
    if d_norm == 0.0:
        raise ValueError("direction is the zero vector and has no direction")
    if len(held) == 0:
        return normalize(d)
    rows: list[F64] = []
    for i, h in enumerate(held):
        hv = _finite_array(h, f"held[{i}]", 1)
        if hv.shape != d.shape:
            raise ValueError(f"held[{i}] has shape {hv.shape}, direction has shape {d.shape}")
        rows.append(hv)
    basis = _row_space(np.stack(rows))
    residual = d.copy()
    for _ in range(2):  # second pass removes what rounding left of the projection
        residual -= basis.T @ (basis @ residual)
    ratio = float(np.linalg.norm(residual)) / d_norm
    if ratio < min_residual:
        raise ValueError(
            f"direction lies (almost) in the span of the held directions: its orthogonal "
            f"part is {ratio:.3g} of its norm (< min_residual {min_residual:g})"
        )
    return normalize(residual)


def _row_space(h: F64) -> F64:
    """Orthonormal basis [r, N] of the span of the rows of `h` (numerical rank r)."""
    _, s, vt = np.linalg.svd(h, full_matrices=False)
    if s.size == 0 or s[0] == 0.0:
        return np.zeros((0, h.shape[1]), dtype=np.float64)
    tol = s[0] * max(h.shape) * np.finfo(np.float64).eps
    basis: F64 = vt[s > tol]
    return basis


def edit_latents(
    base: npt.ArrayLike, direction: npt.ArrayLike, strengths: npt.ArrayLike, sigma: float
) -> F32:
    """Sweep each base latent along a direction: row b·S + s = base[b] + strengths[s]·σ·d̂.

    `base` is [B, N], `direction` [N] (any nonzero length; d̂ = d/‖d‖), `strengths` [S] in the
    direction's unit, `sigma` > 0 the latent distance of strength 1. Rows are base-major;
    strength 0 returns the base row exactly::

        rows = edit_latents(z, d, strengths=[-1.0, 0.0, 1.0], sigma=2.0)   # [3·B, N]
    """
    z = _finite_array(base, "base", 2)
    d_hat = _unit(direction, "direction")
    if d_hat.shape[0] != z.shape[1]:
        raise ValueError(
            f"direction has size {d_hat.shape[0]}, base latents have size {z.shape[1]}"
        )
    alpha = _finite_array(strengths, "strengths", 1)
    step = _positive_float(sigma, "sigma")
    moved = z[:, None, :] + (alpha * step)[None, :, None] * d_hat[None, None, :]
    out = moved.astype(np.float32)
    out[:, alpha == 0.0, :] = np.asarray(base, dtype=np.float32)[:, None, :]
    return out.reshape(z.shape[0] * alpha.shape[0], z.shape[1])
