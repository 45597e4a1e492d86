"""One OIP inference as a GeneratorService call on the shared servicer, plus health and
metadata: what both OIP transports (gRPC, REST) do, independent of their wire formats.

Failures leave as `CallFailed` carrying a google.rpc.Status (the servicer's own, or one built
from the error tree for OIP-level mistakes), so each transport maps them once. Example::

    core = OipCore(servicer, manager)
    reply = await core.infer(InferCall(models.parse("sprites-vae"), inputs=[latent]),
                             CallContext())
    reply.outputs[0].array        # FP32 [n, C, H, W], as Decode returns it
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import wraps
from typing import Any, ParamSpec, TypeVar

import numpy as np
from google.rpc import error_details_pb2, status_pb2

from latentserve.core.errors import InvalidArgument, LatentServeError
from latentserve.service.grpc_errors import rich_status
from latentserve.service.http.calls import CallContext, CallFailed
from latentserve.service.oip import params
from latentserve.service.oip.models import OipModel, inputs, outputs
from latentserve.service.oip.tensors import Tensor
from latentserve.v1 import generator_pb2 as pb

P = ParamSpec("P")
R = TypeVar("R")
PLATFORM = "latentserve_onnx"
_INT32 = (-(2 ** 31), 2 ** 31 - 1)


@dataclass
class InferCall:
    """An inference request, whatever transport it came by."""

    model: OipModel
    id: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)
    inputs: list[Tensor] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    """Requested output names; empty: all."""


@dataclass
class InferReply:
    """An inference result."""

    model_name: str
    model_version: str
    id: str
    outputs: list[Tensor]


def as_status(call: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Errors of the error tree leave as CallFailed (one exception type for transports)."""

    @wraps(call)
    async def wrapped(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await call(*args, **kwargs)
        except LatentServeError as exc:
            raise CallFailed(rich_status(exc)) from None

    return wrapped


def named(status: status_pb2.Status) -> status_pb2.Status:
    """`status` with its first violated field at the head of the message, for OIP clients,
    which show the message but not the google.rpc details (e.g. tritonclient)."""
    for detail in status.details:
        bad = error_details_pb2.BadRequest()
        if detail.Unpack(bad) and bad.field_violations:
            field = bad.field_violations[0].field
            if not status.message.startswith(field):
                named = status_pb2.Status()
                named.CopyFrom(status)
                named.message = f"{field}: {status.message}"
                return named
    return status


def server_version() -> str:
    """The installed latentserve version."""
    try:
        return importlib.metadata.version("latentserve")
    except importlib.metadata.PackageNotFoundError:
        return "0"


class OipCore:
    """The Open Inference Protocol over a GeneratorServicer."""

    def __init__(self, servicer: Any, manager: Any) -> None:
        self.servicer = servicer
        self.manager = manager

    # ------------------------------------------------------------------ health, metadata
    def live(self) -> bool:
        return True

    def ready(self) -> bool:
        return bool(self.manager.ready) and not self.servicer.admission.draining

    def server_metadata(self) -> dict[str, Any]:
        return {"name": "latentserve", "version": server_version(), "extensions": []}

    @as_status
    async def model_ready(self, model: OipModel) -> bool:
        ref = model.ref()
        name, version, _ = await self.manager.resolve(
            ref.name, version=ref.version, alias=ref.alias)
        return (name, version) in self.manager.loaded_versions() and self.ready()

    @as_status
    async def model_metadata(self, model: OipModel, context: CallContext) -> dict[str, Any]:
        info = await self.servicer.GetModel(pb.GetModelRequest(model=model.ref()), context)
        listing = await self.servicer.ListModels(pb.ListModelsRequest(), context)
        versions = next((list(m.versions) for m in listing.models
                         if m.name == model.generator), [info.model.version])
        return {
            "name": model.name,
            "versions": [str(v) for v in versions],
            "platform": PLATFORM,
            "inputs": [vars(t) for t in inputs(model, info)],
            "outputs": [vars(t) for t in outputs(model, info)],
        }

    # ------------------------------------------------------------------ infer
    @as_status
    async def infer(self, call: InferCall, context: CallContext) -> InferReply:
        ref = call.model.ref()  # an unknown model is NOT_FOUND before any input is judged
        await self.manager.resolve(ref.name, version=ref.version, alias=ref.alias)
        tensors = _by_name(call.inputs)
        wanted = ["image"] if call.model.kind == "decode" else ["image", "latent"]
        for name in call.outputs:
            if name not in wanted:
                raise InvalidArgument(f"{call.model.name} has no output {name[:64]!r} (it "
                                      f"returns {', '.join(wanted)})",
                                      field=f"outputs[{name[:64]}]")
        if call.model.kind == "decode":
            reply = await self._decode(call, tensors, context)
        elif call.model.kind == "sample":
            reply = await self._sample(call, tensors, context)
        else:
            reply = await self._edit(call, tensors, context)
        chosen = call.outputs or wanted
        found: list[Tensor] = []
        for name in chosen:
            source = reply.images if name == "image" else reply.latents
            array = np.frombuffer(source.data, dtype="<f4").reshape([int(d) for d in source.shape])
            found.append(Tensor(name, "FP32", array))
        return InferReply(call.model.name, str(reply.model.version), call.id, found)

    async def _decode(self, call: InferCall, tensors: dict[str, Tensor],
                      context: CallContext) -> pb.GenerateResponse:
        params.check_known(call.parameters, set())
        _only(tensors, {"latent", "class_label"}, call.model)
        if "latent" not in tensors:
            raise InvalidArgument(f"{call.model.name} needs input latent (FP32 [n, D])",
                                  field="inputs[latent]")
        request = pb.DecodeRequest(model=call.model.ref(), latents=_latents(tensors["latent"]),
                                   class_labels=_labels(tensors.get("class_label")),
                                   output=pb.OUTPUT_FORMAT_FLOAT32)
        reply: pb.GenerateResponse = await self.servicer.Decode(request, context)
        return reply

    async def _sample(self, call: InferCall, tensors: dict[str, Tensor],
                      context: CallContext) -> pb.GenerateResponse:
        p = call.parameters
        params.check_known(p, {"seed", "n", "truncation_psi"})
        _only(tensors, {"class_label"}, call.model)
        request = pb.SampleRequest(
            model=call.model.ref(), seed=params.integer(p, "seed", 0, low=0, high=2 ** 64 - 1),
            n=params.integer(p, "n", 1, low=1, high=2 ** 32 - 1),
            class_labels=_labels(tensors.get("class_label")), output=pb.OUTPUT_FORMAT_FLOAT32)
        psi = params.number(p, "truncation_psi")
        if psi is not None:
            request.truncation_psi = psi
        reply: pb.GenerateResponse = await self.servicer.Sample(request, context)
        return reply

    async def _edit(self, call: InferCall, tensors: dict[str, Tensor],
                    context: CallContext) -> pb.GenerateResponse:
        p = call.parameters
        params.check_known(p, {"direction", "strengths", "seeds", "truncation_psi",
                               "conditional_on"})
        _only(tensors, {"latent", "class_label"}, call.model)
        request = pb.EditRequest(model=call.model.ref(),
                                 direction_name=params.text(p, "direction", required=True) or "",
                                 strengths=params.numbers(p, "strengths", required=True),
                                 class_labels=_labels(tensors.get("class_label")),
                                 output=pb.OUTPUT_FORMAT_FLOAT32)
        seeds = params.numbers(p, "seeds", integers=True)
        if ("latent" in tensors) == (seeds is not None):
            raise InvalidArgument(f"{call.model.name} takes its base latents from input latent "
                                  "or from parameter seeds (exactly one)", field="parameters.seeds")
        if seeds is not None:
            request.base.seeds.seeds.extend(int(s) for s in seeds)
            psi = params.number(p, "truncation_psi")
            if psi is not None:
                request.base.seeds.truncation_psi = psi
        else:
            request.base.latents.CopyFrom(_latents(tensors["latent"]))
        held = params.text(p, "conditional_on")
        if held is not None:
            request.conditional_on.extend(name.strip() for name in held.split(","))
        reply: pb.GenerateResponse = await self.servicer.Edit(request, context)
        return reply


def _by_name(tensors: list[Tensor]) -> dict[str, Tensor]:
    found: dict[str, Tensor] = {}
    for tensor in tensors:
        if tensor.name in found:
            raise InvalidArgument(f"input {tensor.name[:64]!r} is given twice",
                                  field=f"inputs[{tensor.name[:64]}]")
        found[tensor.name] = tensor
    return found


def _only(tensors: dict[str, Tensor], allowed: set[str], model: OipModel) -> None:
    for name in tensors:
        if name not in allowed:
            raise InvalidArgument(f"{model.name} has no input {name[:64]!r} (it takes "
                                  f"{', '.join(sorted(allowed))})", field=f"inputs[{name[:64]}]")


def _latents(tensor: Tensor) -> pb.Tensor:
    if tensor.datatype != "FP32":
        raise InvalidArgument(f"input latent must be FP32, got {tensor.datatype}",
                              field="inputs[latent].datatype")
    data = np.ascontiguousarray(tensor.array, dtype="<f4")
    return pb.Tensor(dtype=pb.D_TYPE_FLOAT32, shape=tensor.shape, data=data.tobytes())


def _labels(tensor: Tensor | None) -> list[int]:
    if tensor is None:
        return []
    if tensor.datatype not in ("INT32", "INT64") or tensor.array.ndim != 1:
        raise InvalidArgument("input class_label must be INT32 (or INT64) of shape [n]",
                              field="inputs[class_label]")
    values = tensor.array.astype(np.int64)
    if values.size and (values.min() < _INT32[0] or values.max() > _INT32[1]):
        raise InvalidArgument("class_label values must fit in INT32",
                              field="inputs[class_label]")
    return [int(v) for v in values]
