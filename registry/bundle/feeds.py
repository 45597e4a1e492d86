"""The ONNX boundary of a bundle: flat latent rows → shaped network inputs, outputs → rows.

Everything that serves or measures a bundle (the service's backends, the builder's probe, the
bundle check, offline evaluation) keeps latents as flat C-order float32 rows and shapes them
only here, so a `[4, 16, 16]` VAE, a W+ synthesis and a plain `[B, N]` decoder take the same
path. Noise inputs are drawn here too (`noise_feeds`). Pure numpy. Example::

    z = prior_rows(spec, sample_latents(seed, n, spec.latent_dim))   # mean + scale·ε
    feeds = {m.input: shaped(z, spec.prior_shape)}                      # mapping input
    ws = mapping_rows(spec, mapping_output)                            # [n, row_dim]
    feeds = {d.input: shaped(ws, spec.editing_shape),
             **noise_feeds(spec, NoiseChoice("seeded", 7), items=range(n))}
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from latentserve.core import layer_ops, seeding
from latentserve.core.arrays import F32
from latentserve.registry.bundle.spec import BundleSpec, NoiseMode


@dataclass(frozen=True)
class NoiseChoice:
    """How a decode feeds the decoder's noise inputs: `mode`, the noise seed (seeded) and the
    item number of the decode's first row within its request (a stream chunk's offset)."""

    mode: NoiseMode = "const"
    seed: int = 0
    offset: int = 0


def shaped(rows: npt.NDArray[Any], shape: Sequence[int]) -> F32:
    """Flat rows [n, prod(shape)] as the network input [n, *shape] (a view when possible)."""
    arr = np.asarray(rows, dtype=np.float32)
    return arr.reshape(len(arr), *shape)


def flat(values: npt.NDArray[Any]) -> F32:
    """Network values [n, ...] as flat C-order rows [n, prod(...)] (float32)."""
    arr = np.asarray(values, dtype=np.float32)
    return np.ascontiguousarray(arr.reshape(len(arr), -1))


def prior_rows(spec: BundleSpec, eps: F32) -> F32:
    """Prior latents z = mean + scale·ε from standard-normal rows ε (ε itself for N(0, I))."""
    return seeding.prior_latents(eps, spec.prior.mean, spec.prior.scale)


def mapping_rows(spec: BundleSpec, output: npt.NDArray[Any]) -> F32:
    """The mapping's output as editing-space rows [n, row_dim]: for W+, a [n, w_dim] output is
    broadcast to every layer; a [n, L, w_dim] output is flattened."""
    out = flat(output)
    if spec.num_ws and out.shape[1] == spec.editing_dim:
        return layer_ops.broadcast_ws(out, spec.num_ws)
    return out


encoder_rows = mapping_rows
"""An encoder's means as editing-space rows: the same rule (W+ encoders may return one w)."""


def noise_feeds(spec: BundleSpec, choice: NoiseChoice, items: Sequence[int]) -> dict[str, F32]:
    """The decoder's noise inputs for the given items (their indices within the request):

    const: noise(0, 0, k) for every item; seeded: noise(seed, item, k); none: zeros. Empty for
    decoders without noise inputs."""
    feeds: dict[str, F32] = {}
    n = len(items)
    for index, entry in enumerate(spec.decoder.noise_inputs):
        shape = tuple(entry.shape)
        if choice.mode == "none":
            feeds[entry.name] = np.zeros((n, *shape), np.float32)
        elif choice.mode == "const":
            one = seeding.noise(0, 0, index, shape)
            feeds[entry.name] = np.ascontiguousarray(np.broadcast_to(one, (n, *shape)))
        else:
            feeds[entry.name] = seeding.noise_rows(choice.seed, items, index, shape)
    return feeds


def default_noise(spec: BundleSpec) -> NoiseChoice:
    """The bundle's default noise (`decoder.noise_default`), seed 0."""
    return NoiseChoice(spec.decoder.noise_default, 0)
