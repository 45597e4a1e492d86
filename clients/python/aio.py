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
import inspect
from collections.abc import AsyncIterator, Callable, Sequence
from types import TracebackType
from typing import Any, TypeVar

import grpc
import numpy.typing as npt
from google.protobuf.message import Message

from latentserve.v1 import generator_pb2 as pb

from . import wire
from .client import Client
from .messages import ImagesArg, Labels, MethodArg, NoiseArg, OutputArg
from .projection import AsyncProjectMixin
from .refs import ModelArg
from .results import (
    EncodeResult,
    GenerateResult,
    ModelInfo,
    ModelSummary,
    encode_result_from_proto,
    model_info_from_proto,
)
from .transport import Connection, Retry

F = TypeVar("F", bound=Callable[..., Any])
AWAIT = "A coroutine: ``await`` it."


def _doc(method: Callable[..., Any], note: str = AWAIT) -> Callable[[F], F]:
    """Give the decorated method the docstring of `Client`'s `method`, plus `note`."""

    def apply(function: F) -> F:
        function.__doc__ = f"{inspect.cleandoc(method.__doc__ or '')}\n\n{note}"
        return function

    return apply


class AsyncClient(AsyncProjectMixin, Connection):
    """Asyncio client of a latentserve GeneratorService; connects on the first call.

    Use it from one event loop. Arguments, results, errors and retries are those of
    `latentserve.client.Client`; methods are awaited, `stream_interpolate` is an async
    iterator. Example::

        async with AsyncClient("127.0.0.1:50051", timeout_s=10.0) as client:
            info = await client.get_model("digits-cvae")
            out = await client.sample("digits-cvae", n=10, class_labels=list(range(10)))
    """

    aio = True

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the channel (if one was opened); later calls raise RuntimeError."""
        channel = self._detach()
        if channel is not None:
            await channel.close()

    @_doc(Client.sample)
    async def sample(self, model: ModelArg, *, n: int = 1, seed: int = 0,
                     truncation_psi: float | None = None, class_labels: Labels = None,
                     output: OutputArg = "float32",
                     truncation_cutoff: int | None = None, noise: NoiseArg = None,
                     noise_seed: int | None = None,
                     version: int | None = None,
                     alias: str | None = None, timeout_s: float | None = None) -> GenerateResult:
        request = wire.sample_request(model, n=n, seed=seed, truncation_psi=truncation_psi,
                                      class_labels=class_labels, output=output,
                                      truncation_cutoff=truncation_cutoff, noise=noise,
                                      noise_seed=noise_seed,
                                      version=version, alias=alias)
        return wire.generated(await self._call("Sample", request, timeout_s))

    @_doc(Client.interpolate)
    async def interpolate(self, model: ModelArg, *, seeds: Sequence[int] | None = None,
                          latents: npt.ArrayLike | None = None, steps: int = 8,
                          method: MethodArg = None, truncation_psi: float | None = None,
                          class_labels: Labels = None, output: OutputArg = "float32",
                          truncation_cutoff: int | None = None, noise: NoiseArg = None,
                          noise_seed: int | None = None,
                          version: int | None = None, alias: str | None = None,
                          timeout_s: float | None = None) -> GenerateResult:
        request = wire.interpolate_request(
            model, seeds=seeds, latents=latents, steps=steps, method=method,
            truncation_psi=truncation_psi, class_labels=class_labels, output=output,
            truncation_cutoff=truncation_cutoff, noise=noise, noise_seed=noise_seed,
            version=version, alias=alias)
        return wire.path(await self._call("Interpolate", request, timeout_s))

    @_doc(Client.stream_interpolate,
          "An async iterator: ``async for chunk in client.stream_interpolate(...)``.")
    def stream_interpolate(self, model: ModelArg, *, seeds: Sequence[int] | None = None,
                           latents: npt.ArrayLike | None = None, steps: int = 8,
                           method: MethodArg = None, truncation_psi: float | None = None,
                           class_labels: Labels = None, output: OutputArg = "float32",
                           truncation_cutoff: int | None = None, noise: NoiseArg = None,
                           noise_seed: int | None = None,
                           version: int | None = None, alias: str | None = None,
                           timeout_s: float | None = None) -> AsyncIterator[GenerateResult]:
        request = wire.interpolate_request(
            model, seeds=seeds, latents=latents, steps=steps, method=method,
            truncation_psi=truncation_psi, class_labels=class_labels, output=output,
            truncation_cutoff=truncation_cutoff, noise=noise, noise_seed=noise_seed,
            version=version, alias=alias)
        return self._stream("StreamInterpolate", request, self._config.call_timeout(timeout_s))

    @_doc(Client.edit)
    async def edit(self, model: ModelArg, *, direction: str | npt.ArrayLike,
                   strengths: Sequence[float] | npt.ArrayLike,
                   seeds: Sequence[int] | None = None, latents: npt.ArrayLike | None = None,
                   conditional_on: Sequence[str] = (), truncation_psi: float | None = None,
                   class_labels: Labels = None, output: OutputArg = "float32",
                   truncation_cutoff: int | None = None, layers: tuple[int, int] | None = None,
                   noise: NoiseArg = None, noise_seed: int | None = None,
                   version: int | None = None, alias: str | None = None,
                   timeout_s: float | None = None) -> GenerateResult:
        request = wire.edit_request(
            model, direction=direction, strengths=strengths, seeds=seeds, latents=latents,
            conditional_on=conditional_on, truncation_psi=truncation_psi,
            class_labels=class_labels, output=output,
            truncation_cutoff=truncation_cutoff, layers=layers, noise=noise, noise_seed=noise_seed,
            version=version, alias=alias)
        response = await self._call("Edit", request, timeout_s)
        return wire.generated(response, len(request.strengths))

    @_doc(Client.style_mix)
    async def style_mix(self, model: ModelArg, *, row_seeds: Sequence[int],
                        col_seeds: Sequence[int], layers: tuple[int, int],
                        truncation_psi: float | None = None,
                        truncation_cutoff: int | None = None, class_labels: Labels = None,
                        output: OutputArg = "float32", noise: NoiseArg = None,
                        noise_seed: int | None = None, include_sources: bool = False,
                        version: int | None = None, alias: str | None = None,
                        timeout_s: float | None = None) -> GenerateResult:
        request = wire.style_mix_request(
            model, row_seeds=row_seeds, col_seeds=col_seeds, layers=layers,
            truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff,
            class_labels=class_labels, output=output, noise=noise, noise_seed=noise_seed,
            include_sources=include_sources, version=version, alias=alias)
        return wire.mixed(await self._call("StyleMix", request, timeout_s), request)

    @_doc(Client.encode)
    async def encode(self, model: ModelArg, images: ImagesArg, *, class_labels: Labels = None,
                     version: int | None = None, alias: str | None = None,
                     timeout_s: float | None = None) -> EncodeResult:
        request = wire.encode_request(model, images, class_labels=class_labels,
                                      version=version, alias=alias)
        return encode_result_from_proto(await self._call("Encode", request, timeout_s))

    @_doc(Client.decode)
    async def decode(self, model: ModelArg, latents: npt.ArrayLike, *,
                     class_labels: Labels = None, output: OutputArg = "float32",
                     noise: NoiseArg = None, noise_seed: int | None = None,
                     version: int | None = None, alias: str | None = None,
                     timeout_s: float | None = None) -> GenerateResult:
        request = wire.decode_request(model, latents, class_labels=class_labels, output=output,
                                      noise=noise, noise_seed=noise_seed,
                                      version=version, alias=alias)
        return wire.generated(await self._call("Decode", request, timeout_s))

    @_doc(Client.list_models)
    async def list_models(self, *, timeout_s: float | None = None) -> list[ModelSummary]:
        return wire.summaries(await self._call("ListModels", pb.ListModelsRequest(), timeout_s))

    @_doc(Client.get_model)
    async def get_model(self, model: ModelArg, *, version: int | None = None,
                        alias: str | None = None, timeout_s: float | None = None) -> ModelInfo:
        request = pb.GetModelRequest(model=wire.model_ref(model, version, alias))
        return model_info_from_proto(await self._call("GetModel", request, timeout_s))

    async def _call(self, rpc: str, request: Message, timeout_s: float | None) -> Any:
        """One unary RPC under the retry policy; its response message."""
        retry = Retry(self._config, self._config.call_timeout(timeout_s))
        while True:
            try:
                return await getattr(self._stub(), rpc)(request, timeout=retry.timeout(),
                                                        metadata=self._config.metadata())
            except grpc.RpcError as err:
                await asyncio.sleep(retry.wait(err))

    async def _stream(self, rpc: str, request: Message,
                      timeout_s: float) -> AsyncIterator[GenerateResult]:
        """A server stream's chunks under the retry policy; the deadline starts at the first
        read, and leaving the loop early cancels the call."""
        retry = Retry(self._config, timeout_s)
        while True:
            call = getattr(self._stub(), rpc)(request, timeout=retry.timeout(),
                                              metadata=self._config.metadata())
            try:
                async for response in call:
                    retry.started = True
                    yield wire.generated(response)
                return
            except grpc.RpcError as err:
                await asyncio.sleep(retry.wait(err))
            finally:
                call.cancel()
