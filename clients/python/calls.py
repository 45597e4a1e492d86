"""How every call runs, written once for Client and AsyncClient: plans of effects, no I/O.

A plan is a generator that yields effects (`Call`: one RPC attempt, `Read`: a stream's next
message, `Sleep`: a backoff wait) and is sent what each produced, or has its error thrown in.
Retries, deadlines, the output-range fetch and result building live in the plans; a client
only performs effects, blocking (`run`) or awaited. Example::

    plan = generate(core, "Sample", request, timeout_s=10.0)
    result = run(plan, perform)          # perform(effect) does the I/O
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from typing import Any, Concatenate, Generic, ParamSpec, TypeAlias, TypeVar

import grpc
from google.protobuf.message import Message

from latentserve.v1 import generator_pb2 as pb

from .base import ClientCore
from .errors import LatentServeClientError, error_from_rpc_error
from .refs import ModelRef
from .results import GenerateResult, ModelInfo, model_info_from_proto
from .transport import ClientConfig, Deadline, is_retryable

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")


@dataclass(frozen=True)
class Call:
    """Start one RPC attempt; the reply is the response (unary) or the call object (stream)."""

    rpc: str
    request: Message
    timeout_s: float
    metadata: tuple[tuple[str, str], ...]
    streaming: bool = False

    def start(self, stub: Any) -> Any:
        """Invoke the stub's method (grpc: the response; grpc.aio: an awaitable; streams: the
        call object)."""
        return getattr(stub, self.rpc)(self.request, timeout=self.timeout_s, metadata=self.metadata)


@dataclass(frozen=True)
class Read:
    """Receive the next message of an open stream; the reply is None once it has ended."""

    stream: Any


@dataclass(frozen=True)
class Sleep:
    """Wait before the next attempt."""

    seconds: float


Effect: TypeAlias = Call | Read | Sleep
Plan: TypeAlias = Generator[Effect, Any, T]
"""A call written as effects; its return value is the call's result."""

Op: TypeAlias = Callable[Concatenate[ClientCore, P], T]
"""A public operation: checks its arguments and prepares a plan (or a stream) on a core."""


class Steps(Generic[R]):
    """Steps through a plan: iterate for its effects, setting `reply` after each one, inside
    `catch()` so that an error is thrown into the plan instead; then read `result`."""

    def __init__(self, plan: Plan[R]) -> None:
        self._plan = plan
        self.reply: Any = None
        self._error: Exception | None = None
        self._result: R

    def __iter__(self) -> Iterator[Effect]:
        try:
            while True:
                reply, error = self.reply, self._error
                self.reply = self._error = None
                try:
                    effect = self._plan.send(reply) if error is None else self._plan.throw(error)
                except StopIteration as done:
                    self._result = done.value
                    return
                yield effect
        finally:
            self._plan.close()

    @contextlib.contextmanager
    def catch(self) -> Iterator[None]:
        """Record an error of the effect being performed, for the plan to handle."""
        try:
            yield
        except Exception as err:
            self._error = err

    @property
    def result(self) -> R:
        """What the plan returned (once the iteration is over)."""
        return self._result


def run(plan: Plan[R], perform: Callable[[Effect], Any]) -> R:
    """Carry out `plan` with `perform`, a blocking function doing one effect's I/O."""
    steps = Steps(plan)
    for effect in steps:
        with steps.catch():
            steps.reply = perform(effect)
    return steps.result


class Retry:
    """One call's attempts: each gets what is left of the deadline; UNAVAILABLE is retried
    `config.retries` times with exponential backoff while the deadline allows the wait."""

    def __init__(self, config: ClientConfig, timeout_s: float) -> None:
        self._config = config
        self._deadline = Deadline(timeout_s)
        self._attempt = 0

    def call(self, rpc: str, request: Message, *, streaming: bool = False) -> Call:
        """The next attempt."""
        timeout_s = max(self._deadline.remaining(), 0.001)
        return Call(rpc, request, timeout_s, self._config.metadata(), streaming)

    def backoff(self, error: LatentServeClientError) -> Sleep:
        """The wait before the next attempt; raises `error` when there is none."""
        wait = self._config.backoff(self._attempt)
        if not (
            is_retryable(error.status_code)
            and self._attempt < self._config.retries
            and self._deadline.allows_wait(wait)
        ):
            raise error
        self._attempt += 1
        return Sleep(wait)


def unary(core: ClientCore, rpc: str, request: Message, timeout_s: float) -> Plan[Any]:
    """Plan: one unary RPC with retries; returns its response message."""
    retry = Retry(core.config, timeout_s)
    while True:
        try:
            return (yield retry.call(rpc, request))
        except grpc.RpcError as err:
            error = error_from_rpc_error(err)
        yield retry.backoff(error)


def mapped(plan: Plan[T], build: Callable[[T], R]) -> Plan[R]:
    """Plan: `plan`, with its result passed through `build`."""
    return build((yield from plan))


def describe(core: ClientCore, ref: ModelRef, timeout_s: float) -> Plan[ModelInfo]:
    """Plan: GetModel, caching the version's output range."""
    request = pb.GetModelRequest(model=ref.to_proto())
    info = model_info_from_proto((yield from unary(core, "GetModel", request, timeout_s)))
    core.remember(info)
    return info


def generated(core: ClientCore, resp: pb.GenerateResponse) -> Plan[GenerateResult]:
    """Plan: the result of a GenerateResponse, first fetching the output range that float
    images need for `to_pil` if it is not cached (the call succeeded: a failure is ignored)."""
    key = core.needs_range(resp)
    if key is not None:
        with contextlib.suppress(LatentServeClientError):
            yield from describe(core, ModelRef(key[0], version=key[1]), core.config.timeout_s)
    return core.result(resp)


def generate(
    core: ClientCore, rpc: str, request: Message, timeout_s: float
) -> Plan[GenerateResult]:
    """Plan: a unary RPC answering a GenerateResponse (Sample, Interpolate, Edit, Decode)."""
    resp = yield from unary(core, rpc, request, timeout_s)
    return (yield from generated(core, resp))


class ChunkStream:
    """A server stream of GenerateResponses, read with one plan per chunk (`read`).

    The deadline starts at the first read; until a chunk arrives, a failed stream is reopened
    as unary calls are retried; after that an error ends it. `close()` cancels the call.
    """

    def __init__(self, core: ClientCore, rpc: str, request: Message, timeout_s: float) -> None:
        self._core = core
        self._rpc = rpc
        self._request = request
        self._timeout_s = timeout_s
        self._retry: Retry | None = None
        self._call: Any = None
        self._started = False

    def read(self) -> Plan[GenerateResult | None]:
        """Plan: the next chunk, or None at the end of the stream."""
        if self._retry is None:
            self._retry = Retry(self._core.config, self._timeout_s)
        while True:
            if self._call is None:
                self._call = yield self._retry.call(self._rpc, self._request, streaming=True)
            try:
                resp = yield Read(self._call)
            except grpc.RpcError as err:
                error = error_from_rpc_error(err)
            else:
                if resp is None:
                    self.close()
                    return None
                self._started = True
                return (yield from generated(self._core, resp))
            self.close()
            if self._started:
                raise error
            yield self._retry.backoff(error)

    def close(self) -> None:
        """Cancel the open call, if any (cancelling never blocks, in grpc and grpc.aio)."""
        call, self._call = self._call, None
        if call is not None:
            call.cancel()
