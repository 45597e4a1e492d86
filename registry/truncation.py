"""The truncation center of a two-stage generator: w̄, the mean of mapped prior samples.

StyleGAN-style truncation moves w toward the mean of the mapping's outputs, w' = w̄ + ψ (w − w̄);
a bundle stores w̄ as `truncation_center`. This computes it from at least 10,000 seeded draws
of z ~ N(0, I) run through the mapping ONNX with onnxruntime::

    center = mean_w(Path("mapping.onnx"), spec)            # float32 [w_dim], seed 0
    spec = spec.model_copy(update={"truncation_center": center.tolist()})
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from latentserve.core.arrays import F32
from latentserve.registry.spec import BundleError, BundleSpec

MIN_SAMPLES = 10_000
"""Fewest mapped samples w̄ is computed from (its standard error is then ≤ 1 % of w's spread)."""
BATCH_ROWS = 2048
"""Rows per onnxruntime call while computing w̄."""


def mean_w(mapping: Path | bytes, spec: BundleSpec, *, samples: int = MIN_SAMPLES,
           seed: int = 0) -> F32:
    """w̄: the float64 mean of mapping(z) over `samples` draws z of
    `default_rng(seed).standard_normal((samples, latent_dim))` (cast to float32), as float32.

    `mapping` is the ONNX file (or its bytes) that `spec.mapping` describes; the same arguments
    give the same vector. Raises ValueError for fewer than MIN_SAMPLES samples and BundleError
    when the spec has no mapping or the outputs are not finite.
    """
    if spec.mapping is None:
        raise BundleError(f"{spec.name}: mapping: the spec has no mapping network; w̄ exists "
                          "only for two-stage generators")
    if samples < MIN_SAMPLES:
        raise ValueError(f"samples must be ≥ {MIN_SAMPLES}, got {samples}")
    import onnxruntime as ort  # the server extra; imported here so the spec module needs none

    source = mapping if isinstance(mapping, bytes) else str(mapping)
    session = ort.InferenceSession(source, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(seed)
    total = np.zeros(spec.mapping.w_dim, np.float64)
    for lo in range(0, samples, BATCH_ROWS):
        rows = min(BATCH_ROWS, samples - lo)
        z = rng.standard_normal((rows, spec.latent_dim)).astype(np.float32)
        (w,) = session.run([spec.mapping.output], {spec.mapping.input: z})
        total += np.asarray(w, np.float64).sum(axis=0)
    center = (total / samples).astype(np.float32)
    if not np.all(np.isfinite(center)):
        raise BundleError(f"{spec.name}: mapping: outputs are not finite; w̄ is undefined")
    return center
