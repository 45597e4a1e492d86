"""The latentserve.v1.GeneratorService implementation: requests → domain → responses.

Each RPC checks its request (`requests`), records what it serves (`_admit`), builds latents and
runs the backend (`generation`), and builds its reply (`responses`). Every generating RPC
shares one decode path, `_respond`. A request the response cache holds (`response_cache`: same
request, same serving version) is answered from it once its version is leased (`_answer`).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any, TypeVar

from latentserve.core import latent_ops
from latentserve.core.arrays import F32, I64
from latentserve.core.errors import FailedPrecondition, InvalidArgument
from latentserve.registry.bundle.feeds import NoiseChoice
from latentserve.registry.bundle.spec import BundleSpec
from latentserve.service import generation, projection_rpc, responses
from latentserve.service import layer_requests as lr
from latentserve.service import requests as rq
from latentserve.service.canonical import canonical_latents
from latentserve.service.grpc_errors import Admission, Outcome, rpc, rpc_stream
from latentserve.service.metrics import ServiceMetrics
from latentserve.service.models.lease import Lease
from latentserve.service.models.manager import ModelManager
from latentserve.service.response_cache import ResponseCache
from latentserve.service.settings import Settings
from latentserve.service.tracing import span
from latentserve.v1 import generator_pb2 as pb
from latentserve.v1 import generator_pb2_grpc as pb_grpc

Reply = TypeVar("Reply", pb.GenerateResponse, pb.EncodeResponse)
CachedRequest = (pb.SampleRequest | pb.InterpolateRequest | pb.EditRequest | pb.DecodeRequest
                 | pb.EncodeRequest | pb.StyleMixRequest)
"""The requests whose responses the response cache may answer."""


class GeneratorServicer(pb_grpc.GeneratorServiceServicer):
    """Serves every RPC of latentserve.v1.GeneratorService."""

    def __init__(self, settings: Settings, manager: ModelManager, metrics: ServiceMetrics,
                 cache: ResponseCache) -> None:
        self.manager = manager
        self.metrics = metrics
        self.cache = cache
        self.limits = rq.Limits.from_settings(settings)
        self.default_deadline_s = settings.default_deadline_s
        self.access_log = settings.access_log
        self.admission = Admission()

    # ------------------------------------------------------------------ catalogue
    @rpc("ListModels")
    async def ListModels(self, request: pb.ListModelsRequest, context: Any,
                         outcome: Outcome) -> pb.ListModelsResponse:
        return responses.list_models(await self.manager.list_models())

    @rpc("GetModel")
    async def GetModel(self, request: pb.GetModelRequest, context: Any,
                       outcome: Outcome) -> pb.ModelInfo:
        async with self.manager.lease(**rq.model_ref(request.model)) as lease:
            self._admit(lease, outcome)
            aliases = self.manager.aliases_of(lease.served.name, lease.served.version)
            return responses.model_info(lease, aliases)

    # ------------------------------------------------------------------ generation
    @rpc("Sample")
    async def Sample(self, request: pb.SampleRequest, context: Any,
                     outcome: Outcome) -> pb.GenerateResponse:
        with span("validation"):
            rq.check_sizes(request, self.limits.max_items)
            n = rq.check_count(request.n, "n", self.limits.max_items)
            psi = rq.truncation_psi(request, "truncation_psi")
            output = rq.output_format(request.output)

        async def compute(lease: Lease) -> pb.GenerateResponse:
            spec = self._admit(lease, outcome, n)
            with span("validation"):
                labels = rq.class_labels(request.class_labels, spec, rows=n,
                                         field="class_labels")
                cutoff = rq.truncation_cutoff(request, spec, "truncation_cutoff")
                noise = lr.noise_choice(request, spec, default_seed=request.seed)
                rq.check_response_size(n, spec, output, self.limits.max_message_bytes)
            z = await generation.sample(lease, request.seed, n, psi, cutoff)
            if psi is not None or spec.mapping is not None or not spec.prior.standard:
                # standard normals are finite; only ψ, a mapping or the prior can push them out
                z = generation.finite(z, "truncation_psi")
            return await self._respond(lease, z, labels, output, source="truncation_psi",
                                       noise=noise)

        return await self._answer("Sample", request, outcome, pb.GenerateResponse, compute)

    @rpc("Interpolate")
    async def Interpolate(self, request: pb.InterpolateRequest, context: Any,
                          outcome: Outcome) -> pb.GenerateResponse:
        with span("validation"):
            rq.check_sizes(request, self.limits.max_frames)

        async def compute(lease: Lease) -> pb.GenerateResponse:
            z, labels, output = await self._path(request, lease, outcome)
            noise = lr.noise_choice(request, lease.bundle.spec)
            return await self._respond(lease, z, labels, output, source="keyframes",
                                       noise=noise)

        return await self._answer("Interpolate", request, outcome, pb.GenerateResponse, compute)

    @rpc_stream("StreamInterpolate")
    async def StreamInterpolate(self, request: pb.InterpolateRequest, context: Any,
                                outcome: Outcome) -> AsyncGenerator[pb.GenerateResponse, None]:
        with span("validation"):
            rq.check_sizes(request, self.limits.max_frames)
        async with self.manager.lease(**rq.model_ref(request.model)) as lease:
            z, labels, output = await self._path(request, lease, outcome, stream=True)
            noise = lr.noise_choice(request, lease.bundle.spec)
            step = lease.bundle.spec.max_batch_size
            for lo in range(0, len(z), step):
                part = None if labels is None else labels[lo:lo + step]
                chunk = await self._respond(lease, z[lo:lo + step], part, output,
                                            source="keyframes", noise=noise, first_item=lo)
                chunk.offset = lo
                yield chunk

    @rpc("Edit")
    async def Edit(self, request: pb.EditRequest, context: Any,
                   outcome: Outcome) -> pb.GenerateResponse:
        with span("validation"):
            rq.check_sizes(request, self.limits.max_items)
            strengths = rq.strengths(request.strengths)
            output = rq.output_format(request.output)

        async def compute(lease: Lease) -> pb.GenerateResponse:
            spec = lease.bundle.spec
            source = rq.keyframes(request.base, "base", spec, self.limits.max_items)
            count = rq.keyframe_count(source)
            rows = count * len(strengths)
            self._admit(lease, outcome, rows)
            rq.check_count(rows, "items (rows produced)", self.limits.max_items)
            rq.check_response_size(rows, spec, output, self.limits.max_message_bytes)
            choice = rq.edit_direction(request, spec)
            direction, sigma = generation.direction(lease.bundle, choice)
            found = lease.bundle.directions.get(choice.name)
            layers = lr.layer_range(request, "layers", spec,
                                    default=found.spec.layers if found else None)
            labels = rq.class_labels(request.class_labels, spec, rows=rows, field="class_labels",
                                     per="base", groups=count)
            noise = lr.noise_choice(request, spec)
            bases = generation.finite(await generation.keyframes(lease, source),
                                      rq.source_field(request.base, "base"))
            z = generation.finite(generation.edit(bases, direction, strengths, sigma,
                                                  num_ws=spec.num_ws, layers=layers),
                                  "strengths")
            return await self._respond(lease, z, labels, output, source="strengths",
                                       noise=noise)

        return await self._answer("Edit", request, outcome, pb.GenerateResponse, compute)

    @rpc("Decode")
    async def Decode(self, request: pb.DecodeRequest, context: Any,
                     outcome: Outcome) -> pb.GenerateResponse:
        with span("validation"):
            rq.check_sizes(request, self.limits.max_items)
            output = rq.output_format(request.output)

        async def compute(lease: Lease) -> pb.GenerateResponse:
            spec = lease.bundle.spec
            with span("validation"):
                z = rq.latents(request.latents, "latents", spec, self.limits.max_items)
                self._admit(lease, outcome, len(z))
                labels = rq.class_labels(request.class_labels, spec, rows=len(z),
                                         field="class_labels")
                noise = lr.noise_choice(request, spec)
            return await self._respond(lease, z, labels, output, noise=noise)

        return await self._answer("Decode", request, outcome, pb.GenerateResponse, compute)

    @rpc("StyleMix")
    async def StyleMix(self, request: pb.StyleMixRequest, context: Any,
                       outcome: Outcome) -> pb.GenerateResponse:
        with span("validation"):
            rq.check_sizes(request, self.limits.max_items)

        async def compute(lease: Lease) -> pb.GenerateResponse:
            spec = lease.bundle.spec
            with span("validation"):
                mix = lr.style_mix(request, spec, self.limits.max_items)
                self._admit(lease, outcome, mix.items)
                labels = rq.class_labels(request.class_labels, spec, rows=mix.items,
                                         field="class_labels")
                rq.check_response_size(mix.items, spec, mix.output,
                                       self.limits.max_message_bytes)
            sources = generation.finite(
                await generation.seed_rows(lease, mix.rows + mix.cols, mix.psi, mix.cutoff),
                "truncation_psi")
            rows, cols = sources[:len(mix.rows)], sources[len(mix.rows):]
            z = generation.style_mix(rows, cols, spec.num_ws, mix.layers, mix.include_sources)
            return await self._respond(lease, z, labels, mix.output, source="truncation_psi",
                                       noise=mix.noise)

        return await self._answer("StyleMix", request, outcome, pb.GenerateResponse, compute)

    @rpc("Encode")
    async def Encode(self, request: pb.EncodeRequest, context: Any,
                     outcome: Outcome) -> pb.EncodeResponse:
        with span("validation"):
            rq.check_sizes(request, self.limits.max_items)

        async def compute(lease: Lease) -> pb.EncodeResponse:
            spec = lease.bundle.spec
            if spec.encoder is None:
                raise FailedPrecondition(f"{spec.name} has no encoder; Encode is not available")
            with span("validation"):  # PNG headers checked, then decoded
                images = await rq.encode_images(request, spec, self.limits.max_items)
                self._admit(lease, outcome, len(images))
                labels = None
                if spec.encoder.condition_input is not None:
                    labels = rq.class_labels(request.class_labels, spec, rows=len(images),
                                             field="class_labels")
                elif request.class_labels:
                    raise InvalidArgument(f"{spec.name}'s encoder takes no class labels",
                                          field="class_labels")
            field = "png.images" if request.WhichOneof("input") == "png" else "images"
            z = generation.finite_output(await lease.backend.encode(images, labels), field,
                                         "latents")
            return responses.encode_response(lease, canonical_latents(spec, z))

        return await self._answer("Encode", request, outcome, pb.EncodeResponse, compute)

    @rpc_stream("Project")
    async def Project(self, request: pb.ProjectRequest, context: Any,
                      outcome: Outcome) -> AsyncGenerator[pb.ProjectResponse, None]:
        def admit(lease: Lease, rows: int) -> BundleSpec:
            return self._admit(lease, outcome, rows)

        async for message in projection_rpc.project(self.manager, self.limits, request, admit):
            yield message

    # ------------------------------------------------------------------ helpers
    def _admit(self, lease: Lease, outcome: Outcome, rows: int | None = None) -> BundleSpec:
        """Record the serving version and the rows produced on `outcome` (metrics and logs):
        the one place every RPC does."""
        outcome.model, outcome.version = lease.served.name, lease.served.version
        if rows is not None:
            outcome.items = rows
        return lease.bundle.spec

    async def _answer(self, rpc: str, request: CachedRequest, outcome: Outcome,
                      response_type: type[Reply],
                      compute: Callable[[Lease], Awaitable[Reply]]) -> Reply:
        """Lease the version `request.model` names and answer from the response cache, or
        with `compute(lease)`, which is then stored: every cacheable RPC's one opening."""
        async with self.manager.lease(**rq.model_ref(request.model)) as lease:
            cached = self.cache.lookup(rpc, request, lease, outcome, response_type)
            if cached.hit is not None:
                return cached.hit
            return cached.keep(await compute(lease))

    async def _path(self, request: pb.InterpolateRequest, lease: Lease, outcome: Outcome,
                    *, stream: bool = False) -> tuple[F32, I64 | None, rq.Output]:
        """An interpolation request's frames, recorded on `outcome`, with their labels (the
        response size checked first: the whole path, or one chunk of a stream)."""
        spec = lease.bundle.spec
        with span("validation"):
            path = rq.path(request, spec, self.limits.max_frames)
            rows = min(path.frames, spec.max_batch_size) if stream else path.frames
            rq.check_response_size(rows, spec, path.output, self.limits.max_message_bytes)
        self._admit(lease, outcome, path.frames)
        labels = rq.class_labels(request.class_labels, spec, rows=path.frames,
                                 field="class_labels", per="frame")
        source = rq.source_field(request.keyframes, "keyframes")
        keys = generation.finite(await generation.keyframes(lease, path.keyframes), source)
        z = generation.finite(latent_ops.interpolate_path(keys, path.steps, path.method), source)
        return z, labels, path.output

    async def _respond(self, lease: Lease, z: F32, labels: I64 | None,
                       output: rq.Output, *, source: str = "latents",
                       noise: NoiseChoice | None = None,
                       first_item: int = 0) -> pb.GenerateResponse:
        """The one decode path: size check, backend decode, then the response as `output`.

        `source` is the request field the latents came from (named if the images are not
        finite); `noise` feeds the decoder's noise inputs (seeded noise numbers items from
        `first_item`, the chunk's offset in a stream)."""
        if noise is not None and noise.mode == "seeded" and first_item:
            noise = NoiseChoice("seeded", noise.seed, offset=first_item)
        images = await generation.decode(lease, z, labels, output, self.limits.max_message_bytes,
                                         noise)
        if images is not None:
            generation.finite_output(images, source, "images")
        return await responses.generate_response(lease, z, images, output)
