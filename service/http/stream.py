"""Server-streaming RPCs over HTTP: server-sent events, NDJSON, or the Connect stream protocol.

- `text/event-stream` (the default): one `event: message` per reply (`data:` its JSON), then
  `event: end`; a failure after the first reply is `event: error` with the JSON error body.
- `application/x-ndjson`: one JSON reply per line; a failure is a last line `{"error": {...}}`.
- `application/connect+json` / `application/connect+proto` request bodies select the Connect
  protocol (enveloped messages and an end-of-stream envelope), which Connect clients speak.

A failure before the first reply is an ordinary HTTP error response (status and JSON body),
except for Connect, whose streams always answer 200 and carry the error at the end.
"""

from __future__ import annotations

import json
import struct
from collections.abc import AsyncIterator
from typing import Any

from google.protobuf.message import Message

from latentserve.service.http import wire
from latentserve.service.http.calls import CallFailed
from latentserve.service.http.errors import HttpError
from latentserve.service.http.transcode import to_json

CONNECT_JSON = "application/connect+json"
CONNECT_PROTO = "application/connect+proto"
_ENVELOPE = struct.Struct(">BI")
_END_STREAM = 0x02


def envelope(payload: bytes, flags: int = 0) -> bytes:
    """One Connect stream frame: flags, big-endian length, payload."""
    return _ENVELOPE.pack(flags, len(payload)) + payload


def unwrap(body: bytes) -> bytes:
    """The one message of a Connect streaming request body (a single envelope)."""
    if len(body) < _ENVELOPE.size:
        raise HttpError.invalid("the Connect stream body holds no envelope", "request")
    flags, length = _ENVELOPE.unpack_from(body)
    if flags & 0x01:
        raise HttpError.invalid("compressed Connect envelopes are not supported", "request")
    if length != len(body) - _ENVELOPE.size:
        raise HttpError.invalid("the Connect envelope length does not match the body",
                                "request")
    return body[_ENVELOPE.size:]


def _connect_error(error: HttpError) -> dict[str, Any]:
    body = error.body()
    return {key: body[key] for key in ("code", "message", "details") if key in body}


async def _first(replies: AsyncIterator[Message]) -> Message | None:
    try:
        return await anext(replies)
    except StopAsyncIteration:
        return None


def _failure(exc: BaseException) -> HttpError:
    if isinstance(exc, HttpError):
        return exc
    assert isinstance(exc, CallFailed)
    return HttpError(exc.status)


async def send_stream(send: wire.Send, request: wire.Request, replies: AsyncIterator[Message],
                      media: str) -> None:
    """Answer a server-streaming call in `media` (SSE, NDJSON, or a Connect stream)."""
    connect = media in (CONNECT_JSON, CONNECT_PROTO)
    try:
        first = await _first(replies)
    except (CallFailed, HttpError) as exc:
        if not connect:
            raise _failure(exc) from None
        await wire.send_start(send, request, 200, media)
        end = {"error": _connect_error(_failure(exc))}
        await wire.send_chunk(send, envelope(json.dumps(end).encode(), _END_STREAM), more=False)
        return
    await wire.send_start(send, request, 200, media,
                          [(b"cache-control", b"no-cache"), (b"x-accel-buffering", b"no")])
    error: HttpError | None = None
    try:
        reply = first
        while reply is not None:
            await wire.send_chunk(send, _frame(reply, media))
            reply = await _first(replies)
    except (CallFailed, HttpError) as exc:
        error = _failure(exc)
    await wire.send_chunk(send, _end(error, media), more=False)


def _frame(reply: Message, media: str) -> bytes:
    if media == CONNECT_PROTO:
        return envelope(reply.SerializeToString())
    if media == CONNECT_JSON:
        return envelope(to_json(reply))
    if media == "application/x-ndjson":
        return to_json(reply) + b"\n"
    return b"event: message\ndata: " + to_json(reply) + b"\n\n"


def _end(error: HttpError | None, media: str) -> bytes:
    if media in (CONNECT_JSON, CONNECT_PROTO):
        end = {} if error is None else {"error": _connect_error(error)}
        return envelope(json.dumps(end).encode(), _END_STREAM)
    if media == "application/x-ndjson":
        return b"" if error is None else json.dumps({"error": error.body()}).encode() + b"\n"
    if error is None:
        return b"event: end\ndata: {}\n\n"
    return b"event: error\ndata: " + json.dumps(error.body()).encode() + b"\n\n"

