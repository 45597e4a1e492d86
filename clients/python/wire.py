"""Requests from the public methods' arguments and results from responses: plain functions
that Client and AsyncClient share, so the two differ only in how they wait.

Every builder checks its arguments (`messages` for single fields) before anything is sent.
Example (what `client.sample(...)` does around its RPC)::

    request = sample_request("digits-cvae", n=8, seed=1, class_labels=[3])
    result = generated(stub.Sample(request, timeout=30.0))
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import numpy.typing as npt

from latentserve.core.tensors import to_tensor
from latentserve.v1 import generator_pb2 as pb

from . import messages as fields
from .messages import ImagesArg, Labels, MethodArg, NoiseArg, OutputArg
from .refs import ModelArg, parse_model_ref
from .results import GenerateResult, ModelSummary, generate_result_from_proto
from .results import model_summary_from_proto as _summary


def model_ref(model: ModelArg, version: int | None = None, alias: str | None = None) -> pb.ModelRef:
    """The wire ModelRef of a method's `model` argument and `version=`/`alias=` keywords."""
    return parse_model_ref(model, version=version, alias=alias).to_proto()


def sample_request(model: ModelArg, *, n: int = 1, seed: int = 0,
                   truncation_psi: float | None = None, truncation_cutoff: int | None = None,
                   class_labels: Labels = None, output: OutputArg = None,
                   noise: NoiseArg = None, noise_seed: int | None = None,
                   version: int | None = None, alias: str | None = None) -> pb.SampleRequest:
    """SampleRequest of `Client.sample`."""
    return pb.SampleRequest(
        model=model_ref(model, version, alias),
        n=fields.uint(n, "n", 32),
        seed=fields.uint(seed, "seed", 64),
        class_labels=fields.class_labels(class_labels),
        output=fields.output_format(output),
        **fields.truncation(truncation_psi, truncation_cutoff),
        noise=fields.noise(noise, noise_seed),
    )


def style_mix_request(model: ModelArg, *, row_seeds: Sequence[int], col_seeds: Sequence[int],
                      layers: tuple[int, int] | Sequence[int],
                      truncation_psi: float | None = None,
                      truncation_cutoff: int | None = None, class_labels: Labels = None,
                      output: OutputArg = None, noise: NoiseArg = None,
                      noise_seed: int | None = None, include_sources: bool = False,
                      version: int | None = None,
                      alias: str | None = None) -> pb.StyleMixRequest:
    """StyleMixRequest of `Client.style_mix`."""
    return pb.StyleMixRequest(
        model=model_ref(model, version, alias),
        row_seeds=[fields.uint(s, f"row_seeds[{i}]", 64) for i, s in enumerate(row_seeds)],
        col_seeds=[fields.uint(s, f"col_seeds[{i}]", 64) for i, s in enumerate(col_seeds)],
        class_labels=fields.class_labels(class_labels),
        output=fields.output_format(output),
        include_sources=bool(include_sources),
        layers=fields.layer_range(layers),
        **fields.truncation(truncation_psi, truncation_cutoff),
        noise=fields.noise(noise, noise_seed),
    )


def interpolate_request(model: ModelArg, *, seeds: Sequence[int] | None = None,
                        latents: npt.ArrayLike | None = None, steps: int = 8,
                        method: MethodArg = None, truncation_psi: float | None = None,
                        truncation_cutoff: int | None = None,
                        class_labels: Labels = None, output: OutputArg = None,
                        noise: NoiseArg = None, noise_seed: int | None = None,
                        version: int | None = None,
                        alias: str | None = None) -> pb.InterpolateRequest:
    """InterpolateRequest of `Client.interpolate` and `Client.stream_interpolate`."""
    return pb.InterpolateRequest(
        model=model_ref(model, version, alias),
        keyframes=fields.latent_source(seeds, latents, truncation_psi, truncation_cutoff),
        steps=fields.uint(steps, "steps", 32),
        method=fields.interpolation_method(method),
        class_labels=fields.class_labels(class_labels),
        output=fields.output_format(output),
        noise=fields.noise(noise, noise_seed),
    )


