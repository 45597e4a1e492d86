"""The domain steps of generation: latents from seeds, edit directions, backend decode.

Takes checked values from `requests` and the leased version; returns arrays for `responses`.
Example::

    z = await sample(lease, seed=7, n=4, psi=0.7)
    images = await decode(lease, z, None, "png", limits.max_message_bytes)

Latents here are in the bundle's editing space, as flat C-order rows [n, row_dim]: seeds draw
z = mean + scale·ε from the prior, and two-stage generators map it to W (W+: one w per layer)
on the backend before truncation (around w̄; W+ optionally on the first `cutoff` layers only),
editing and decoding. Shapes appear only at the ONNX boundary and on the wire.
"""

from __future__ import annotations

import numpy as np

from latentserve.core import latent_ops, layer_ops, seeding
from latentserve.core.arrays import F32, I64
from latentserve.core.errors import InvalidArgument, NotFound
from latentserve.core.names import did_you_mean, shown
from latentserve.registry.bundle import feeds
from latentserve.registry.bundle.feeds import NoiseChoice
from latentserve.registry.bundle.files import Bundle
from latentserve.service import requests as rq
from latentserve.service.models.lease import Lease


async def sample(lease: Lease, seed: int, n: int, psi: float | None,
                 cutoff: int | None = None) -> F32:
    """Items 0..n-1 of `seed` drawn from the prior, in the editing space (mapped to W for
    two-stage generators), truncated toward the bundle's center by ψ (W+: on the first
    `cutoff` layers)."""
    spec = lease.bundle.spec
    z = feeds.prior_rows(spec, seeding.sample_latents(seed, n, spec.latent_dim))
    return truncated(lease.bundle, await lease.backend.to_editing_space(z), psi, cutoff)


async def keyframes(lease: Lease, source: F32 | rq.KeyframeSeeds) -> F32:
    """Caller latents as given (editing space), or one latent per seed: item 0 of that seed,
    in the editing space, then truncated."""
    if not isinstance(source, rq.KeyframeSeeds):
        return source
    return await seed_rows(lease, source.seeds, source.psi, source.cutoff)


async def seed_rows(lease: Lease, seeds: list[int], psi: float | None,
                    cutoff: int | None = None) -> F32:
    """Item 0 of each seed in the editing space, truncated (a keyframe, base or mix source)."""
    spec = lease.bundle.spec
    z = feeds.prior_rows(spec, seeding.seed_latents(seeds, spec.latent_dim))
    return truncated(lease.bundle, await lease.backend.to_editing_space(z), psi, cutoff)


def edit(bases: F32, direction: F32, strengths: F32, sigma: float, *, num_ws: int = 0,
         layers: tuple[int, int] | None = None) -> F32:
    """One row per base × strength: z + α σ d (W+: added to the layers [start, end) only;
    overflow is left for `finite` to report)."""
    with np.errstate(over="ignore", invalid="ignore"):
        if num_ws:
            return layer_ops.edit_layers(bases, num_ws, direction, strengths, sigma, layers)
        return latent_ops.edit_latents(bases, direction, strengths, sigma)


def style_mix(rows: F32, cols: F32, num_ws: int, layers: tuple[int, int],
              include_sources: bool) -> F32:
    """The style-mixing grid rows (row-major), after the R + C sources when asked for."""
    grid = layer_ops.style_mix(rows, cols, num_ws, layers)
    return np.concatenate([rows, cols, grid]) if include_sources else grid


def finite(z: F32, field: str) -> F32:
    """`z` if every value is finite; otherwise the request's `field` pushed it out of range."""
    if not np.isfinite(z).all():
        raise InvalidArgument(
            f"{field} makes the latents overflow (non-finite values); use smaller values",
            field=field)
    return z


def finite_output(values: F32, field: str, what: str) -> F32:
    """A backend output checked finite: NaN/Inf comes from inputs far outside the prior."""
    if not np.isfinite(values).all():
        raise InvalidArgument(
            f"the {what} computed from {field} are not finite (NaN or Inf); the input lies "
            "far outside the model's range", field=field)
    return values


def truncated(bundle: Bundle, z: F32, psi: float | None, cutoff: int | None = None) -> F32:
    """Editing-space rows truncated toward the bundle's center by ψ (None: unchanged); W+
    rows per layer, on the first `cutoff` layers only when given."""
    if psi is None:
        return z
    num_ws = bundle.spec.num_ws
    with np.errstate(over="ignore", invalid="ignore"):  # overflow is reported by `finite`
        if num_ws:
            if not np.isfinite(z).all():
                return z  # reported by `finite`
            return layer_ops.truncate_layers(z, num_ws, psi, bundle.truncation_center, cutoff)
        return latent_ops.truncate(z, psi, bundle.truncation_center)


def direction(bundle: Bundle, choice: rq.DirectionChoice) -> tuple[F32, float]:
    """The unit edit direction, held orthogonal to `conditional_on`, and strength 1's length."""
    name = bundle.spec.name
    if choice.vector is None:
        found = bundle.directions.get(choice.name)
        if found is None:
            raise NotFound(f"{name} has no direction {shown(choice.name)}"
                           f"{did_you_mean(choice.name, bundle.directions)}")
        vector, sigma = found.vector, found.sigma
    else:
        wide = choice.vector.astype(np.float64)  # float32 squares overflow near 1.8e19
        vector, sigma = (wide / float(np.linalg.norm(wide))).astype(np.float32), 1.0
    held = []
    for i, other_name in enumerate(choice.conditional_on):
        if other_name == choice.name:
            raise InvalidArgument(f"conditional_on[{i}] is the edited direction "
                                  f"{shown(other_name)}",
                                  field=f"conditional_on[{i}]")
        other = bundle.directions.get(other_name)
        if other is None:
            raise NotFound(f"conditional_on[{i}]: {name} has no direction "
                           f"{shown(other_name)}{did_you_mean(other_name, bundle.directions)}")
        held.append(other.vector)
    if held:
        try:
            vector = latent_ops.orthogonalize(vector, held)
        except ValueError as exc:
            raise InvalidArgument(f"conditional_on makes the edit degenerate: {exc}",
                                  field="conditional_on") from None
    return vector, sigma


async def decode(lease: Lease, z: F32, labels: I64 | None, output: rq.Output,
                 max_message_bytes: int, noise: NoiseChoice | None = None) -> F32 | None:
    """Images of z on the lease's backend (fed `noise`: the model's default when None), or
    None for latents-only output.

    The response size is checked first, so an oversized request never reaches the backend.
    """
    if output == "latents":
        return None
    rq.check_response_size(len(z), lease.bundle.spec, output, max_message_bytes)
    return await lease.backend.decode(z, labels, noise)
