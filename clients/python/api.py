"""The public client API, written once: `BaseClient` holds the constructor and every method.

Each method is an operation (`operations`) in a descriptor; the client class it is read from
turns the operation into its own kind of method once (its `_unary` / `_stream` hooks): blocking
on `Client`, a coroutine or async iterator on `AsyncClient`. Adding an RPC: an operation, and
one line in `BaseClient`. Example::

    Client.sample      # function (self, model, *, n=1, ...) -> GenerateResult
    AsyncClient.sample # coroutine function, same parameters
"""

from __future__ import annotations

import functools
import inspect
import re
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from types import MethodType
from typing import TYPE_CHECKING, Any, ClassVar, Concatenate, Generic, ParamSpec, TypeVar, overload

import grpc

from latentserve.v1 import generator_pb2_grpc as pb_grpc

from . import operations as ops
from .base import ClientCore
from .calls import ChunkStream, Op, Plan
from .results import GenerateResult
from .transport import DEFAULT_MAX_MESSAGE_BYTES, ClientConfig

if TYPE_CHECKING:
    from .aio import AsyncClient
    from .client import Client

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


def as_method(method: F, op: Callable[..., Any], returns: str, note: str = "") -> F:
    """`method` (a client's form of `op`) shown as `op` to help() and inspect: its name, its
    docstring (plus `note`), its parameters with `self` for the core, and `returns` as the
    result annotation, where "{}" stands for what op's plan returns."""
    module = method.__module__
    functools.update_wrapper(method, op)
    method.__module__ = module
    method.__doc__ = "\n\n".join(filter(None, [inspect.cleandoc(op.__doc__ or ""), note]))
    sig = inspect.signature(op)
    core, *params = sig.parameters.values()
    plan_result = re.sub(r"^Plan\[(.*)\]$", r"\1", str(sig.return_annotation))
    method.__signature__ = sig.replace(  # type: ignore[attr-defined]
        parameters=[core.replace(name="self", annotation=inspect.Parameter.empty), *params],
        return_annotation=returns.format(plan_result),
    )
    return method


class _Bound(Generic[P, T]):
    """An operation as a method: read from a client class, it asks that class (its `hook`)
    for its form of the operation, once per class, and binds it like a function."""

    hook: ClassVar[str]

    def __init__(self, op: Op[P, T]) -> None:
        self._op = op
        self._name = op.__name__
        self._functions: dict[type[Any], Callable[..., Any]] = {}

    def __set_name__(self, owner: type[Any], name: str) -> None:
        self._name = name

    def _get(self, client: object, owner: type[Any]) -> Any:
        function = self._functions.get(owner)
        if function is None:
            function = self._functions[owner] = getattr(owner, self.hook)(self._op)
            function.__qualname__ = f"{owner.__qualname__}.{self._name}"
        return function if client is None else MethodType(function, client)


class Method(_Bound[P, Plan[R]]):
    """A unary operation: blocking on Client, a coroutine function on AsyncClient."""

    hook = "_unary"

    @overload
    def __get__(self, client: None, owner: type[Client]) -> Callable[Concatenate[Client, P], R]: ...

    @overload
    def __get__(
        self, client: None, owner: type[AsyncClient]
    ) -> Callable[Concatenate[AsyncClient, P], Coroutine[Any, Any, R]]: ...

    @overload
    def __get__(self, client: Client, owner: Any) -> Callable[P, R]: ...

    @overload
    def __get__(self, client: AsyncClient, owner: Any) -> Callable[P, Coroutine[Any, Any, R]]: ...

    def __get__(self, client: Any, owner: Any) -> Any:
        return self._get(client, owner)


class StreamMethod(_Bound[P, ChunkStream]):
    """A server-streaming operation: an iterator on Client, an async iterator on AsyncClient;
    its arguments are checked when it is called."""

    hook = "_stream"

    @overload
    def __get__(
        self, client: None, owner: type[Client]
    ) -> Callable[Concatenate[Client, P], Iterator[GenerateResult]]: ...

    @overload
    def __get__(
        self, client: None, owner: type[AsyncClient]
    ) -> Callable[Concatenate[AsyncClient, P], AsyncIterator[GenerateResult]]: ...

    @overload
    def __get__(self, client: Client, owner: Any) -> Callable[P, Iterator[GenerateResult]]: ...

    @overload
    def __get__(
        self, client: AsyncClient, owner: Any
    ) -> Callable[P, AsyncIterator[GenerateResult]]: ...

    def __get__(self, client: Any, owner: Any) -> Any:
        return self._get(client, owner)


class BaseClient:
    """What Client and AsyncClient share: settings, the lazily made channel, every method.

    A subclass supplies `_unary(op)` and `_stream(op)`, making an operation its kind of
    method, plus closing and the driver that performs effects.
    """

    def __init__(
        self,
        address: str,
        *,
        timeout_s: float = 30.0,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        retries: int = 3,
        backoff_s: float = 0.1,
        credentials: grpc.ChannelCredentials | None = None,
        token: str | None = None,
    ) -> None:
        self._core = ClientCore(
            ClientConfig(
                address, timeout_s, max_message_bytes, retries, backoff_s, credentials, token
            )
        )
        self._channel: Any = None
        self._stub_obj: Any = None
        self._lock = threading.Lock()  # Client's calls may come from many threads

    @property
    def address(self) -> str:
        """The `host:port` this client talks to."""
        return self._core.config.address

    def _open_stub(self, *, aio: bool) -> Any:
        """The stub, making the channel on first use; RuntimeError once closed."""
        self._core.check_open()
        if self._stub_obj is None:
            self._channel = self._core.make_channel(aio=aio)
            self._stub_obj = pb_grpc.GeneratorServiceStub(self._channel)
        return self._stub_obj

    def _detach(self) -> Any:
        """Mark the client closed; the channel to close, if one was opened."""
        self._core.closed = True
        channel, self._channel, self._stub_obj = self._channel, None, None
        return channel

    sample = Method(ops.sample)
    interpolate = Method(ops.interpolate)
    stream_interpolate = StreamMethod(ops.stream_interpolate)
    edit = Method(ops.edit)
    encode = Method(ops.encode)
    decode = Method(ops.decode)
    list_models = Method(ops.list_models)
    get_model = Method(ops.get_model)
