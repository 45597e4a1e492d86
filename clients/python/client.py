"""The blocking latentserve client.

Example::

    with Client("127.0.0.1:50051") as client:
        out = client.sample("sprites-vae", n=8, seed=1, truncation_psi=0.7, class_labels=[0])
        out.latents.shape, out.images.shape, out.model.version   # (8, 4) (8, 1, 64, 64) 1
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any, Concatenate, ParamSpec, TypeVar

from .api import BaseClient, as_method
from .calls import ChunkStream, Effect, Op, Plan, Read, Sleep, run
from .results import GenerateResult

P = ParamSpec("P")
R = TypeVar("R")


def _blocking(op: Op[P, Plan[R]]) -> Callable[Concatenate[Client, P], R]:
    """`op` as a Client method: its plan run to the end, blocking."""

    def method(self: Client, /, *args: P.args, **kwargs: P.kwargs) -> R:
        return run(op(self._core, *args, **kwargs), self._perform)

    return as_method(method, op, "{}")


def _iterating(
    op: Op[P, ChunkStream],
) -> Callable[Concatenate[Client, P], Iterator[GenerateResult]]:
    """`op` as a Client method returning an iterator of the stream's chunks."""

    def method(self: Client, /, *args: P.args, **kwargs: P.kwargs) -> Iterator[GenerateResult]:
        return _chunks(op(self._core, *args, **kwargs), self._perform)  # checked at the call

    return as_method(method, op, "Iterator[GenerateResult]")


def _chunks(stream: ChunkStream, perform: Callable[[Effect], Any]) -> Iterator[GenerateResult]:
    with contextlib.closing(stream):
        yield from iter(lambda: run(stream.read(), perform), None)


class Client(BaseClient):
    """Blocking client of a latentserve GeneratorService; thread-safe, connects on first call.

    Example::

        with Client("127.0.0.1:50051", timeout_s=10.0) as client:
            info = client.get_model("sprites-vae")
            out = client.edit("sprites-vae", seeds=[1, 2], direction="scale",
                              strengths=[-2, -1, 0, 1, 2], conditional_on=["pos_y"],
                              class_labels=[0, 2])

    Failed calls raise `LatentServeClientError` subclasses; UNAVAILABLE is retried
    `retries` times with exponential backoff inside the call's deadline.
    """

    _unary = staticmethod(_blocking)
    _stream = staticmethod(_iterating)

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the channel (if one was opened); later calls raise RuntimeError."""
        with self._lock:
            channel = self._detach()
            if channel is not None:
                channel.close()

    def _perform(self, effect: Effect) -> Any:
        """Do one effect of a plan, blocking: an RPC attempt, a stream read or a backoff."""
        if isinstance(effect, Read):
            return next(effect.stream, None)
        if isinstance(effect, Sleep):
            time.sleep(effect.seconds)
            return None
        with self._lock:
            stub = self._open_stub(aio=False)
        return effect.start(stub)
