"""Plain ASGI request and response helpers (the HTTP port's own thin layer, no framework).

`Request` reads the method, path, query and headers of an ASGI scope and the body under a byte
limit checked before it is read (Content-Length) and while it is read (chunked bodies), so a
request never holds more than the limit in memory. `send_*` write whole responses; every
response carries the headers the app put on `Request.extra_headers` (CORS, request id).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl

from google.rpc import code_pb2, status_pb2

from latentserve.service.http.errors import HttpError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def too_large(limit: int, what: str = "the request body") -> HttpError:
    """413: a body over the limit (RESOURCE_EXHAUSTED naming the body)."""
    from google.protobuf import any_pb2
    from google.rpc import error_details_pb2

    detail = any_pb2.Any()
    detail.Pack(error_details_pb2.BadRequest(field_violations=[
        error_details_pb2.BadRequest.FieldViolation(
            field="request", description=f"{what} is larger than {limit} bytes")]))
    status = status_pb2.Status(code=code_pb2.RESOURCE_EXHAUSTED,
                               message=f"{what} is larger than the limit of {limit} bytes "
                               "(LATENTSERVE_MAX_MESSAGE_BYTES)", details=[detail])
    return HttpError(status, 413)


class Request:
    """One HTTP request as the handlers see it."""

    __slots__ = ("_receive", "extra_headers", "headers", "method", "path", "query", "scope")

    def __init__(self, scope: Scope, receive: Receive) -> None:
        self.scope = scope
        self._receive = receive
        self.method: str = scope["method"]
        self.path: str = scope["path"]
        self.headers: dict[str, str] = {}
        for key, value in scope["headers"]:
            name = key.decode("latin-1").lower()
            text = value.decode("latin-1")
            self.headers[name] = f"{self.headers[name]}, {text}" if name in self.headers else text
        raw_query = scope.get("query_string", b"").decode("latin-1")
        self.query: dict[str, str] = dict(parse_qsl(raw_query, keep_blank_values=True))
        self.extra_headers: list[tuple[bytes, bytes]] = []

    def header(self, name: str, default: str = "") -> str:
        """A request header (names are case-insensitive; repeated ones joined by ", ")."""
        return self.headers.get(name, default)

    async def body(self, limit: int) -> bytes:
        """The whole body, refused with 413 once it would exceed `limit` bytes."""
        declared = self.headers.get("content-length")
        if declared is not None:
            if not declared.strip().isdigit():
                raise HttpError.invalid("Content-Length is not a number", "Content-Length")
            if int(declared) > limit:
                raise too_large(limit)
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                raise ConnectionAbortedError("the client went away")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise too_large(limit)
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


async def send_start(send: Send, request: Request, status: int, content_type: str,
                     headers: list[tuple[bytes, bytes]] | None = None,
                     length: int | None = None) -> None:
    """Start a response (the body follows with `send_chunk`)."""
    all_headers = [(b"content-type", content_type.encode()), *request.extra_headers,
                   *(headers or [])]
    if length is not None:
        all_headers.append((b"content-length", str(length).encode()))
    await send({"type": "http.response.start", "status": status, "headers": all_headers})


async def send_chunk(send: Send, data: bytes, *, more: bool = True) -> None:
    """One piece of a started response's body."""
    await send({"type": "http.response.body", "body": data, "more_body": more})


async def send_bytes(send: Send, request: Request, status: int, body: bytes,
                     content_type: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    """A whole response."""
    await send_start(send, request, status, content_type, headers, len(body))
    await send_chunk(send, body, more=False)


async def send_json(send: Send, request: Request, value: Any, status: int = 200,
                    headers: list[tuple[bytes, bytes]] | None = None) -> None:
    """A JSON response."""
    body = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
    await send_bytes(send, request, status, body, "application/json", headers)


async def send_error(send: Send, request: Request, error: HttpError) -> None:
    """An error response: the status's HTTP code and JSON body."""
    headers = [(b"www-authenticate", b'Bearer realm="latentserve"')] \
        if error.http_status == 401 else None
    await send_json(send, request, error.body(), error.http_status, headers)
