"""The Project RPC: checks a ProjectRequest, runs a `Projection`, streams ProjectResponses.

Client mistakes are INVALID_ARGUMENT naming the field (images/png, class_labels, steps,
population, timeout_s, progress_every, output), checked before any decode; an encoder start on
a model without encoder is FAILED_PRECONDITION. Example (the servicer's handler)::

    async for message in project(manager, limits, request, admit):
        yield message
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Callable
from functools import partial

import numpy as np

from latentserve.core.arrays import F32, I64
from latentserve.core.errors import FailedPrecondition, InvalidArgument
from latentserve.core.pixels import to_uint8
from latentserve.core.tensors import to_tensor
from latentserve.registry.bundle.spec import BundleSpec
from latentserve.service import projection_loss
from latentserve.service import requests as rq
from latentserve.service.images import from_png, to_png
from latentserve.service.models.lease import Lease
from latentserve.service.models.manager import ModelManager
from latentserve.service.projection import Init, Plan, Projection, Snapshot
from latentserve.service.responses import latent_space, resolved
from latentserve.v1 import generator_pb2 as pb

MAX_IMAGES = 16
"""Images one Project request may hold (each runs its own search)."""
MAX_STEPS = 2000
MAX_POPULATION = 1024
MAX_TIMEOUT_S = 3600.0
DEFAULT_STEPS = 60

_INITS: dict[int, Init] = {
    pb.PROJECT_INIT_UNSPECIFIED: "auto",
    pb.PROJECT_INIT_ENCODER: "encoder",
    pb.PROJECT_INIT_PRIOR: "prior",
}
_STOPS = {"": pb.PROJECT_STOP_UNSPECIFIED, "steps": pb.PROJECT_STOP_STEPS,
          "timeout": pb.PROJECT_STOP_TIMEOUT, "converged": pb.PROJECT_STOP_CONVERGED}

Admit = Callable[[Lease, int], BundleSpec]
"""Records the serving version and the rows on the RPC's outcome (the servicer's `_admit`)."""


def plan(request: pb.ProjectRequest) -> Plan:
    """The search plan of a request (model-independent checks)."""
    steps = request.steps or DEFAULT_STEPS
    if steps > MAX_STEPS:
        raise InvalidArgument(f"steps must be at most {MAX_STEPS}, got {steps}", field="steps")
    if request.population > MAX_POPULATION or request.population == 1:
        raise InvalidArgument(f"population must be 0 (default) or in [2, {MAX_POPULATION}], "
                              f"got {request.population}", field="population")
    timeout = request.timeout_s
    if not math.isfinite(timeout) or timeout < 0 or timeout > MAX_TIMEOUT_S:
        raise InvalidArgument(f"timeout_s must be in [0, {MAX_TIMEOUT_S:g}] (0: none), got "
                              f"{timeout}", field="timeout_s")
    if request.progress_every > MAX_STEPS:
        raise InvalidArgument(f"progress_every must be at most {MAX_STEPS}",
                              field="progress_every")
    init = _INITS.get(request.init)
    if init is None:
        raise InvalidArgument(f"init {request.init} is not a known ProjectInit", field="init")
    return Plan(steps=steps, population=request.population, timeout_s=timeout or None,
                progress_every=request.progress_every or 1,
                include_reconstruction=request.include_reconstruction, seed=request.seed,
                init=init)


async def targets(request: pb.ProjectRequest, spec: BundleSpec) -> F32:
    """The target images, float32 [n, C, H, W] in the model's range (n ≤ MAX_IMAGES)."""
    which = request.WhichOneof("input")
    if which == "images":
        images = rq.tensor(request.images, "images", dtype=np.float32,
                           shape=(None, *spec.output.shape), finite=True)
        rq.check_count(len(images), "images.shape[0]", MAX_IMAGES)
        return np.asarray(images, dtype=np.float32)
    if which == "png":
        rq.check_count(len(request.png.images), "png.images", MAX_IMAGES)
        return await asyncio.to_thread(partial(from_png, field="png.images"),
                                       request.png.images, spec.output.shape, spec.output.range)
    raise InvalidArgument("Project needs images or png", field="input")


def labels(request: pb.ProjectRequest, spec: BundleSpec, rows: int) -> I64 | None:
    """The given labels (one for all, or one per image), or None: chosen by the search."""
    if spec.condition is not None and not request.class_labels:
        return None
    return rq.class_labels(request.class_labels, spec, rows=rows, field="class_labels")


async def project(manager: ModelManager, limits: rq.Limits, request: pb.ProjectRequest,
                  admit: Admit) -> AsyncIterator[pb.ProjectResponse]:
    """Check `request`, run its projection and stream its messages (the last is done)."""
    rq.check_sizes(request, MAX_IMAGES)
    search = plan(request)
    output = rq.output_format(request.output)
    async with manager.lease(**rq.model_ref(request.model)) as lease:
        spec = lease.bundle.spec
        if search.init == "encoder" and spec.encoder is None:
            raise FailedPrecondition(f"{spec.name} has no encoder; use init PRIOR or "
                                     "UNSPECIFIED")
        images = await targets(request, spec)
        admit(lease, len(images))
        given = labels(request, spec, len(images))
        if output != "latents":
            rq.check_response_size(len(images), spec, output, limits.max_message_bytes)
        async for snap in Projection(lease, images, given, search).run():
            yield await message(lease, snap, output, images)


async def message(lease: Lease, snap: Snapshot, output: rq.Output,
                  targets: F32) -> pb.ProjectResponse:
    """The ProjectResponse of one snapshot."""
    spec = lease.bundle.spec
    reply = pb.ProjectResponse(
        model=resolved(lease), step=snap.step, steps=snap.steps, decodes=snap.decodes,
        loss=snap.loss.tolist(), initial_loss=snap.initial_loss.tolist(), done=snap.done,
        latents=to_tensor(snap.latents), latent_space=latent_space(spec),
        class_labels=[] if snap.labels is None else snap.labels.tolist(),
        stop=_STOPS[snap.stop])
    images = snap.images
    if images is None:
        return reply
    if snap.done:
        got = projection_loss.unit_range(images, spec.output.range)
        want = projection_loss.unit_range(targets, spec.output.range)
        reply.psnr.extend(projection_loss.psnr(got, want).tolist())
        reply.ssim.extend(projection_loss.ssim(got, want).tolist())
    if output == "latents":
        return reply
    value_range = spec.output.range
    reply.output_range.CopyFrom(pb.ValueRange(min=value_range[0], max=value_range[1]))
    if output == "png":
        reply.png.extend(await asyncio.to_thread(to_png, images, value_range))
    elif output == "uint8":
        to_tensor(to_uint8(images, value_range), out=reply.images)
    else:
        to_tensor(images, out=reply.images)
    return reply