def edit_request(model: ModelArg, *, direction: str | npt.ArrayLike,
                 strengths: Sequence[float] | npt.ArrayLike, seeds: Sequence[int] | None = None,
                 latents: npt.ArrayLike | None = None, conditional_on: Sequence[str] = (),
                 truncation_psi: float | None = None, truncation_cutoff: int | None = None,
                 layers: tuple[int, int] | Sequence[int] | None = None,
                 class_labels: Labels = None, output: OutputArg = None,
                 noise: NoiseArg = None, noise_seed: int | None = None,
                 version: int | None = None, alias: str | None = None) -> pb.EditRequest:
    """EditRequest of `Client.edit` (direction by name or as a float vector [N]; W+ `layers`)."""
    req = pb.EditRequest(
        model=model_ref(model, version, alias),
        base=fields.latent_source(seeds, latents, truncation_psi, truncation_cutoff),
        strengths=[float(s) for s in np.asarray(strengths, dtype=np.float64).ravel()],
        conditional_on=[conditional_on] if isinstance(conditional_on, str) else conditional_on,
        class_labels=fields.class_labels(class_labels),
        output=fields.output_format(output),
        layers=fields.layer_range(layers),
        noise=fields.noise(noise, noise_seed),
    )
    if isinstance(direction, str):
        req.direction_name = direction
        return req
    vec = np.asarray(direction)
    if vec.ndim != 1:
        raise ValueError(f"direction vector must be 1-D [N], got shape {vec.shape}")
    req.direction_vector.CopyFrom(to_tensor(vec, field="direction_vector"))
    return req


def encode_request(model: ModelArg, images: ImagesArg, *, class_labels: Labels = None,
                   version: int | None = None, alias: str | None = None) -> pb.EncodeRequest:
    """EncodeRequest of `Client.encode`: float arrays go as a tensor, the rest as PNGs."""
    req = pb.EncodeRequest(model=model_ref(model, version, alias),
                           class_labels=fields.class_labels(class_labels))
    found = fields.image_input(images)
    if isinstance(found, pb.Tensor):
        req.images.CopyFrom(found)
    else:
        req.png.SetInParent()
        req.png.images.extend(found)
    return req


def decode_request(model: ModelArg, latents: npt.ArrayLike, *, class_labels: Labels = None,
                   output: OutputArg = None, noise: NoiseArg = None,
                   noise_seed: int | None = None, version: int | None = None,
                   alias: str | None = None) -> pb.DecodeRequest:
    """DecodeRequest of `Client.decode` (latents [n, D] or shaped [n, ...])."""
    return pb.DecodeRequest(
        model=model_ref(model, version, alias), latents=fields.latent_tensor(latents, "latents"),
        class_labels=fields.class_labels(class_labels), output=fields.output_format(output),
        noise=fields.noise(noise, noise_seed),
    )


def generated(resp: pb.GenerateResponse, columns: int | None = None) -> GenerateResult:
    """The result of a GenerateResponse, with its output range and grid `columns`."""
    return generate_result_from_proto(resp, columns=columns)


def mixed(resp: pb.GenerateResponse, request: pb.StyleMixRequest) -> GenerateResult:
    """A style-mixing grid: one row per row seed (sources, when included, lead the rows)."""
    return generated(resp, len(request.col_seeds))


def path(resp: pb.GenerateResponse) -> GenerateResult:
    """An interpolation path: a result whose grid is one row."""
    result = generated(resp)
    return replace(result, columns=len(result))


def summaries(resp: pb.ListModelsResponse) -> list[ModelSummary]:
    """The model list of a ListModelsResponse."""
    return [_summary(m) for m in resp.models]
