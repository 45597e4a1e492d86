"""Projection in-process on the shipped W+ generator (stylish-shapes, embedded backend): the
search runs in W, each candidate on every layer, and the result is W+ rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from latentserve.core import seeding
from latentserve.registry.bundle.files import load_bundle
from latentserve.service import projection_polish
from latentserve.service.backends.embedded import EmbeddedBackend
from latentserve.service.models.lease import Lease, ServedVersion
from latentserve.service.projection import (
    PRIOR_SAMPLES,
    Plan,
    Projection,
    population_size,
    search_dim,
)
from latentserve.service.settings import Settings

ZOO = Path(__file__).resolve().parents[2] / "generators" / "zoo"


async def test_a_wplus_generator_is_searched_in_w() -> None:
    bundle = load_bundle(ZOO / "stylish-shapes")
    spec = bundle.spec
    assert search_dim(spec) == spec.editing_dim < spec.row_dim
    backend = EmbeddedBackend(bundle, Settings.model_validate({}))
    await backend.load()
    try:
        lease = Lease(ServedVersion(spec.name, 1, bundle, backend), "production")
        n, steps = 2, 5
        targets = await backend.decode(await backend.to_editing_space(
            seeding.sample_latents(7, n, spec.latent_dim)))
        run = Projection(lease, targets, None, Plan(steps=steps, seed=1))
        final = [snap async for snap in run.run()][-1]
    finally:
        await backend.unload()

    ws = final.latents.reshape(n, spec.num_ws, spec.editing_dim)
    np.testing.assert_array_equal(ws, np.repeat(ws[:, :1], spec.num_ws, axis=1))
    assert (final.loss < final.initial_loss).all()
    # the start, CMA-ES generations of W-sized populations, the means, the polish in W
    polish = int(steps * projection_polish.SHARE)
    cma = (steps - polish) * n * population_size(spec.editing_dim, 0)
    assert run.decodes == PRIOR_SAMPLES + cma + n + polish * n * (spec.editing_dim + 1)
