"""The Open Inference Protocol's REST API under `/v2` on the HTTP port.

    GET  /v2/health/live                     200 {"live": true}
    GET  /v2/health/ready                    200 {"ready": true}, else 400
    GET  /v2                                 server metadata
    GET  /v2/models/<model>[/versions/<v>]   model metadata
    GET  /v2/models/<model>[/versions/<v>]/ready   200, else 400
    POST /v2/models/<model>[/versions/<v>]/infer   inference

Infer bodies are JSON (`data` flat or nested row-major) or use the binary tensor data extension
(`Inference-Header-Content-Length: <JSON bytes>`, then the tensors' bytes back to back, each
input marked `"parameters": {"binary_data_size": n}`), as tritonclient.http sends them.
Outputs are JSON lists unless the request asks for binary (`binary_data_output`, or
`binary_data` on an output), then binary the same way. Errors are JSON: `{"error": message}`
plus the fields of every HTTP error of the service (code, status, field_violations).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from latentserve.core.errors import InvalidArgument, LatentServeError
from latentserve.service.grpc_errors import rich_status
from latentserve.service.http import api, wire
from latentserve.service.http.calls import CallContext, CallFailed
from latentserve.service.http.errors import HttpError
from latentserve.service.oip import models, tensors
from latentserve.service.oip.infer import InferCall, InferReply, OipCore, named

Handler = Callable[[wire.Request, wire.Send], Awaitable[None]]
HEADER_LENGTH = "inference-header-content-length"


class OipRest:
    """The `/v2` routes over an OipCore."""

    def __init__(self, core: OipCore, max_body_bytes: int) -> None:
        self.core = core
        self.max_body_bytes = max_body_bytes

    def fixed_routes(self) -> dict[str, tuple[str, Handler]]:
        """Exact paths → (metrics label, handler)."""
        return {"/v2/health/live": ("oip_live", self._live),
                "/v2/health/ready": ("oip_ready", self._ready),
                "/v2": ("oip_server_metadata", self._server_metadata)}

    def match(self, request: wire.Request) -> tuple[str, Handler] | None:
        """The handler of a `/v2/models/...` path."""
        parts = request.path[len("/v2/models/"):].split("/")
        version = ""
        if len(parts) >= 3 and parts[1] == "versions":
            version = parts[2]
            parts = [parts[0], *parts[3:]]
        if not parts[0] or len(parts) > 2:
            return None
        name, action = parts[0], (parts[1] if len(parts) == 2 else "")

        async def run(request: wire.Request, send: wire.Send) -> None:
            try:
                await self._model_route(request, send, name, version, action)
            except LatentServeError as exc:
                raise HttpError(named(rich_status(exc))) from None
            except CallFailed as failed:
                raise HttpError(named(failed.status)) from None

        labels = {"": "oip_model_metadata", "ready": "oip_model_ready", "infer": "oip_infer"}
        return (labels[action], run) if action in labels else None

    # ------------------------------------------------------------------ handlers
    async def _live(self, request: wire.Request, send: wire.Send) -> None:
        _get(request)
        await wire.send_json(send, request, {"live": self.core.live()})

    async def _ready(self, request: wire.Request, send: wire.Send) -> None:
        _get(request)
        ready = self.core.ready()
        await wire.send_json(send, request, {"ready": ready}, 200 if ready else 400)

    async def _server_metadata(self, request: wire.Request, send: wire.Send) -> None:
        _get(request)
        await wire.send_json(send, request, self.core.server_metadata())

    async def _model_route(self, request: wire.Request, send: wire.Send, name: str,
                           version: str, action: str) -> None:
        model = models.parse(name, version)
        context = CallContext(api.timeout_s(request))
        if action == "infer":
            if request.method != "POST":
                raise HttpError.invalid("infer takes POST", "method", 405)
            call, binary = self._infer_call(await request.body(self.max_body_bytes), request,
                                            model)
            reply = await self.core.infer(call, context)
            await self._send_reply(send, request, reply, call, binary)
            return
        _get(request)
        if action == "ready":
            ready = await self.core.model_ready(model)
            await wire.send_json(send, request, {"name": model.name, "ready": ready},
                                 200 if ready else 400)
            return
        await wire.send_json(send, request, await self.core.model_metadata(model, context))

    # ------------------------------------------------------------------ infer wire format
    def _infer_call(self, body: bytes, request: wire.Request, model: models.OipModel
                    ) -> tuple[InferCall, dict[str, bool | None]]:
        """The call a body holds, and which outputs it wants as binary data."""
        header_text = request.header(HEADER_LENGTH)
        binary = b""
        if header_text:
            if not header_text.isdigit() or int(header_text) > len(body):
                raise InvalidArgument("Inference-Header-Content-Length must be the byte length "
                                      "of the JSON part of the body",
                                      field="Inference-Header-Content-Length")
            cut = int(header_text)
            body, binary = body[:cut], body[cut:]
        try:
            document = json.loads(body) if body.strip() else {}
        except (ValueError, RecursionError) as exc:
            raise InvalidArgument(f"the body is not valid JSON ({str(exc)[:200]})",
                                  field="request") from None
        if not isinstance(document, dict):
            raise InvalidArgument("the body must be a JSON object", field="request")
        parameters = _scalars(document.get("parameters", {}), "parameters")
        inputs = document.get("inputs", [])
        if not isinstance(inputs, list):
            raise InvalidArgument("inputs must be a list", field="inputs")
        found, offset = [], 0
        for i, given in enumerate(inputs):
            tensor, offset = _input(given, i, binary, offset)
            found.append(tensor)
        if offset != len(binary):
            raise InvalidArgument(f"the body has {len(binary) - offset} bytes of binary data "
                                  "no input claims", field="inputs")
        wanted = _outputs(document.get("outputs", []))
        call = InferCall(model, _text(document.get("id", ""), "id"), parameters, found,
                         [name for name, _ in wanted])
        return call, dict(wanted)

    async def _send_reply(self, send: wire.Send, request: wire.Request, reply: InferReply,
                          call: InferCall, binary: dict[str, bool | None]) -> None:
        every = call.parameters.get("binary_data_output") is True
        head: dict[str, Any] = {"model_name": reply.model_name,
                                "model_version": reply.model_version, "outputs": []}
        if reply.id:
            head["id"] = reply.id
        blobs = []
        for tensor in reply.outputs:
            entry: dict[str, Any] = {"name": tensor.name, "datatype": tensor.datatype,
                                     "shape": tensor.shape}
            chosen = binary.get(tensor.name)
            if chosen is True or (chosen is None and every):
                data = tensor.array.astype("<f4", copy=False).tobytes()
                entry["parameters"] = {"binary_data_size": len(data)}
                blobs.append(data)
            else:
                entry["data"] = tensor.array.ravel().tolist()
            head["outputs"].append(entry)
        text = json.dumps(head, separators=(",", ":")).encode()
        if not blobs:
            await wire.send_bytes(send, request, 200, text, "application/json")
            return
        await wire.send_bytes(send, request, 200, text + b"".join(blobs),
                              "application/octet-stream",
                              [(HEADER_LENGTH.encode(), str(len(text)).encode())])


def _get(request: wire.Request) -> None:
    if request.method != "GET":
        raise HttpError.invalid(f"{request.path} takes GET", "method", 405)


def _text(value: Any, field: str) -> str:
    if not isinstance(value, str) or len(value) > 256:
        raise InvalidArgument(f"{field} must be a string of at most 256 characters", field=field)
    return value


def _scalars(value: Any, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidArgument(f"{field} must be an object of scalar values", field=field)
    for key, item in value.items():
        if not isinstance(item, bool | int | float | str) or len(key) > 64:
            raise InvalidArgument(f"{field}.{key[:64]} must be a boolean, number or string",
                                  field=f"{field}.{key[:64]}")
    return dict(value)


def _input(given: Any, index: int, binary: bytes, offset: int) -> tuple[tensors.Tensor, int]:
    if not isinstance(given, dict):
        raise InvalidArgument(f"inputs[{index}] must be an object", field=f"inputs[{index}]")
    name = _text(given.get("name", ""), f"inputs[{index}].name")
    field = f"inputs[{name or index}]"
    datatype = _text(given.get("datatype", ""), f"{field}.datatype")
    shape = given.get("shape")
    parameters = _scalars(given.get("parameters", {}), f"{field}.parameters")
    size = parameters.get("binary_data_size")
    if size is not None:
        if isinstance(size, bool) or not isinstance(size, int) or not \
                0 <= size <= len(binary) - offset:
            raise InvalidArgument(f"{field}.parameters.binary_data_size must be the byte size "
                                  "of its data in the body", field=f"{field}.parameters")
        raw = binary[offset:offset + size]
        return tensors.from_raw(name, datatype, shape, raw, field), offset + size
    if "data" not in given:
        raise InvalidArgument(f"{field} has no data", field=f"{field}.data")
    return tensors.from_values(name, datatype, shape, given["data"], field), offset


def _outputs(value: Any) -> list[tuple[str, bool | None]]:
    if not isinstance(value, list):
        raise InvalidArgument("outputs must be a list", field="outputs")
    found: list[tuple[str, bool | None]] = []
    for i, given in enumerate(value):
        if not isinstance(given, dict):
            raise InvalidArgument(f"outputs[{i}] must be an object", field=f"outputs[{i}]")
        name = _text(given.get("name", ""), f"outputs[{i}].name")
        binary = _scalars(given.get("parameters", {}), f"outputs[{name}].parameters").get(
            "binary_data")
        found.append((name, binary if isinstance(binary, bool) else None))
    return found
