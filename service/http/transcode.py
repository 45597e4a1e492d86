"""Request bodies to protobuf messages and messages to JSON, by the proto3 JSON mapping.

Bodies are JSON (`application/json`, the default: field names in lowerCamelCase or as in the
proto, enums by name, 64-bit integers as numbers or strings, `bytes` as base64) or binary
protobuf (`application/proto`, `application/x-protobuf`). A body that does not parse is
INVALID_ARGUMENT naming the field it failed at::

    message = parse_body(b'{"n": "x"}', "application/json", pb.SampleRequest)
    # HttpError 400: field_violations [{"field": "n", ...}]
"""

from __future__ import annotations

import json
import re
from typing import Any, TypeVar

from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message

from latentserve.service.http.errors import HttpError

M = TypeVar("M", bound=Message)
PROTO_TYPES = frozenset({"application/proto", "application/x-protobuf", "application/protobuf"})
_FAILED_AT = re.compile(r"Failed to parse (\w+) field")
_NO_FIELD = re.compile(r'has no field named "([^"]+)"')
_MAX_MESSAGE = 400


def is_proto(content_type: str) -> bool:
    """Whether a Content-Type names binary protobuf."""
    return content_type.split(";", 1)[0].strip().lower() in PROTO_TYPES


def parse_error_field(text: str) -> str:
    """The dotted path of the field a json_format.ParseError names ("request" when none)."""
    parts = _FAILED_AT.findall(text)
    missing = _NO_FIELD.search(text)
    if missing is not None:
        parts.append(missing.group(1))
    return ".".join(parts) or "request"


def parse_body(body: bytes, content_type: str, message_type: type[M]) -> M:
    """The request message a body holds (JSON unless the Content-Type names protobuf)."""
    message = message_type()
    if is_proto(content_type):
        try:
            message.ParseFromString(body)
        except (DecodeError, ValueError, RuntimeError) as exc:
            raise HttpError.invalid(f"the body is not a valid binary {message.DESCRIPTOR.name} "
                                    f"({exc})", "request") from None
        return message
    if not body.strip():
        return message
    try:
        value = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise HttpError.invalid(f"the body is not valid JSON ({str(exc)[:_MAX_MESSAGE]})",
                                "request") from None
    return parse_value(value, message)


def parse_value(value: Any, message: M, *, field: str = "") -> M:
    """Fill `message` from decoded JSON (`field`: where it sits in the body, for errors)."""
    if not isinstance(value, dict):
        where = field or "request"
        raise HttpError.invalid(f"{where} must be a JSON object, not {type(value).__name__}",
                                where)
    try:
        json_format.ParseDict(value, message)
    except (json_format.ParseError, RecursionError, ValueError, TypeError) as exc:
        text = str(exc)
        path = parse_error_field(text)
        where = f"{field}.{path}" if field and path != "request" else (field or path)
        raise HttpError.invalid(f"{where}: {text[:_MAX_MESSAGE]}", where) from None
    return message


def to_json(message: Message) -> bytes:
    """A message in the proto3 JSON mapping (compact UTF-8)."""
    return json.dumps(to_dict(message), separators=(",", ":"), ensure_ascii=False).encode()


def to_dict(message: Message) -> dict[str, Any]:
    """A message as a JSON-ready dict (proto3 JSON mapping)."""
    return json_format.MessageToDict(message)
