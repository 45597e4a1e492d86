"""The one place exceptions become gRPC statuses, plus per-RPC metrics, logs and deadlines.

Every servicer method is wrapped by `rpc(...)`: it binds a request id to the logs, applies the
request's deadline (or the default one), maps `LatentServeError` subclasses to their status
(INVALID_ARGUMENT with `google.rpc.BadRequest` field violations), hides anything else behind
a generic INTERNAL, and records metrics when the handler finishes. Example::

    class Servicer(GeneratorServiceServicer):
        @rpc("Sample")
        async def Sample(self, request, context): ...
"""

from __future__ import annotations

import asyncio
import functools
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any, Protocol, TypeVar

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status
from structlog.contextvars import bound_contextvars

from latentserve.core.errors import DeadlineExceeded, InvalidArgument, LatentServeError
from latentserve.service.deadline import request_deadline
from latentserve.service.logs import get_logger
from latentserve.service.metrics import ServiceMetrics

log = get_logger(__name__)
R = TypeVar("R")


class HasObservability(Protocol):
    """What `rpc` needs from the servicer instance."""

    metrics: ServiceMetrics
    default_deadline_s: float
    access_log: bool


class Outcome:
    """Per-request facts the handler fills in for metrics and logs."""

    __slots__ = ("items", "model", "version")

    def __init__(self) -> None:
        self.model = ""
        self.version = 0
        self.items = 0


def rich_status(exc: LatentServeError) -> status_pb2.Status:
    """The google.rpc.Status for an error (BadRequest details for InvalidArgument)."""
    status = status_pb2.Status(code=int(exc.status), message=exc.message)
    if isinstance(exc, InvalidArgument) and exc.violations:
        detail = any_pb2.Any()
        detail.Pack(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(
                        field=v.field, description=v.description
                    )
                    for v in exc.violations
                ]
            )
        )
        status.details.append(detail)
    return status


def _remaining(context: grpc.aio.ServicerContext, default_s: float) -> float:
    remaining = context.time_remaining()
    return default_s if remaining is None else max(0.0, min(float(remaining), 1e6))


async def _abort(context: grpc.aio.ServicerContext, exc: BaseException, rid: str) -> None:
    if isinstance(exc, LatentServeError):
        await context.abort_with_status(rpc_status.to_status(rich_status(exc)))
    log.exception("internal error", error_type=type(exc).__name__)
    status = status_pb2.Status(
        code=code_pb2.INTERNAL, message=f"internal error (request id {rid}); see server logs"
    )
    await context.abort_with_status(rpc_status.to_status(status))


def _code_of(exc: BaseException | None) -> str:
    if exc is None:
        return "OK"
    if isinstance(exc, LatentServeError):
        return str(exc.status.name)
    if isinstance(exc, asyncio.CancelledError):
        return "CANCELLED"
    return "INTERNAL"


def _finish(self: HasObservability, name: str, outcome: Outcome, started: float,
            error: BaseException | None) -> None:
    code = _code_of(error)
    model = outcome.model or "-"
    elapsed = time.perf_counter() - started
    self.metrics.requests.labels(rpc=name, model=model, code=code).inc()
    self.metrics.latency.labels(rpc=name, model=model).observe(elapsed)
    if outcome.items:
        self.metrics.items.labels(rpc=name).observe(outcome.items)
    self.metrics.inflight.dec()
    level = ("info" if self.access_log else "debug") if code == "OK" else "warning"
    getattr(log, level)(
        "rpc", status=code, model=f"{model}@v{outcome.version}" if outcome.version else model,
        items=outcome.items, latency_ms=round(elapsed * 1e3, 2),
        **({"error": str(error)} if error is not None and code != "INTERNAL" else {}),
    )


def _timeout_error(name: str, seconds: float) -> DeadlineExceeded:
    return DeadlineExceeded(f"{name} did not finish within its deadline of {seconds:.3f} s")


UnaryHandler = Callable[[Any, Any, grpc.aio.ServicerContext, Outcome], Awaitable[R]]
StreamHandler = Callable[[Any, Any, grpc.aio.ServicerContext, Outcome], AsyncGenerator[R, None]]


def rpc(name: str) -> Callable[[UnaryHandler[R]], Callable[..., Awaitable[R]]]:
    """Wrap a unary handler `(self, request, context, outcome)` as a servicer method."""

    def wrap(handler: UnaryHandler[R]) -> Callable[..., Awaitable[R]]:
        @functools.wraps(handler)
        async def method(self: HasObservability, request: Any,
                         context: grpc.aio.ServicerContext) -> R:
            rid = uuid.uuid4().hex[:12]
            outcome, started = Outcome(), time.perf_counter()
            error: BaseException | None = None
            self.metrics.inflight.inc()
            with bound_contextvars(request_id=rid, rpc=name):
                budget = _remaining(context, self.default_deadline_s)
                try:
                    async with asyncio.timeout(budget):
                        with request_deadline(budget):
                            return await handler(self, request, context, outcome)
                except TimeoutError:
                    error = _timeout_error(name, budget)
                except BaseException as exc:
                    error = exc
                    if isinstance(exc, asyncio.CancelledError):
                        raise
                finally:
                    _finish(self, name, outcome, started, error)
                assert error is not None
                await _abort(context, error, rid)
                raise AssertionError("unreachable: abort raises")

        return method

    return wrap


def rpc_stream(name: str) -> Callable[[StreamHandler[R]], Callable[..., AsyncIterator[R]]]:
    """Wrap a server-streaming handler (an async generator) the same way as `rpc`."""

    def wrap(handler: StreamHandler[R]) -> Callable[..., AsyncIterator[R]]:
        @functools.wraps(handler)
        async def method(self: HasObservability, request: Any,
                         context: grpc.aio.ServicerContext) -> AsyncIterator[R]:
            rid = uuid.uuid4().hex[:12]
            outcome, started = Outcome(), time.perf_counter()
            error: BaseException | None = None
            self.metrics.inflight.inc()
            with bound_contextvars(request_id=rid, rpc=name):
                budget = _remaining(context, self.default_deadline_s)
                loop = asyncio.get_running_loop()
                deadline = loop.time() + budget
                chunks = handler(self, request, context, outcome)
                try:
                    while True:
                        try:
                            async with asyncio.timeout_at(deadline):
                                with request_deadline(deadline - loop.time()):
                                    item = await anext(chunks)
                        except StopAsyncIteration:
                            return
                        yield item
                except TimeoutError:
                    error = _timeout_error(name, budget)
                except BaseException as exc:
                    error = exc
                    if isinstance(exc, asyncio.CancelledError | GeneratorExit):
                        raise
                finally:
                    await chunks.aclose()
                    _finish(self, name, outcome, started, error)
                assert error is not None
                await _abort(context, error, rid)

        return method

    return wrap
