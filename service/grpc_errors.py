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
import itertools
import logging
import os
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any, Protocol, TypeVar

import grpc
import structlog
from google.protobuf import any_pb2
from google.protobuf.message import DecodeError, Message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status
from structlog.contextvars import bound_contextvars

from latentserve.core.errors import (
    DeadlineExceeded,
    InvalidArgument,
    LatentServeError,
    Unavailable,
)
from latentserve.service.deadline import request_deadline
from latentserve.service.logs import get_logger
from latentserve.service.metrics import ServiceMetrics
from latentserve.service.tracing import set_rpc_status

log = get_logger(__name__)
R = TypeVar("R")


class Admission:
    """Whether handlers may start, and how many run: the server's drain reads it.

    Once `draining` is set, every handler that starts answers UNAVAILABLE at once (clients
    retry elsewhere) instead of being cancelled unanswered when the server stops.
    """

    __slots__ = ("active", "admitted", "draining", "started", "working")

    def __init__(self) -> None:
        self.draining = False
        self.active = 0
        self.started = 0
        self.admitted = 0
        """Handlers let in to do their work (refusals while draining not counted)."""
        self.working = 0
        """Admitted handlers still running: the drain waits for these, not for refusals."""

    def admit(self, outcome: Outcome) -> None:
        """Let a handler do its work (counted in `working` until it finishes), or refuse it
        with UNAVAILABLE once draining."""
        if self.draining:
            raise Unavailable("the server is shutting down; retry (another replica will answer)")
        self.admitted += 1
        self.working += 1
        outcome.admitted = True

    def check(self) -> None:
        if self.draining:
            raise Unavailable("the server is shutting down; retry (another replica will answer)")


_REQUEST_IDS = itertools.count(1)
_process_tag = uuid.uuid4().hex[:6]


def _new_process_tag() -> None:
    global _process_tag
    _process_tag = uuid.uuid4().hex[:6]


os.register_at_fork(after_in_child=_new_process_tag)


def request_id() -> str:
    """A request id unique across processes: a random per-process tag and a counter (cheaper
    than a uuid4 per request, which reads the OS entropy pool)."""
    return f"{_process_tag}{next(_REQUEST_IDS):06x}"


class HasObservability(Protocol):
    """What `rpc` needs from the servicer instance."""

    metrics: ServiceMetrics
    default_deadline_s: float
    access_log: bool
    admission: Admission


MAX_MESSAGE_BYTES = 512
"""Longest status message sent (UTF-8 bytes); the rest is elided. Status text travels in
response trailers, whose size gRPC bounds (8 KiB by default): a longer one would turn the real
status into RESOURCE_EXHAUSTED on the client."""
MAX_DESCRIPTION_BYTES = 256
"""Longest field-violation description (and field path) sent."""
MAX_VIOLATIONS = 8
"""Most field violations sent with one status."""


class Undecodable:
    """What a handler receives instead of a request whose bytes did not parse.

    The wrapper turns it into INVALID_ARGUMENT (counted like any other status) instead of
    gRPC's own UNKNOWN, which bypassed the handler, the metrics and the logs.
    """

    __slots__ = ("error", "message_type")

    def __init__(self, message_type: str, error: str) -> None:
        self.message_type = message_type
        self.error = error

    def as_error(self) -> InvalidArgument:
        return InvalidArgument(f"the request bytes are not a valid {self.message_type} "
                               f"({self.error})", field="request")


def tolerant_deserializer(message_class: type[Message]) -> Callable[[bytes], Any]:
    """A request deserializer that never raises: bad bytes become an `Undecodable`."""
    name = message_class.DESCRIPTOR.full_name

    def parse(data: bytes) -> Any:
        try:
            return message_class.FromString(data)
        except (DecodeError, ValueError, RuntimeError) as exc:
            return Undecodable(name, str(exc) or type(exc).__name__)

    return parse


_CUT_MARK = " …(cut)"


def clip(text: str, limit: int) -> str:
    """`text` cut to at most `limit` UTF-8 bytes, marked with "…" when cut."""
    data = text.encode("utf-8", "replace")
    if len(data) <= limit:
        return text
    return data[: limit - len(_CUT_MARK.encode())].decode("utf-8", "ignore") + _CUT_MARK


class Outcome:
    """Per-request facts the handler fills in for metrics and logs."""

    __slots__ = ("admitted", "items", "model", "version")

    def __init__(self) -> None:
        self.model = ""
        self.version = 0
        self.items = 0
        self.admitted = False


def rich_status(exc: LatentServeError) -> status_pb2.Status:
    """The google.rpc.Status for an error (BadRequest details for InvalidArgument)."""
    status = status_pb2.Status(code=int(exc.status), message=clip(exc.message, MAX_MESSAGE_BYTES))
    if isinstance(exc, InvalidArgument) and exc.violations:
        detail = any_pb2.Any()
        detail.Pack(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(
                        field=clip(v.field, MAX_DESCRIPTION_BYTES),
                        description=clip(v.description, MAX_DESCRIPTION_BYTES),
                    )
                    for v in exc.violations[:MAX_VIOLATIONS]
                ]
            )
        )
        status.details.append(detail)
    return status


def _remaining(context: grpc.aio.ServicerContext, default_s: float) -> float:
    remaining = context.time_remaining()
    return default_s if remaining is None else max(0.0, min(float(remaining), 1e6))


def _log_internal(exc: BaseException) -> None:
    """The log line of an INTERNAL answer: message and traceback (called inside `except`)."""
    if not isinstance(exc, LatentServeError | asyncio.CancelledError):
        log.exception("internal error", error_type=type(exc).__name__, error=str(exc))


