"""GeneratorService over HTTP: one route per RPC, derived from the service descriptor.

Every method of `latentserve.v1.GeneratorService` (including RPCs added to the proto later:
nothing here names them) is served at two paths::

    POST /latentserve.v1.GeneratorService/Sample     (the Connect protocol's path)
    POST /v1/sample                                  (the same call, shorter; kebab-case)

The body is the request message (JSON by the proto3 JSON mapping, or binary protobuf); the
reply is negotiated by `Accept` (`media`); server-streaming methods answer a stream (`stream`).
`Connect-Timeout-Ms` sets the call's deadline (else the service's default deadline applies).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from google.protobuf.message import Message

from latentserve.service.http import media, stream, wire
from latentserve.service.http.calls import CallContext, CallFailed
from latentserve.service.http.errors import HttpError
from latentserve.service.http.transcode import is_proto, parse_body, to_json

_MAX_TIMEOUT_MS = 10 ** 10


def kebab(name: str) -> str:
    """`StreamInterpolate` → `stream-interpolate`."""
    return re.sub(r"(?<!^)(?=[A-Z])", "-", name).lower()


@dataclass(frozen=True)
class Route:
    """One RPC as an HTTP endpoint."""

    method: MethodDescriptor
    request_type: type[Message]
    reply_type: type[Message]
    call: Any
    """The servicer's bound method: `(request, context) -> reply` or an async iterator."""

    @property
    def streaming(self) -> bool:
        return bool(self.method.server_streaming)


def routes_for(servicer: Any, service: ServiceDescriptor) -> dict[str, Route]:
    """Path → Route for every unary and server-streaming method `servicer` implements."""
    found: dict[str, Route] = {}
    for method in service.methods:
        if method.client_streaming or not hasattr(servicer, method.name):
            continue
        route = Route(method, message_factory.GetMessageClass(method.input_type),
                      message_factory.GetMessageClass(method.output_type),
                      getattr(servicer, method.name))
        found[f"/{service.full_name}/{method.name}"] = route
        found[f"/v1/{kebab(method.name)}"] = route
    return found


def timeout_s(request: wire.Request) -> float | None:
    """The caller's deadline from `Connect-Timeout-Ms` (None when absent)."""
    text = request.header("connect-timeout-ms")
    if not text:
        return None
    if not text.isdigit() or len(text) > 10 or int(text) > _MAX_TIMEOUT_MS:
        raise HttpError.invalid("Connect-Timeout-Ms must be a positive integer of at most 10 "
                                "digits", "Connect-Timeout-Ms")
    return int(text) / 1000.0


async def handle(route: Route, request: wire.Request, send: wire.Send, limit: int) -> None:
    """Serve one call of `route`."""
    if request.method != "POST":
        raise HttpError.invalid(f"{request.path} takes POST", "method", 405)
    content_type = request.header("content-type", media.JSON)
    body = await request.body(limit)
    if route.streaming:
        await _stream(route, request, send, content_type, body)
        return
    message = parse_body(body, content_type, route.request_type)
    offers = media.offers_for(route.reply_type)
    if is_proto(content_type):
        offers = [media.PROTO, *offers]
    chosen = media.accepted(request.header("accept"), offers)
    if chosen is None:
        raise HttpError.invalid(f"Accept allows none of {', '.join(offers)}", "Accept", 406)
    media.prepare(message, chosen)
    try:
        reply = await route.call(message, CallContext(timeout_s(request)))
    except CallFailed as failed:
        raise HttpError(failed.status) from None
    headers = media.headers(reply)
    if chosen == media.PNG:
        cols = media.grid_columns(message, len(reply.png) or _rows(reply), request.query)
        await wire.send_bytes(send, request, 200, media.png_grid(reply, cols), chosen, headers)
    elif chosen == media.NPY:
        await wire.send_bytes(send, request, 200, media.npy(reply), chosen, headers)
    elif chosen == media.PROTO:
        await wire.send_bytes(send, request, 200, reply.SerializeToString(), chosen, headers)
    else:
        await wire.send_bytes(send, request, 200, to_json(reply), media.JSON, headers)


def _rows(reply: Message) -> int:
    images = getattr(reply, "images", None)
    return int(images.shape[0]) if images is not None and images.shape else 1


async def _stream(route: Route, request: wire.Request, send: wire.Send, content_type: str,
                  body: bytes) -> None:
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind in (stream.CONNECT_JSON, stream.CONNECT_PROTO):
        inner = "application/proto" if kind == stream.CONNECT_PROTO else media.JSON
        message = parse_body(stream.unwrap(body), inner, route.request_type)
        chosen = kind
    else:
        message = parse_body(body, content_type, route.request_type)
        offered = media.accepted(request.header("accept"), [media.SSE, media.NDJSON])
        if offered is None:
            raise HttpError.invalid("Accept allows neither text/event-stream nor "
                                    "application/x-ndjson", "Accept", 406)
        chosen = offered
    replies = route.call(message, CallContext(timeout_s(request)))
    try:
        await stream.send_stream(send, request, replies, chosen)
    finally:
        await replies.aclose()
