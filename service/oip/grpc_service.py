"""`inference.GRPCInferenceService` on the gRPC port, over the shared servicer (`OipCore`).

Registered from the service descriptor of the checked-in stubs (like GeneratorService), so
undecodable request bytes reach the handler and answer INVALID_ARGUMENT. Inputs come as
`raw_input_contents` or typed `contents`; outputs always go as `raw_output_contents` (what
tritonclient and the KServe clients read fastest). Errors carry the same google.rpc.Status
(with field violations) as GeneratorService's.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, TypeVar

import grpc
from google.rpc import code_pb2, status_pb2
from grpc_status import rpc_status

from latentserve.core.errors import InvalidArgument, LatentServeError
from latentserve.inference import grpc_predict_v2_pb2 as oip
from latentserve.service.grpc_errors import Undecodable, add_servicer, request_id, rich_status
from latentserve.service.http.calls import CallContext, CallFailed
from latentserve.service.logs import get_logger
from latentserve.service.oip import models, tensors
from latentserve.service.oip.infer import InferCall, OipCore, named

log = get_logger(__name__)
R = TypeVar("R")
SERVICE = oip.DESCRIPTOR.services_by_name["GRPCInferenceService"]


def add_to_server(core: OipCore, server: grpc.aio.Server) -> None:
    """Serve the OIP gRPC service from `core` on `server`."""
    add_servicer(OipGrpcServicer(core), server, SERVICE)


def _parameter(value: oip.InferParameter) -> Any:
    kind = value.WhichOneof("parameter_choice")
    return None if kind is None else getattr(value, kind)


def infer_call(request: oip.ModelInferRequest) -> InferCall:
    """The transport-free form of a ModelInferRequest (tensors checked against their data)."""
    raw = list(request.raw_input_contents)
    if raw and len(raw) != len(request.inputs):
        raise InvalidArgument(f"raw_input_contents has {len(raw)} entries for "
                              f"{len(request.inputs)} inputs", field="raw_input_contents")
    found = []
    for i, given in enumerate(request.inputs):
        field = f"inputs[{given.name[:64] or i}]"
        if raw:
            found.append(tensors.from_raw(given.name, given.datatype, list(given.shape), raw[i],
                                          field))
            continue
        content_field = tensors.CONTENTS_FIELD.get(given.datatype)
        if content_field is None:
            tensors.dtype_of(given.datatype, f"{field}.datatype")
            raise InvalidArgument(f"{field}: {given.datatype} needs raw_input_contents",
                                  field=f"{field}.contents")
        values = getattr(given.contents, content_field)
        found.append(tensors.from_values(given.name, given.datatype, list(given.shape),
                                         list(values), field))
    return InferCall(models.parse(request.model_name, request.model_version), request.id,
                     {k: _parameter(v) for k, v in request.parameters.items()}, found,
                     [o.name for o in request.outputs])


class OipGrpcServicer:
    """Every RPC of inference.GRPCInferenceService."""

    def __init__(self, core: OipCore) -> None:
        self.core = core

    async def ServerLive(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return await self._answer(context, request, self._live())

    async def ServerReady(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return await self._answer(context, request, self._ready())

    async def ServerMetadata(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return await self._answer(context, request, self._server_metadata())

    async def ModelReady(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return await self._answer(context, request, self._model_ready(request))

    async def ModelMetadata(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return await self._answer(context, request, self._model_metadata(request, context))

    async def ModelInfer(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return await self._answer(context, request, self._infer(request, context))

    # ------------------------------------------------------------------ bodies
    async def _live(self) -> oip.ServerLiveResponse:
        return oip.ServerLiveResponse(live=self.core.live())

    async def _ready(self) -> oip.ServerReadyResponse:
        return oip.ServerReadyResponse(ready=self.core.ready())

    async def _server_metadata(self) -> oip.ServerMetadataResponse:
        return oip.ServerMetadataResponse(**self.core.server_metadata())

    async def _model_ready(self, request: oip.ModelReadyRequest) -> oip.ModelReadyResponse:
        model = models.parse(request.name, request.version)
        return oip.ModelReadyResponse(ready=await self.core.model_ready(model))

    async def _model_metadata(self, request: oip.ModelMetadataRequest,
                              context: grpc.aio.ServicerContext) -> oip.ModelMetadataResponse:
        model = models.parse(request.name, request.version)
        meta = await self.core.model_metadata(model, CallContext(context.time_remaining()))
        reply = oip.ModelMetadataResponse(name=meta["name"], versions=meta["versions"],
                                          platform=meta["platform"])
        for key in ("inputs", "outputs"):
            getattr(reply, key).extend(
                oip.ModelMetadataResponse.TensorMetadata(**t) for t in meta[key])
        return reply

    async def _infer(self, request: oip.ModelInferRequest,
                     context: grpc.aio.ServicerContext) -> oip.ModelInferResponse:
        result = await self.core.infer(infer_call(request), CallContext(context.time_remaining()))
        reply = oip.ModelInferResponse(model_name=result.model_name,
                                       model_version=result.model_version, id=result.id)
        for tensor in result.outputs:
            reply.outputs.add(name=tensor.name, datatype=tensor.datatype, shape=tensor.shape)
            reply.raw_output_contents.append(tensor.array.astype("<f4", copy=False).tobytes())
        return reply

    # ------------------------------------------------------------------ errors
    async def _answer(self, context: grpc.aio.ServicerContext, request: Any,
                      body: Awaitable[R]) -> R:
        """`body`'s reply, or the call aborted with the status of what went wrong."""
        status: status_pb2.Status
        try:
            if isinstance(request, Undecodable):
                raise request.as_error()
            return await body
        except CallFailed as failed:
            status = failed.status
        except LatentServeError as exc:
            status = rich_status(exc)
        except Exception as exc:
            rid = request_id()
            log.exception("internal error", error_type=type(exc).__name__, error=str(exc),
                          request_id=rid)
            status = status_pb2.Status(code=code_pb2.INTERNAL, message=f"internal error "
                                       f"(request id {rid}); see server logs")
        finally:
            if hasattr(body, "close"):
                body.close()
        await context.abort_with_status(rpc_status.to_status(named(status)))
        raise AssertionError("unreachable: abort raises")