def _answer_of(exc: BaseException | None, rid: str) -> grpc.Status | None:
    """The status a failed handler answers with (None: it succeeded or was cancelled).

    The wrappers keep this, never the exception: an exception stored in the wrapper's frame
    would hold its traceback, the traceback that frame and every handler frame below it, and
    so the request (tens of MB for a refused flood) in a reference cycle only Python's cyclic
    collector frees, whenever it happens to run.
    """
    if exc is None or isinstance(exc, asyncio.CancelledError | GeneratorExit):
        return None
    if isinstance(exc, LatentServeError):
        return rpc_status.to_status(rich_status(exc))
    status = status_pb2.Status(
        code=code_pb2.INTERNAL, message=f"internal error (request id {rid}); see server logs"
    )
    return rpc_status.to_status(status)


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
    requests, latency, items = self.metrics.rpc_series(name, model, code)
    requests.inc()
    latency.observe(elapsed)
    if outcome.items:
        items.observe(outcome.items)
    self.metrics.inflight.dec()
    self.admission.active -= 1
    if outcome.admitted:
        self.admission.working -= 1
    set_rpc_status(code)
    level = ("info" if self.access_log else "debug") if code == "OK" else "warning"
    if not _emits(level):  # a filtered access log costs no logger and no field formatting
        return
    getattr(log, level)(
        "rpc", status=code, model=f"{model}@v{outcome.version}" if outcome.version else model,
        items=outcome.items, latency_ms=round(elapsed * 1e3, 2),
        **({"error": str(error)} if error is not None and code != "INTERNAL" else {}),
    )


_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}


def _emits(level: str) -> bool:
    """Whether the configured structlog logger emits `level` (read per call: a reconfigured
    logger, as in tests, is followed at once)."""
    enabled = getattr(structlog.get_config()["wrapper_class"], "is_enabled_for", None)
    return enabled is None or bool(enabled(None, _LEVELS[level]))


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
            rid = request_id()
            outcome, started = Outcome(), time.perf_counter()
            error: BaseException | None = None
            self.metrics.inflight.inc()
            self.admission.active += 1
            self.admission.started += 1
            with bound_contextvars(request_id=rid, rpc=name):
                budget = _remaining(context, self.default_deadline_s)
                try:
                    self.admission.admit(outcome)
                    if isinstance(request, Undecodable):
                        raise request.as_error()
                    async with asyncio.timeout(budget):
                        with request_deadline(budget):
                            return await handler(self, request, context, outcome)
                except TimeoutError:
                    error = _timeout_error(name, budget)
                except BaseException as exc:
                    error = exc
                    if isinstance(exc, asyncio.CancelledError):
                        raise
                    _log_internal(exc)
                finally:
                    _finish(self, name, outcome, started, error)
                    answer, error = _answer_of(error, rid), None  # no exception outlives this
                assert answer is not None
                # gRPC's AbortError sits in a cycle with its handler frames, this one among them.
                del request
                await context.abort_with_status(answer)
                raise AssertionError("unreachable: abort raises")

        return method

    return wrap


def add_servicer(servicer: Any, server: grpc.aio.Server, service: Any) -> None:
    """Register `servicer` for every method of `service` (a ServiceDescriptor), like the
    generated `add_..._to_server`, but with `tolerant_deserializer`s so undecodable request
    bytes reach the handler wrapper (INVALID_ARGUMENT, metrics, logs) instead of gRPC's UNKNOWN.
    """
    from google.protobuf import message_factory

    handlers = {}
    for method in service.methods:
        request_class = message_factory.GetMessageClass(method.input_type)
        response_class = message_factory.GetMessageClass(method.output_type)
        make = (grpc.unary_stream_rpc_method_handler if method.server_streaming
                else grpc.unary_unary_rpc_method_handler)
        handlers[method.name] = make(
            getattr(servicer, method.name),
            request_deserializer=tolerant_deserializer(request_class),
            response_serializer=response_class.SerializeToString,
        )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(service.full_name, handlers),))
    server.add_registered_method_handlers(service.full_name, handlers)


def rpc_stream(name: str) -> Callable[[StreamHandler[R]], Callable[..., AsyncIterator[R]]]:
    """Wrap a server-streaming handler (an async generator) the same way as `rpc`."""

    def wrap(handler: StreamHandler[R]) -> Callable[..., AsyncIterator[R]]:
        @functools.wraps(handler)
        async def method(self: HasObservability, request: Any,
                         context: grpc.aio.ServicerContext) -> AsyncIterator[R]:
            rid = request_id()
            outcome, started = Outcome(), time.perf_counter()
            error: BaseException | None = None
            self.metrics.inflight.inc()
            self.admission.active += 1
            self.admission.started += 1
            with bound_contextvars(request_id=rid, rpc=name):
                budget = _remaining(context, self.default_deadline_s)
                loop = asyncio.get_running_loop()
                deadline = loop.time() + budget
                chunks = handler(self, request, context, outcome)
                try:
                    self.admission.admit(outcome)
                    if isinstance(request, Undecodable):
                        raise request.as_error()
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
                    _log_internal(exc)
                finally:
                    await chunks.aclose()
                    _finish(self, name, outcome, started, error)
                    answer, error = _answer_of(error, rid), None  # no exception outlives this
                assert answer is not None
                # gRPC's AbortError sits in a cycle with its handler frames, this one among them.
                del request, chunks
                await context.abort_with_status(answer)

        return method

    return wrap
