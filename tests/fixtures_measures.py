"""Image measures for `latentserve bundle evaluate --measures fixtures_measures:tiny_axes`:
the tiny generator's latent coordinates read back from its images (its decoder is invertible),
so a direction along latent axis i moves measure `z<i>` exactly and nothing else."""

from __future__ import annotations

import numpy as np

from latentserve.core.arrays import F32, F64
from latentserve.registry.tiny import TinyWeights

_WEIGHTS = TinyWeights(4, (1, 8, 8), 0, 0)


def tiny_axes(images: F32) -> dict[str, F64]:
    """z0 … z3 of the default tiny bundle (latent_dim 4, 1×8×8, seed 0), from its images."""
    p = np.clip(images.reshape(len(images), -1).astype(np.float64), 1e-7, 1 - 1e-7)
    z = (np.log(p / (1 - p)) - _WEIGHTS.b) @ _WEIGHTS.pinv.astype(np.float64)
    return {f"z{i}": z[:, i] for i in range(z.shape[1])}


def broken(images: F32) -> dict[str, F64]:
    """A measure function returning the wrong shape."""
    return {"oops": np.zeros(len(images) + 1)}
