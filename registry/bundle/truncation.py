"""The truncation center of a two-stage generator: w̄, the mean of mapped prior samples.

StyleGAN-style truncation moves w toward the mean of the mapping's outputs, w' = w̄ + ψ (w − w̄);
a bundle stores w̄ as `truncation_center`. This computes it from at least 10,000 seeded draws
of z ~ N(0, I) run through the mapping ONNX with onnxruntime::

    center = mean_w(Path("mapping.onnx"), spec)            # float32 [w_dim], seed 0
    center = mean_of_mapping(Path("mapping.onnx"), "z", "w", latent_dim=16)   # before a spec
    spec = spec.model_copy(update={"truncation_center": center.tolist()})
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from latentserve.core.arrays import F32, F64
from latentserve.registry.bundle.spec import BundleError, BundleSpec

MIN_SAMPLES = 10_000
"""Fewest mapped samples w̄ is computed from (its standard error is then ≤ 1 % of w's spread)."""
BATCH_ROWS = 2048
"""Rows per onnxruntime call while computing w̄."""


def mean_w(mapping: Path | bytes, spec: BundleSpec, *, samples: int = MIN_SAMPLES,
           seed: int = 0) -> F32:
    """w̄ of the mapping `spec.mapping` describes (`mapping`: its ONNX file or bytes); see
    `mean_of_mapping`. Raises BundleError when the spec has no mapping."""
    if spec.mapping is None:
        raise BundleError(f"{spec.name}: mapping: the spec has no mapping network; w̄ exists "
                          "only for two-stage generators")
    try:
        return mean_of_mapping(mapping, spec.mapping.input, spec.mapping.output,
                               spec.latent_dim, samples=samples, seed=seed,
                               input_shape=spec.prior_shape,
                               prior=(spec.prior.mean, spec.prior.scale))
    except BundleError as exc:
        raise BundleError(f"{spec.name}: {exc.message}") from None


def mean_of_mapping(mapping: Path | bytes, input_name: str, output_name: str, latent_dim: int,
                    *, samples: int = MIN_SAMPLES, seed: int = 0,
                    input_shape: Sequence[int] | None = None,
                    prior: tuple[float, float] = (0.0, 1.0)) -> F32:
    """w̄: the float64 mean of mapping(z) over `samples` draws z = mean + scale·ε of
    `default_rng(seed).standard_normal((samples, latent_dim))` (cast to float32), as float32.

    z goes in shaped [B, *input_shape] when given; a W+ mapping's [B, L, w_dim] output is
    averaged over its layers too (w̄ is one vector of W, shared by every layer).

    `mapping` is the ONNX file (or its bytes) taking `input_name` float32 [B, latent_dim] to
    `output_name` [B, w_dim]; it needs no spec, so a bundle builder can call it before the spec
    exists. The same arguments give the same vector. Raises ValueError for fewer than
    MIN_SAMPLES samples and BundleError when the outputs are not finite.
    """
    if samples < MIN_SAMPLES:
        raise ValueError(f"samples must be ≥ {MIN_SAMPLES}, got {samples}")
    # onnxruntime is the server extra; imported here so the spec module needs none
    from latentserve.registry.quality.onnx_generator import cpu_session

    session = cpu_session(mapping)
    rng = np.random.default_rng(seed)
    total: F64 | None = None
    for lo in range(0, samples, BATCH_ROWS):
        rows = min(BATCH_ROWS, samples - lo)
        z = rng.standard_normal((rows, latent_dim)).astype(np.float32)
        if prior != (0.0, 1.0):
            z = (prior[0] + prior[1] * z.astype(np.float64)).astype(np.float32)
        if input_shape is not None:
            z = z.reshape(rows, *input_shape)
        (w,) = session.run([output_name], {input_name: z})
        wide = np.asarray(w, np.float64)
        part = (wide.mean(axis=1) if wide.ndim == 3 else wide).sum(axis=0)
        total = part if total is None else total + part
    assert total is not None
    center = (total / samples).astype(np.float32)
    if not np.all(np.isfinite(center)):
        raise BundleError("mapping: outputs are not finite; w̄ is undefined")
    return center
