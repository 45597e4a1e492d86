"""Response building: domain values → latentserve.v1 response messages, nothing else.

Pure message building: no validation, no latent math, no backend calls (the servicer and
`generation` produce the values; PNG encoding runs in a worker thread to keep the loop free).
Example::

    return await generate_response(lease, z, images, "png")
"""

from __future__ import annotations

import asyncio

from latentserve.core.arrays import F32
from latentserve.core.pixels import to_uint8
from latentserve.core.tensors import to_tensor
from latentserve.registry.bundle.spec import BundleSpec, DirectionQualitySpec
from latentserve.registry.store.mlflow_store import ModelRecord
from latentserve.service.images import to_png
from latentserve.service.models.lease import Lease
from latentserve.service.requests import Output
from latentserve.v1 import generator_pb2 as pb

NOISE_MODES = {"const": pb.NOISE_MODE_CONST, "seeded": pb.NOISE_MODE_SEEDED,
               "none": pb.NOISE_MODE_NONE}


def resolved(lease: Lease) -> pb.ResolvedModel:
    """The version that served a request, and the alias that chose it."""
    return pb.ResolvedModel(name=lease.served.name, version=lease.served.version,
                            alias=lease.alias)


def list_models(entries: list[tuple[ModelRecord, int]]) -> pb.ListModelsResponse:
    """ListModels: each registered model with the version its default alias serves (0: none)."""
    return pb.ListModelsResponse(models=[
        pb.ModelSummary(name=r.name, versions=r.versions, aliases=r.aliases,
                        loaded_version=loaded)
        for r, loaded in entries
    ])


def latent_space(spec: BundleSpec) -> pb.LatentSpace.ValueType:
    """The proto enum of the bundle's editing space (where every served latent lives)."""
    if spec.num_ws:
        return pb.LATENT_SPACE_W_PLUS
    return pb.LATENT_SPACE_W if spec.editing_space == "w" else pb.LATENT_SPACE_Z


def wire_latents(spec: BundleSpec, z: F32) -> F32:
    """Flat editing-space rows as the wire states them: [n, *editing_shape]."""
    return z.reshape(len(z), *spec.editing_shape)


def layer_range(layers: tuple[int, int] | None) -> pb.LayerRange | None:
    """The proto form of a layer range (None stays unset)."""
    return None if layers is None else pb.LayerRange(start=layers[0], end=layers[1])


def model_info(lease: Lease, aliases: list[str]) -> pb.ModelInfo:
    """ModelInfo of the leased version."""
    bundle, spec = lease.bundle, lease.bundle.spec
    return pb.ModelInfo(
        model=resolved(lease),
        latent_dim=spec.latent_dim,
        prior=spec.prior.kind,
        output_shape=spec.output.shape,
        output_min=spec.output.range[0],
        output_max=spec.output.range[1],
        has_encoder=spec.encoder is not None,
        num_classes=spec.num_classes,
        class_names=spec.condition.labels if spec.condition else [],
        directions=[
            pb.DirectionInfo(name=d.name, method=d.spec.method, unit=d.spec.unit,
                             factor=d.spec.factor or "", sigma=d.sigma,
                             quality=direction_quality(d.spec.quality),
                             layers=layer_range(d.spec.layers))
            for d in bundle.directions.values()
        ],
        max_batch_size=spec.max_batch_size,
        metrics=spec.metrics,
        aliases=aliases,
        description=spec.description,
        editing_space=latent_space(spec),
        has_mapping=spec.mapping is not None,
        w_dim=spec.mapping.w_dim if spec.mapping else 0,
        encoder_conditional=spec.encoder is not None
        and spec.encoder.condition_input is not None,
        latent_shape=spec.prior_shape,
        num_ws=spec.num_ws,
        prior_mean=spec.prior.mean,
        prior_scale=spec.prior.scale,
        noise_inputs=[pb.NoiseInputInfo(name=n.name, shape=n.shape)
                      for n in spec.decoder.noise_inputs],
        noise_default=NOISE_MODES[spec.decoder.noise_default] if spec.decoder.noise_inputs
        else pb.NOISE_MODE_UNSPECIFIED,
    )


def direction_quality(quality: DirectionQualitySpec | None) -> pb.DirectionQuality | None:
    """The proto form of a direction's measured quality (None when the bundle has none)."""
    if quality is None:
        return None
    values = quality.model_dump(exclude={"layers"})
    return pb.DirectionQuality(**values, layers=layer_range(quality.layers))


async def generate_response(lease: Lease, z: F32, images: F32 | None,
                            output: Output) -> pb.GenerateResponse:
    """GenerateResponse of latents z and their decoded images (None: latents only) as `output`."""
    spec = lease.bundle.spec
    response = pb.GenerateResponse(model=resolved(lease),
                                   latents=to_tensor(wire_latents(spec, z)),
                                   latent_space=latent_space(spec))
    if images is None:
        return response
    value_range = spec.output.range
    response.output_range.min, response.output_range.max = value_range
    if output == "png":
        response.png.extend(await asyncio.to_thread(to_png, images, value_range))
    elif output == "uint8":
        to_tensor(to_uint8(images, value_range), out=response.images)
    else:
        to_tensor(images, out=response.images)
    return response


def encode_response(lease: Lease, z: F32) -> pb.EncodeResponse:
    """EncodeResponse of the posterior means z (editing space)."""
    spec = lease.bundle.spec
    return pb.EncodeResponse(model=resolved(lease), latents=to_tensor(wire_latents(spec, z)),
                             latent_space=latent_space(spec))
