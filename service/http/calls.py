"""Calling the gRPC servicer's methods from another transport (HTTP, the OIP adapters).

The servicer's methods are wrapped by `grpc_errors.rpc`, which reads the deadline from the
context and answers failures with `context.abort_with_status`. `CallContext` stands in for the
grpc.aio context: it carries the caller's deadline and turns the abort into `CallFailed`
carrying the same google.rpc.Status, so every transport reports the one status the servicer
chose (metrics, logs, the response cache and admission are the servicer's own). Example::

    try:
        reply = await servicer.Sample(request, CallContext(timeout_s=5.0))
    except CallFailed as failed:
        failed.status.code, failed.status.message
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, NoReturn

from google.protobuf.message import Message
from google.rpc import code_pb2, status_pb2

_DETAILS_KEY = "grpc-status-details-bin"


class CallFailed(Exception):
    """A servicer call ended with a status other than OK."""

    def __init__(self, status: status_pb2.Status) -> None:
        super().__init__(status.message)
        self.status = status


def _status_of(grpc_status: Any) -> status_pb2.Status:
    """The google.rpc.Status inside a `grpc.Status` (from `rpc_status.to_status`)."""
    for key, value in getattr(grpc_status, "trailing_metadata", None) or ():
        if key == _DETAILS_KEY:
            return status_pb2.Status.FromString(value)
    code = getattr(getattr(grpc_status, "code", None), "value", (code_pb2.UNKNOWN,))[0]
    return status_pb2.Status(code=int(code), message=str(getattr(grpc_status, "details", "")))


class CallContext:
    """The part of `grpc.aio.ServicerContext` the servicer's wrappers use."""

    __slots__ = ("_deadline",)

    def __init__(self, timeout_s: float | None = None) -> None:
        self._deadline = None if timeout_s is None else time.monotonic() + timeout_s

    def time_remaining(self) -> float | None:
        """Seconds left of the caller's deadline; None: none given (the default applies)."""
        return None if self._deadline is None else max(0.0, self._deadline - time.monotonic())

    async def abort_with_status(self, status: Any) -> NoReturn:
        raise CallFailed(_status_of(status))

    async def abort(self, code: Any, details: str = "") -> NoReturn:
        value = getattr(code, "value", (code_pb2.UNKNOWN,))[0]
        raise CallFailed(status_pb2.Status(code=int(value), message=details))


UnaryMethod = Callable[[Message, CallContext], Awaitable[Message]]
StreamMethod = Callable[[Message, CallContext], AsyncIterator[Message]]
