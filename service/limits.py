"""Concurrency limits per class of call, so that one class can never starve another.

gRPC's own `maximum_concurrent_rpcs` counts every call alike: idle `grpc.health.v1.Health/Watch`
or reflection streams, which need no token, could fill it and lock every authenticated call,
and the health check itself, out. `CallLimits` counts three classes separately:

- streams of the services reachable without a token (`auth_exempt_services`: health Watch,
  reflection): at most `max_unauthenticated_streams` open at once;
- unary calls of those services (health Check): never limited here; they answer at once;
- every other call (the API): at most `max_concurrent_rpcs` at once.

A call over its class's limit answers RESOURCE_EXHAUSTED before its request is read. gRPC's
own limit stays as a backstop above the sum. Example::

    limits = CallLimits(max_calls=512, max_open_streams=32, exempt=settings.exempt_services())
    server = grpc.aio.server(interceptors=[limits],
                             maximum_concurrent_rpcs=limits.backstop())
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

import grpc

UNARY_HEADROOM = 64
"""Calls gRPC's backstop admits beyond both limits: room for health checks (never limited here)
and for calls refused by the interceptors while they are answered."""


class _Gate:
    """A counter of open calls with a ceiling."""

    __slots__ = ("limit", "open", "what")

    def __init__(self, limit: int, what: str) -> None:
        self.limit = limit
        self.open = 0
        self.what = what

    def message(self) -> str:
        return (f"too many {self.what} open at once (limit {self.limit}); retry later")


class CallLimits(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Counts open calls per class (see the module docstring) and refuses those over limit."""

    def __init__(self, *, max_calls: int, max_open_streams: int,
                 exempt: Iterable[str] = ()) -> None:
        self._exempt = tuple(f"/{service}/" for service in exempt if service)
        self._calls = _Gate(max_calls, "RPCs")
        self._streams = _Gate(max_open_streams, "streams that need no token")

    def backstop(self) -> int:
        """gRPC's own maximum_concurrent_rpcs: above the sum of both limits."""
        return self._calls.limit + self._streams.limit + UNARY_HEADROOM

    @property
    def open_calls(self) -> int:
        return self._calls.open

    @property
    def open_streams(self) -> int:
        return self._streams.open

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method = handler_call_details.method or ""
        streaming = handler.request_streaming or handler.response_streaming
        if method.startswith(self._exempt):
            return _limited(handler, self._streams) if streaming else handler
        return _limited(handler, self._calls)


def _refuse(gate: _Gate) -> grpc.Status:
    from google.rpc import code_pb2, status_pb2
    from grpc_status import rpc_status

    return rpc_status.to_status(status_pb2.Status(code=code_pb2.RESOURCE_EXHAUSTED,
                                                  message=gate.message()))


async def _result(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


Enter = Callable[[grpc.aio.ServicerContext], Awaitable[None]]
"""Runs before a call's behaviour (it may abort the call)."""


def guarded(handler: grpc.RpcMethodHandler, enter: Enter,
            leave: Callable[[], None] | None = None) -> grpc.RpcMethodHandler:
    """`handler` whose behaviour first awaits `enter(context)` and, once `enter` returned,
    calls `leave()` when the call ends however it ends. The request is not held by the
    wrapper while the behaviour runs (see grpc_errors._answer_of)."""
    done = leave or (lambda: None)
    kwargs = {"request_deserializer": handler.request_deserializer,
              "response_serializer": handler.response_serializer}
    if handler.unary_unary is not None or handler.stream_unary is not None:
        inner_unary = handler.unary_unary or handler.stream_unary
        make_unary = (grpc.unary_unary_rpc_method_handler if handler.unary_unary is not None
                      else grpc.stream_unary_rpc_method_handler)

        async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
            await enter(context)
            try:
                answer = inner_unary(request, context)
                del request
                return await _result(answer)
            finally:
                done()

        return make_unary(unary, **kwargs)
    inner_stream = handler.unary_stream or handler.stream_stream
    make = (grpc.unary_stream_rpc_method_handler if handler.unary_stream is not None
            else grpc.stream_stream_rpc_method_handler)
    if not inspect.isasyncgenfunction(inner_stream):  # writes with context.write (health Watch)

        async def writing(request: Any, context: grpc.aio.ServicerContext) -> None:
            await enter(context)
            try:
                answer = inner_stream(request, context)
                del request
                await _result(answer)
            finally:
                done()

        return make(writing, **kwargs)

    async def yielding(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        await enter(context)
        chunks = inner_stream(request, context)
        del request
        try:
            async for item in chunks:
                yield item
        finally:
            done()
            await chunks.aclose()

    return make(yielding, **kwargs)


def _limited(handler: grpc.RpcMethodHandler, gate: _Gate) -> grpc.RpcMethodHandler:
    """`handler` with its behaviour counted against `gate` (RESOURCE_EXHAUSTED when full)."""

    async def enter(context: grpc.aio.ServicerContext) -> None:
        if gate.open >= gate.limit:
            await context.abort_with_status(_refuse(gate))
        gate.open += 1

    def leave() -> None:
        gate.open -= 1

    return guarded(handler, enter, leave)
