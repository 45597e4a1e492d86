"""The OpenAPI 3.1 document of the HTTP port, derived from the proto descriptors.

Every GeneratorService method becomes `POST /v1/<method>` (and its Connect path), its request
and reply messages JSON schemas by the proto3 JSON mapping; descriptions are the comments of
`generator.proto` (shipped beside the stubs). The OIP `/v2` routes are described by hand once.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from typing import Any

from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor

from latentserve.service.http.api import kebab
from latentserve.service.oip.infer import server_version
from latentserve.v1 import generator_pb2 as pb

_SCALARS: dict[int, dict[str, Any]] = {
    FieldDescriptor.TYPE_DOUBLE: {"type": "number"},
    FieldDescriptor.TYPE_FLOAT: {"type": "number"},
    FieldDescriptor.TYPE_INT64: {"type": ["integer", "string"], "format": "int64"},
    FieldDescriptor.TYPE_UINT64: {"type": ["integer", "string"], "format": "uint64"},
    FieldDescriptor.TYPE_INT32: {"type": "integer", "format": "int32"},
    FieldDescriptor.TYPE_UINT32: {"type": "integer", "format": "uint32"},
    FieldDescriptor.TYPE_SINT32: {"type": "integer", "format": "int32"},
    FieldDescriptor.TYPE_SINT64: {"type": ["integer", "string"], "format": "int64"},
    FieldDescriptor.TYPE_FIXED32: {"type": "integer"},
    FieldDescriptor.TYPE_FIXED64: {"type": ["integer", "string"]},
    FieldDescriptor.TYPE_BOOL: {"type": "boolean"},
    FieldDescriptor.TYPE_STRING: {"type": "string"},
    FieldDescriptor.TYPE_BYTES: {"type": "string", "contentEncoding": "base64"},
}
_DECLARATION = re.compile(r"^\s*(?:rpc|message|enum)\s+(\w+)|^\s*(?:optional |repeated )?"
                          r"[\w.<>, ]+\s+(\w+)\s*=\s*\d+;")


@cache
def proto_comments() -> dict[str, str]:
    """Comment text above each rpc, message, enum and field of generator.proto, by name
    (`Message` and `Message.field`)."""
    try:
        text = resources.files("latentserve.v1").joinpath("generator.proto").read_text()
    except (FileNotFoundError, ModuleNotFoundError):
        return {}
    found: dict[str, str] = {}
    pending: list[str] = []
    scope: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("//"):
            pending.append(stripped[2:].strip())
            continue
        match = _DECLARATION.match(line)
        if match and match.group(1):
            found[match.group(1)] = " ".join(pending)
            if "{" in line and not line.strip().startswith("rpc"):
                scope.append(match.group(1))
        elif match and match.group(2) and scope:
            found[f"{scope[-1]}.{match.group(2)}"] = " ".join(pending)
        elif stripped.startswith("}") and scope:
            scope.pop()
        pending = []
    return found


def _enum_schema(enum: EnumDescriptor) -> dict[str, Any]:
    return {"type": "string", "enum": [v.name for v in enum.values],
            "description": proto_comments().get(enum.name, "")}


def _field_schema(field: FieldDescriptor, refs: dict[str, Descriptor]) -> dict[str, Any]:
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        value = field.message_type.fields_by_name["value"]
        return {"type": "object", "additionalProperties": _single(value, refs)}
    schema = _single(field, refs)
    if field.is_repeated:
        schema = {"type": "array", "items": schema}
    return schema


def _single(field: FieldDescriptor, refs: dict[str, Descriptor]) -> dict[str, Any]:
    if field.message_type is not None:
        refs[field.message_type.full_name] = field.message_type
        return {"$ref": f"#/components/schemas/{field.message_type.full_name}"}
    if field.enum_type is not None:
        refs[field.enum_type.full_name] = field.enum_type  # type: ignore[assignment]
        return {"$ref": f"#/components/schemas/{field.enum_type.full_name}"}
    return dict(_SCALARS.get(field.type, {}))


def message_schema(message: Descriptor, refs: dict[str, Descriptor]) -> dict[str, Any]:
    """The JSON schema of one message (lowerCamelCase property names)."""
    comments = proto_comments()
    properties = {}
    for field in message.fields:
        schema = _field_schema(field, refs)
        note = comments.get(f"{message.name}.{field.name}", "")
        if field.containing_oneof is not None and not field.containing_oneof.name.startswith("_"):
            note = f"{note} (one of `{field.containing_oneof.name}`)".strip()
        if note:
            schema["description"] = note
        properties[field.json_name] = schema
    return {"type": "object", "description": comments.get(message.name, ""),
            "properties": properties, "additionalProperties": False}


def _error_response(text: str) -> dict[str, Any]:
    return {"description": text,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


_ERRORS = {"400": _error_response("a request field is wrong (field_violations name it)"),
           "401": _error_response("missing or wrong bearer token"),
           "404": _error_response("unknown model, version, alias or direction"),
           "412": _error_response("the operation does not apply to this model"),
           "413": _error_response("the body is over the size limit"),
           "429": _error_response("the service is full; retry"),
           "503": _error_response("not ready or shutting down; retry")}
_ERROR_SCHEMA = {"type": "object", "properties": {
    "code": {"type": "string", "description": "e.g. invalid_argument (Connect's names)"},
    "status": {"type": "integer"}, "message": {"type": "string"},
    "error": {"type": "string", "description": "the message again (OIP's error field)"},
    "field_violations": {"type": "array", "items": {"type": "object", "properties": {
        "field": {"type": "string"}, "description": {"type": "string"}}}}}}


def _oip_paths() -> dict[str, Any]:
    tag = ["Open Inference Protocol v2"]
    model = "/v2/models/{model}"
    name = {"name": "model", "in": "path", "required": True, "schema": {"type": "string"},
            "description": "`<generator>` (decode), `<generator>.sample` or `<generator>.edit`"}

    def get(summary: str) -> dict[str, Any]:
        return {"get": {"tags": tag, "summary": summary,
                        "parameters": [name] if "{model}" in summary else [],
                        "responses": {"200": {"description": "OK"}, **_ERRORS}}}

    paths = {"/v2/health/live": get("Server live"), "/v2/health/ready": get("Server ready"),
             "/v2": get("Server metadata")}
    for path, summary in ((model, "Model metadata"), (f"{model}/ready", "Model ready")):
        paths[path] = {"get": {"tags": tag, "summary": summary, "parameters": [name],
                               "responses": {"200": {"description": "OK"}, **_ERRORS}}}
    paths[f"{model}/infer"] = {"post": {
        "tags": tag, "summary": "Infer", "parameters": [name],
        "requestBody": {"content": {"application/json": {"schema": {"type": "object"},
                                                         "example": {"inputs": [{
                                                             "name": "latent", "datatype": "FP32",
                                                             "shape": [1, 10],
                                                             "data": [0.0] * 10}]}}}},
        "responses": {"200": {"description": "outputs (JSON, or binary with "
                                             "Inference-Header-Content-Length)"}, **_ERRORS}}}
    return paths


@cache
def document() -> dict[str, Any]:
    """The whole OpenAPI document."""
    service = pb.DESCRIPTOR.services_by_name["GeneratorService"]
    comments = proto_comments()
    refs: dict[str, Any] = {}
    paths: dict[str, Any] = {}
    for method in service.methods:
        if method.client_streaming:
            continue
        refs[method.input_type.full_name] = method.input_type
        refs[method.output_type.full_name] = method.output_type
        ref = {"$ref": f"#/components/schemas/{method.output_type.full_name}"}
        if method.server_streaming:
            content = {"text/event-stream": {"schema": ref},
                       "application/x-ndjson": {"schema": ref}}
        else:
            content = {"application/json": {"schema": ref}}
            if method.output_type.name == "GenerateResponse":
                content |= {"image/png": {"schema": {"type": "string", "format": "binary"}},
                            "application/x-npy": {"schema": {"type": "string",
                                                             "format": "binary"}}}
        operation = {
            "tags": ["GeneratorService"], "operationId": method.name,
            "summary": method.name, "description": comments.get(method.name, ""),
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": {"$ref": f"#/components/schemas/{method.input_type.full_name}"}}}},
            "responses": {"200": {"description": "OK", "content": content}, **_ERRORS},
        }
        paths[f"/v1/{kebab(method.name)}"] = {"post": operation}
    paths |= _oip_paths()
    schemas: dict[str, Any] = {"Error": _ERROR_SCHEMA}
    while len(schemas) - 1 < len(refs):
        for full_name, descriptor in list(refs.items()):
            if full_name in schemas:
                continue
            schemas[full_name] = (_enum_schema(descriptor) if isinstance(descriptor,
                                                                         EnumDescriptor)
                                  else message_schema(descriptor, refs))
    return {
        "openapi": "3.1.0",
        "info": {"title": "latentserve HTTP API", "version": server_version(),
                 "description": "Every latentserve.v1.GeneratorService RPC as JSON (the proto3 "
                 "JSON mapping; also at POST /latentserve.v1.GeneratorService/<Method>, the "
                 "Connect protocol), and the Open Inference Protocol v2 under /v2."},
        "paths": paths,
        "components": {"schemas": schemas,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{}, {"bearer": []}],
    }
