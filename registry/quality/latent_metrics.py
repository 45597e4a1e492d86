"""Latent-quality metrics every shipped generator records: reconstruction error, interpolation
midpoint norms and PPL-style path lengths (image-space MSE in place of LPIPS). Example::

    metrics = interpolation_metrics(decode64, dim=10, seed=0)   # both ratios, both lengths
    metrics["path_length_slerp"] == path_length(decode64, dim=10, method="slerp", seed=0)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from latentserve.core.arrays import F32, I64
from latentserve.core.latent_ops import Method, interpolate_path, lerp, slerp
from latentserve.core.seeding import sample_latents

Floats = npt.NDArray[np.floating[Any]]
Decode = Callable[[F32, I64], Floats]
"""decode(latents [B, N], item index [B]) → images [B, ...] as float64; the item index lets a
conditional generator use one label per item (both ends of a path-length pair share it)."""
ToEditing = Callable[[F32], F32]
"""Prior latents z [B, N] → the latents `decode` takes (a two-stage generator's mapping z → w);
the path metrics draw their endpoints as z and map them, then interpolate in that space."""

METRIC_NOTES: dict[str, str] = {
    "onnx_parity_max_abs_diff": "max |torch − onnxruntime| over decoder and encoder outputs on "
    "256 prior latents (decoder) and 256 test images (encoder)",
    "recon_mse": "mean squared pixel error of decoder(encoder mean) on the held-out test split, "
    "pixels in [0, 1]",
    "lerp_midpoint_norm_ratio": "mean ‖lerp(a, b, 0.5)‖ / mean ‖z‖ over 1,000 pairs of prior "
    "samples (≈ 0.71 for N(0, I): lerp leaves the shell)",
    "slerp_midpoint_norm_ratio": "mean ‖slerp(a, b, 0.5)‖ / mean ‖z‖ over 1,000 pairs of prior "
    "samples (≈ 1: slerp stays on the shell)",
    "path_length_lerp": "PPL-style: mean of MSE(g(z(t)), g(z(t+ε))) / ε², ε = 1e-4, over 1,000 "
    "random prior pairs and t ~ U(0, 1), values outside the 1st–99th percentile dropped; "
    "image-space MSE in place of LPIPS (no perceptual network for these images); decoder run "
    "in float64",
    "path_length_slerp": "as path_length_lerp, along slerp paths",
}


def recon_mse(images: Floats, reconstructions: Floats) -> float:
    """Mean squared pixel error between test images and their reconstructions (same shape)."""
    if len(images) == 0:
        raise ValueError("images: the test split is empty")
    if images.shape != reconstructions.shape:
        raise ValueError(f"reconstructions {reconstructions.shape} != images {images.shape}")
    return float(np.mean((reconstructions.astype(np.float64) - images) ** 2))


def midpoint_norm_ratios(dim: int, *, pairs: int = 1000, seed: int = 0) -> dict[str, float]:
    """`lerp_/slerp_midpoint_norm_ratio`: mean ‖z_mid‖ / mean ‖z‖ over prior pairs."""
    a, b = _pairs(dim, pairs, seed)
    mean_norm = float(np.mean(np.linalg.norm(np.concatenate([a, b]), axis=1)))
    out = {}
    for name, interp in (("lerp", lerp), ("slerp", slerp)):
        mids = np.stack([interp(a[i], b[i], 0.5) for i in range(pairs)])
        out[f"{name}_midpoint_norm_ratio"] = (
            float(np.mean(np.linalg.norm(mids, axis=1))) / mean_norm
        )
    return out


def path_length(
    decode: Decode,
    dim: int,
    method: Literal["lerp", "slerp"],
    *,
    samples: int = 1000,
    eps: float = 1e-4,
    seed: int = 0,
    to_editing: ToEditing | None = None,
) -> float:
    """PPL-style path length: mean MSE(g(z(t)), g(z(t+ε))) / ε² (1–99 percentile filtered);
    with `to_editing`, the endpoints are mapped prior samples and the path runs between them
    (StyleGAN's PPL in W)."""
    interp = lerp if method == "lerp" else slerp
    a, b = _pairs(dim, samples, seed)
    if to_editing is not None:
        a, b = to_editing(a), to_editing(b)
    t = np.random.default_rng(np.random.SeedSequence([seed, 0xA7])).uniform(0.0, 1.0, samples)
    z = np.empty((2 * samples, a.shape[1]), np.float32)
    for i in range(samples):
        z[[i, samples + i]] = interp(a[i], b[i], np.array([t[i], t[i] + eps]))
    items = np.concatenate([np.arange(samples), np.arange(samples)]).astype(np.int64)
    images = np.asarray(decode(z, items), np.float64).reshape(2 * samples, -1)
    dist = np.mean((images[:samples] - images[samples:]) ** 2, axis=1) / eps**2
    lo, hi = np.percentile(dist, [1, 99])
    kept = dist[(dist >= lo) & (dist <= hi)]
    return float(np.mean(kept))


def interpolation_metrics(
    decode: Decode, dim: int, *, samples: int = 1000, seed: int = 0
) -> dict[str, float]:
    """`lerp_/slerp_midpoint_norm_ratio` and `path_length_lerp/_slerp` of one generator."""
    metrics = midpoint_norm_ratios(dim, pairs=samples, seed=seed)
    for method in ("lerp", "slerp"):
        metrics[f"path_length_{method}"] = path_length(
            decode, dim, method, samples=samples, seed=seed
        )
    return metrics


PATH_STEPS = 32
"""Continuity: frames per path of `path_max_step_ratio`."""


def path_max_step_ratio(decode: Decode, dim: int, method: Method, *, pairs: int,
                        steps: int = PATH_STEPS,
                        to_editing: ToEditing | None = None) -> float:  # fmt: skip
    """Continuity: mean over seed pairs i (Interpolate of seeds 100 + i → 200 + i, item
    index i; keyframes mapped by `to_editing` when given, as the service does) of the largest
    RMS pixel step between consecutive frames over the mean step (1 = even steps; a jump shows
    as a large ratio)."""
    ratios = []
    for i in range(pairs):
        keys = np.concatenate([sample_latents(100 + i, 1, dim), sample_latents(200 + i, 1, dim)])
        if to_editing is not None:
            keys = to_editing(keys)
        frames = np.asarray(decode(interpolate_path(keys, steps, method),
                                   np.full(steps, i, np.int64)), np.float64)  # fmt: skip
        flat = frames.reshape(steps, -1)
        step = np.sqrt(np.mean(np.diff(flat, axis=0) ** 2, axis=1))
        if step.mean() > 0:
            ratios.append(float(step.max() / step.mean()))
    return float(np.mean(ratios)) if ratios else 1.0


def _pairs(dim: int, n: int, seed: int) -> tuple[F32, F32]:
    z = sample_latents(seed, 2 * n, dim)
    return z[:n], z[n:]
