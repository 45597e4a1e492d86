"""Canonical latents of a bundle: circular factors on the representative nearest the prior's
centre (Encode and Project return these). Example::

    z = canonical_latents(lease.bundle.spec, await lease.backend.encode(images))
"""

from __future__ import annotations

import numpy as np

from latentserve.core import circular
from latentserve.core.arrays import F32
from latentserve.registry.bundle.spec import BundleSpec


def centre(spec: BundleSpec) -> F32:
    """The prior's centre in the editing space, one value per row entry: w̄ for W (W+: per
    layer), the prior mean for Z."""
    if spec.truncation_center is not None:
        w = np.asarray(spec.truncation_center, np.float32)
        return np.tile(w, spec.row_dim // len(w))
    return np.full(spec.row_dim, spec.prior.mean, np.float32)


def canonical_latents(spec: BundleSpec, z: F32) -> F32:
    """`z` [n, row_dim] with each circular factor (spec.circular) on its canonical turn."""
    if not spec.circular:
        return z
    turns = np.asarray([c.turn for c in spec.circular], np.float64)
    return circular.canonical(z, turns, centre(spec))
