"""The asyncio latentserve client (grpc.aio): the same methods as `Client`, awaited.

Example::

    async with AsyncClient("127.0.0.1:50051") as client:
        out = await client.sample("sprites-vae", n=8, seed=1, class_labels=[0])
        async for chunk in client.stream_interpolate("shapes3d", seeds=[1, 2], steps=64,
                                                     class_labels=[1]):
            ...
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from types import TracebackType
from typing import Any, Concatenate, ParamSpec, TypeVar

import grpc

from .api import BaseClient, as_method
from .calls import Call, ChunkStream, Op, Plan, Read, Sleep, Steps
from .results import GenerateResult

P = ParamSpec("P")
R = TypeVar("R")


def _awaitable(op: Op[P, Plan[R]]) -> Callable[Concatenate[AsyncClient, P], Coroutine[Any, Any, R]]:
    """`op` as an AsyncClient coroutine method: its plan run to the end, awaited."""

    async def method(self: AsyncClient, /, *args: P.args, **kwargs: P.kwargs) -> R:
        return await self._run(op(self._core, *args, **kwargs))

    return as_method(method, op, "{}", "A coroutine: ``await`` it.")


def _async_iterating(
    op: Op[P, ChunkStream],
) -> Callable[Concatenate[AsyncClient, P], AsyncIterator[GenerateResult]]:
    """`op` as an AsyncClient method returning an async iterator of the stream's chunks."""

    def method(
        self: AsyncClient, /, *args: P.args, **kwargs: P.kwargs
    ) -> AsyncIterator[GenerateResult]:
        return self._chunks(op(self._core, *args, **kwargs))  # arguments checked at the call

    note = "An async iterator: ``async for chunk in client.stream_interpolate(...)``."
    return as_method(method, op, "AsyncIterator[GenerateResult]", note)


class AsyncClient(BaseClient):
    """Asyncio client of a latentserve GeneratorService; connects on the first call.

    Use it from one event loop. Arguments, results, errors and retries are those of
    `latentserve.client.Client`; methods are awaited, `stream_interpolate` is an async
    iterator. Example::

        async with AsyncClient("127.0.0.1:50051", timeout_s=10.0) as client:
            info = await client.get_model("digits-cvae")
            out = await client.sample("digits-cvae", n=10, class_labels=list(range(10)))
    """

    _unary = staticmethod(_awaitable)
    _stream = staticmethod(_async_iterating)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the channel (if one was opened); later calls raise RuntimeError."""
        channel = self._detach()
        if channel is not None:
            await channel.close()

    async def _run(self, plan: Plan[R]) -> R:
        """Carry out `plan`, awaiting each of its effects."""
        steps = Steps(plan)
        for effect in steps:
            with steps.catch():
                match effect:
                    case Sleep(seconds=seconds):
                        await asyncio.sleep(seconds)
                    case Read(stream=call):
                        reply = await call.read()
                        steps.reply = None if reply is grpc.aio.EOF else reply
                    case Call(streaming=True):
                        steps.reply = effect.start(self._open_stub(aio=True))
                    case Call():
                        steps.reply = await effect.start(self._open_stub(aio=True))
        return steps.result

    async def _chunks(self, stream: ChunkStream) -> AsyncIterator[GenerateResult]:
        try:
            while (chunk := await self._run(stream.read())) is not None:
                yield chunk
        finally:
            stream.close()
