"""The latentserve.v1.GeneratorService implementation: request → latents → one decode path.

Each RPC validates its request (`requests`), builds latents with the pure math (`latent_ops`),
and hands them to `decode_response`, the single batched decode path every RPC shares.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncGenerator, Callable
from functools import partial
from typing import Any, TypeVar

import numpy as np

from latentserve.core import latent_ops
from latentserve.core.errors import FailedPrecondition, InvalidArgument, NotFound
from latentserve.core.tensors import to_tensor
from latentserve.registry.bundle import Bundle
from latentserve.service import requests as rq
from latentserve.service.grpc_errors import Outcome, rpc, rpc_stream
from latentserve.service.images import from_png, to_png, to_uint8
from latentserve.service.metrics import ServiceMetrics
from latentserve.service.model_manager import Lease, ModelManager
from latentserve.service.settings import Settings
from latentserve.v1 import generator_pb2 as pb
from latentserve.v1 import generator_pb2_grpc as pb_grpc

F32 = rq.F32
T = TypeVar("T")
I64 = rq.I64


class GeneratorServicer(pb_grpc.GeneratorServiceServicer):
    """Serves every RPC of latentserve.v1.GeneratorService."""

    def __init__(self, settings: Settings, manager: ModelManager, metrics: ServiceMetrics) -> None:
        self.manager = manager
        self.metrics = metrics
        self.limits = rq.Limits.from_settings(settings)
        self.default_deadline_s = settings.default_deadline_s
        self.access_log = settings.access_log

    # ------------------------------------------------------------------ catalogue
    @rpc("ListModels")
    async def ListModels(self, request: pb.ListModelsRequest, context: Any,
                         outcome: Outcome) -> pb.ListModelsResponse:
        entries = await self.manager.list_models()
        return pb.ListModelsResponse(models=[
            pb.ModelSummary(name=r.name, versions=r.versions, aliases=r.aliases,
                            loaded_version=loaded)
            for r, loaded in entries
        ])

    @rpc("GetModel")
    async def GetModel(self, request: pb.GetModelRequest, context: Any,
                       outcome: Outcome) -> pb.ModelInfo:
        async with self.manager.lease(**rq.model_ref(request.model)) as lease:
            outcome.model, outcome.version = lease.served.name, lease.served.version
            return model_info(lease, self.manager.aliases_of(lease.served.name,
                                                             lease.served.version))

    # ------------------------------------------------------------------ generation
    @rpc("Sample")
    async def Sample(self, request: pb.SampleRequest, context: Any,
                     outcome: Outcome) -> pb.GenerateResponse:
        n = rq.check_count(request.n, "n", self.limits.max_items)
        psi = rq.truncation_psi(request, "truncation_psi")
        output = rq.output_format(request.output)
        async with self.manager.lease(**rq.model_ref(request.model)) as lease:
            spec = self._begin(lease, outcome, n)
            labels = rq.class_labels(request.class_labels, spec, rows=n, field="class_labels")
            z = latent_ops.sample_latents(request.seed, n, spec.latent_dim)
            if psi is not None:
                z = latent_ops.truncate(z, psi, lease.bundle.truncation_center)
            return await decode_response(lease, z, labels, output, self.limits)

    @rpc("Interpolate")
    async def Interpolate(self, request: pb.InterpolateRequest, context: Any,
                          outcome: Outcome) -> pb.GenerateResponse:
        async with self.manager.lease(**rq.model_ref(request.model)) as lease:
            z, labels, output = self._path(request, lease, outcome)
            return await decode_response(lease, z, labels, output, self.limits)

    @rpc_stream("StreamInterpolate")
    async def StreamInterpolate(self, request: pb.InterpolateRequest, context: Any,
                                outcome: Outcome) -> AsyncGenerator[pb.GenerateResponse, None]:
        async with self.manager.lease(**rq.model_ref(request.model)) as lease:
            z, labels, output = self._path(request, lease, outcome)
            step = lease.bundle.spec.max_batch_size
            for lo in range(0, len(z), step):
                part = None if labels is None else labels[lo:lo + step]
                chunk = await decode_response(lease, z[lo:lo + step], part, output, self.limits)
                chunk.offset = lo
                yield chunk

    @rpc("Edit")
    async def Edit(self, request: pb.EditRequest, context: Any,
                   outcome: Outcome) -> pb.GenerateResponse:
        strengths = rq.strengths(request.strengths)
        output = rq.output_format(request.output)
        async with self.manager.lease(**rq.model_ref(request.model)) as lease:
            spec = lease.bundle.spec
            bases = self._latents(rq.keyframes(request.base, "base", spec,
                                               self.limits.max_items), lease)
            rows = len(bases) * len(strengths)
            self._begin(lease, outcome, rows)
            direction, sigma = edit_direction(request, lease.bundle)
            z = latent_ops.edit_latents(bases, direction, strengths, sigma)
            labels = rq.class_labels(request.class_labels, spec, rows=rows, field="class_labels",
                                     per="base", groups=len(bases))
            return await decode_response(lease, z, labels, output, self.limits)

    @rpc("Decode")
    async def Decode(self, request: pb.DecodeRequest, context: Any,
                     outcome: Outcome) -> pb.GenerateResponse:
        output = rq.output_format(request.output)
        async with self.manager.lease(**rq.model_ref(request.model)) as lease:
            spec = lease.bundle.spec
            z = rq.latents(request.latents, "latents", spec, self.limits.max_items)
            self._begin(lease, outcome, len(z))
            labels = rq.class_labels(request.class_labels, spec, rows=len(z),
                                     field="class_labels")
            return await decode_response(lease, z, labels, output, self.limits)

    @rpc("Encode")
    async def Encode(self, request: pb.EncodeRequest, context: Any,
                     outcome: Outcome) -> pb.EncodeResponse:
        async with self.manager.lease(**rq.model_ref(request.model)) as lease:
            spec = lease.bundle.spec
            if spec.encoder is None:
                raise FailedPrecondition(f"{spec.name} has no encoder; Encode is not available")
            images = await self._images(request, lease)
            self._begin(lease, outcome, len(images))
            labels = None
            if spec.encoder.condition_input is not None:
                labels = rq.class_labels(request.class_labels, spec, rows=len(images),
                                         field="class_labels")
            elif request.class_labels:
                raise InvalidArgument(f"{spec.name}'s encoder takes no class labels",
                                      field="class_labels")
            z = await lease.backend.encode(images, labels)
            return pb.EncodeResponse(model=resolved(lease), latents=to_tensor(z))

    # ------------------------------------------------------------------ helpers
    def _begin(self, lease: Lease, outcome: Outcome, rows: int) -> Any:
        """Record the model and item count; enforce the item limit on derived row counts."""
        outcome.model, outcome.version = lease.served.name, lease.served.version
        outcome.items = rows
        rq.check_count(rows, "items (rows produced)", self.limits.max_items)
        return lease.bundle.spec

    def _latents(self, source: F32 | rq.KeyframeSeeds, lease: Lease) -> F32:
        if not isinstance(source, rq.KeyframeSeeds):
            return source
        dim = lease.bundle.spec.latent_dim
        z = np.stack([latent_ops.sample_latents(s, 1, dim)[0] for s in source.seeds])
        if source.psi is not None:
            z = latent_ops.truncate(z, source.psi, lease.bundle.truncation_center)
        return z

    def _path(self, request: pb.InterpolateRequest, lease: Lease,
              outcome: Outcome) -> tuple[F32, I64 | None, rq.Output]:
        spec = lease.bundle.spec
        method = rq.method(request.method)
        output = rq.output_format(request.output)
        keys = self._latents(rq.keyframes(request.keyframes, "keyframes", spec,
                                          self.limits.max_frames, min_count=2), lease)
        steps = rq.check_count(request.steps, "steps", self.limits.max_frames, low=2)
        frames = (len(keys) - 1) * (steps - 1) + 1
        if frames > self.limits.max_frames:
            raise InvalidArgument(
                f"the path would have {frames} frames, over the limit of "
                f"{self.limits.max_frames}; use fewer keyframes or steps", field="steps")
        z = latent_ops.interpolate_path(keys, steps, method)
        outcome.model, outcome.version = lease.served.name, lease.served.version
        outcome.items = frames
        labels = rq.class_labels(request.class_labels, spec, rows=frames, field="class_labels",
                                 per="frame")
        return z, labels, output

    async def _images(self, request: pb.EncodeRequest, lease: Lease) -> F32:
        spec = lease.bundle.spec
        limit = self.limits.max_items
        which = request.WhichOneof("input")
        if which == "images":
            images = rq.tensor(request.images, "images", dtype=np.float32,
                               shape=(None, *spec.output.shape), finite=True)
            rq.check_count(len(images), "images.shape[0]", limit)
            return np.asarray(images, dtype=np.float32)
        if which == "png":
            rq.check_count(len(request.png.images), "png.images", limit)
            return await off_loop(partial(from_png, field="png.images"), request.png.images,
                                  spec.output.shape, spec.output.range)
        raise InvalidArgument("Encode needs images or png", field="input")


def resolved(lease: Lease) -> pb.ResolvedModel:
    """The version that served a request, and the alias that chose it."""
    return pb.ResolvedModel(name=lease.served.name, version=lease.served.version,
                            alias=lease.alias)


def edit_direction(request: pb.EditRequest, bundle: Bundle) -> tuple[F32, float]:
    """The (possibly conditioned) unit edit direction and the latent length of strength 1."""
    spec = bundle.spec
    which = request.WhichOneof("direction")
    if which == "direction_name":
        found = bundle.directions.get(request.direction_name)
        if found is None:
            known = ", ".join(bundle.directions) or "none"
            raise NotFound(
                f"{spec.name} has no direction {request.direction_name!r} (known: {known})")
        vector, sigma, own = found.vector, found.sigma, request.direction_name
    elif which == "direction_vector":
        raw = rq.tensor(request.direction_vector, "direction_vector", dtype=np.float32,
                        shape=(spec.latent_dim,), finite=True)
        norm = float(np.linalg.norm(raw))
        if norm < 1e-12:
            raise InvalidArgument("direction_vector has zero norm", field="direction_vector")
        vector, sigma, own = (raw / norm).astype(np.float32), 1.0, ""
    else:
        raise InvalidArgument("Edit needs direction_name or direction_vector", field="direction")
    held = []
    for i, name in enumerate(request.conditional_on):
        if name == own:
            raise InvalidArgument(f"conditional_on[{i}] is the edited direction {name!r}",
                                  field=f"conditional_on[{i}]")
        other = bundle.directions.get(name)
        if other is None:
            raise NotFound(f"conditional_on[{i}]: {spec.name} has no direction {name!r}")
        held.append(other.vector)
    if held:
        try:
            vector = latent_ops.orthogonalize(vector, held)
        except ValueError as exc:
            raise InvalidArgument(f"conditional_on makes the edit degenerate: {exc}",
                                  field="conditional_on") from None
    return vector, sigma


async def decode_response(lease: Lease, z: F32, labels: I64 | None, output: rq.Output,
                          limits: rq.Limits) -> pb.GenerateResponse:
    """The one decode path: decode z on the backend and encode images as asked."""
    spec = lease.bundle.spec
    response = pb.GenerateResponse(model=resolved(lease), latents=to_tensor(z))
    if output == "latents":
        return response
    per_item = math.prod(spec.output.shape) * (4 if output == "float32" else 1)
    estimate = len(z) * (per_item + 4 * spec.latent_dim)
    if estimate > limits.max_message_bytes:
        raise InvalidArgument(
            f"the response would be about {estimate >> 20} MiB, over the "
            f"{limits.max_message_bytes >> 20} MiB message limit; ask for fewer items or "
            "output UINT8/PNG", field="output")
    images = await lease.backend.decode(z, labels)
    if output == "png":
        response.png.extend(await off_loop(to_png, images, spec.output.range))
    elif output == "uint8":
        to_tensor(to_uint8(images, spec.output.range), out=response.images)
    else:
        to_tensor(images, out=response.images)
    return response


async def off_loop(fn: Callable[..., T], *args: Any) -> T:
    """Run CPU-heavy encoding (PNG) in a worker thread so the event loop keeps serving."""
    return await asyncio.to_thread(fn, *args)


def model_info(lease: Lease, aliases: list[str]) -> pb.ModelInfo:
    """ModelInfo of the leased version."""
    bundle, spec = lease.bundle, lease.bundle.spec
    return pb.ModelInfo(
        model=resolved(lease),
        latent_dim=spec.latent_dim,
        prior=spec.prior,
        output_shape=spec.output.shape,
        output_min=spec.output.range[0],
        output_max=spec.output.range[1],
        has_encoder=spec.encoder is not None,
        num_classes=spec.num_classes,
        class_names=spec.condition.labels if spec.condition else [],
        directions=[
            pb.DirectionInfo(name=d.name, method=d.spec.method, unit=d.spec.unit,
                             factor=d.spec.factor or "", sigma=d.sigma)
            for d in bundle.directions.values()
        ],
        max_batch_size=spec.max_batch_size,
        metrics=spec.metrics,
        aliases=aliases,
        description=spec.description,
    )

