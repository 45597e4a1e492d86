"""Request checks of the W+ and noise fields: truncation cutoff, layer ranges, noise options and
the StyleMix request. Like `requests`: protobuf fields → checked plain values, or an error
naming the field (INVALID_ARGUMENT for a bad value, FAILED_PRECONDITION for a field the model
cannot use). Example::

    cutoff = rq.truncation_cutoff(request, spec, "truncation_cutoff")
    layers = layer_range(request, "layers", spec, default=direction.spec.layers)
    noise = noise_choice(request, spec, default_seed=request.seed)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from latentserve.core.errors import FailedPrecondition, InvalidArgument
from latentserve.registry.bundle.feeds import NoiseChoice
from latentserve.registry.bundle.spec import BundleSpec, NoiseMode
from latentserve.service import requests as rq
from latentserve.v1 import generator_pb2 as pb

_NOISE_MODES: dict[int, NoiseMode] = {
    pb.NOISE_MODE_CONST: "const",
    pb.NOISE_MODE_SEEDED: "seeded",
    pb.NOISE_MODE_NONE: "none",
}


def layer_range(message: Any, field: str, spec: BundleSpec,
                default: tuple[int, int] | None = None, *,
                required: bool = False) -> tuple[int, int] | None:
    """A LayerRange [start, end) within [0, num_ws] (W+ only); unset → `default` (None: all)."""
    if not message.HasField(field):
        if required:
            if not spec.num_ws:
                rq.w_plus_only(spec, field)
            raise InvalidArgument(f"{field} is required (e.g. start 0, end "
                                  f"{max(1, spec.num_ws // 2)} for coarse styles)", field=field)
        return default
    rq.w_plus_only(spec, field)
    value = getattr(message, field)
    start, end = int(value.start), int(value.end)
    if not start < end <= spec.num_ws:
        raise InvalidArgument(f"{field} must satisfy start < end ≤ num_ws {spec.num_ws}, got "
                              f"[{start}, {end})", field=field)
    return start, end


def noise_choice(message: Any, spec: BundleSpec, *, default_seed: int = 0) -> NoiseChoice:
    """The request's noise: mode (UNSPECIFIED: the model's default) and seed (unset:
    `default_seed`, the request's seed for Sample). Setting either on a model without noise
    inputs is FAILED_PRECONDITION naming noise."""
    options: pb.NoiseOptions = message.noise
    given = message.HasField("noise") and (options.mode != pb.NOISE_MODE_UNSPECIFIED
                                           or options.HasField("seed"))
    if given and not spec.decoder.noise_inputs:
        raise FailedPrecondition(f"noise: {spec.name}'s decoder has no noise inputs; leave "
                                 "noise unset")
    if options.mode == pb.NOISE_MODE_UNSPECIFIED:
        mode = spec.decoder.noise_default
    else:
        try:
            mode = _NOISE_MODES[options.mode]
        except KeyError:
            raise InvalidArgument(f"noise.mode {options.mode} is not a known NoiseMode "
                                  "(CONST, SEEDED, NONE)", field="noise.mode") from None
    seed = int(options.seed) if options.HasField("seed") else default_seed
    return NoiseChoice(mode, seed if mode == "seeded" else 0)


@dataclass(frozen=True)
class MixRequest:
    """A checked StyleMixRequest (labels aside)."""

    rows: list[int]
    cols: list[int]
    layers: tuple[int, int]
    psi: float | None
    cutoff: int | None
    output: rq.Output
    noise: NoiseChoice
    include_sources: bool

    @property
    def items(self) -> int:
        """Images produced: R·C mixes, after R + C sources when asked for."""
        mixes = len(self.rows) * len(self.cols)
        return mixes + (len(self.rows) + len(self.cols) if self.include_sources else 0)


def style_mix(request: pb.StyleMixRequest, spec: BundleSpec, limit: int) -> MixRequest:
    """A StyleMixRequest on a W+ generator: 1+ row and column seeds, a layer range, at most
    `limit` items in all."""
    if not spec.num_ws:
        raise FailedPrecondition(f"{spec.name} has no W+ layers; StyleMix needs a generator "
                                 "whose synthesis takes ws [B, num_ws, w_dim]")
    rows = list(request.row_seeds)
    cols = list(request.col_seeds)
    rq.check_count(len(rows), "row_seeds", limit)
    rq.check_count(len(cols), "col_seeds", limit)
    layers = layer_range(request, "layers", spec, required=True)
    assert layers is not None
    mix = MixRequest(rows, cols, layers, rq.truncation_psi(request, "truncation_psi"),
                     rq.truncation_cutoff(request, spec, "truncation_cutoff"),
                     rq.output_format(request.output), noise_choice(request, spec),
                     request.include_sources)
    if mix.items > limit:
        raise InvalidArgument(f"the grid would have {mix.items} items, over the limit of "
                              f"{limit}; use fewer row or column seeds", field="col_seeds")
    return mix
