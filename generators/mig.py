"""MIG, the mutual information gap (Chen et al. 2018), of latent codes against known discrete
factors, as disentanglement_lib computes it (needs scikit-learn). Example::

    score = mig(mu_real, factor_indices)      # 1 = each factor read by one latent dimension
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from sklearn.metrics import mutual_info_score


def mig(latents: npt.ArrayLike, factors: npt.ArrayLike, *, bins: int = 20) -> float:
    """Mutual information gap (Chen et al. 2018) as disentanglement_lib computes it.

    Each latent dimension is discretised into `bins` equal-width bins; MI with each discrete
    factor (columns of `factors`, integer codes) is normalised by the factor's entropy and the
    gap between the two most informative dimensions averaged over factors.
    """
    z = np.asarray(latents, np.float64)
    f = np.asarray(factors)
    if z.ndim != 2 or f.ndim != 2 or len(z) != len(f):
        raise ValueError(f"latents {z.shape} and factors {f.shape} must be [M, N] and [M, K]")
    if z.shape[1] < 2:
        raise ValueError("MIG needs at least 2 latent dimensions")
    codes = np.stack([np.digitize(col, np.histogram(col, bins)[1][:-1]) for col in z.T], axis=0)
    gaps = []
    for k in range(f.shape[1]):
        entropy = mutual_info_score(f[:, k], f[:, k])
        if entropy == 0:
            continue
        mi = np.sort([mutual_info_score(c, f[:, k]) for c in codes])[::-1]
        gaps.append((mi[0] - mi[1]) / entropy)
    if not gaps:
        raise ValueError("factors: every factor is constant")
    return float(np.mean(gaps))
