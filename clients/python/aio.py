"""The asyncio latentserve client (grpc.aio): the same methods as `Client`, awaited.

Example::

    async with AsyncClient("127.0.0.1:50051") as client:
        out = await client.sample("sprites-vae", n=8, seed=1)
        async for chunk in client.stream_interpolate("sprites-vae", seeds=[1, 2], steps=64):
            ...
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from types import TracebackType
from typing import Any, TypeVar

import grpc
import numpy.typing as npt

from latentserve.v1 import generator_pb2 as pb
from latentserve.v1 import generator_pb2_grpc as pb_grpc

from . import messages
from .base import ClientCore
from .errors import LatentServeClientError, error_from_rpc_error
from .messages import ImagesArg, Labels, MethodArg, OutputArg
from .refs import ModelArg, ModelRef
from .results import (
    EncodeResult,
    GenerateResult,
    ModelInfo,
    ModelSummary,
    encode_result_from_proto,
    model_info_from_proto,
    model_summary_from_proto,
)
from .transport import (
    DEFAULT_MAX_MESSAGE_BYTES,
    ClientConfig,
    Deadline,
    is_retryable,
)

R = TypeVar("R")


class AsyncClient:
    """Asyncio client of a latentserve GeneratorService; connects on the first call.

    Use it from one event loop. Arguments, results, errors and retries are those of
    `latentserve.client.Client`. Example::

        async with AsyncClient("127.0.0.1:50051", timeout_s=10.0) as client:
            info = await client.get_model("digits-cvae")
            out = await client.sample("digits-cvae", n=10, class_labels=list(range(10)))
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

    @property
    def address(self) -> str:
        """The `host:port` this client talks to."""
        return self._core.config.address

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
        self._core.closed = True
        channel, self._channel, self._stub_obj = self._channel, None, None
        if channel is not None:
            await channel.close()

    def _stub(self) -> Any:
        self._core.check_open()
        if self._stub_obj is None:
            self._channel = self._core.make_channel(aio=True)
            self._stub_obj = pb_grpc.GeneratorServiceStub(self._channel)
        return self._stub_obj

    async def _call(
        self, rpc: Callable[..., Awaitable[R]], request: Any, timeout_s: float | None
    ) -> R:
        cfg = self._core.config
        deadline = Deadline(cfg.call_timeout(timeout_s))
        attempt = 0
        while True:
            try:
                return await rpc(
                    request, timeout=max(deadline.remaining(), 0.001), metadata=cfg.metadata()
                )
            except grpc.RpcError as err:
                error = error_from_rpc_error(err)
            wait = cfg.backoff(attempt)
            if not (
                is_retryable(error.status_code)
                and attempt < cfg.retries
                and deadline.allows_wait(wait)
            ):
                raise error
            await asyncio.sleep(wait)
            attempt += 1

    async def _generate(self, name: str, request: Any, timeout_s: float | None) -> GenerateResult:
        resp: pb.GenerateResponse = await self._call(
            getattr(self._stub(), name), request, timeout_s
        )
        await self._fetch_range(resp)
        return self._core.result(resp)

    async def _fetch_range(self, resp: pb.GenerateResponse) -> None:
        key = self._core.needs_range(resp)
        if key is not None:
            # the call succeeded; only to_pil() of float images needs the range
            with contextlib.suppress(LatentServeClientError):
                await self.get_model(ModelRef(key[0], version=key[1]))

    async def sample(
        self,
        model: ModelArg,
        *,
        n: int = 1,
        seed: int = 0,
        truncation_psi: float | None = None,
        class_labels: Labels = None,
        output: OutputArg = "float32",
        version: int | None = None,
        alias: str | None = None,
        timeout_s: float | None = None,
    ) -> GenerateResult:
        """Async `Client.sample`. Example: ``await client.sample("sprites-vae", n=8, seed=1)``"""
        req = messages.sample_request(
            self._core.ref(model, version, alias),
            n=n,
            seed=seed,
            truncation_psi=truncation_psi,
            class_labels_=class_labels,
            output=output,
        )
        return await self._generate("Sample", req, timeout_s)

    async def interpolate(
        self,
        model: ModelArg,
        *,
        seeds: Sequence[int] | None = None,
        latents: npt.ArrayLike | None = None,
        steps: int = 8,
        method: MethodArg = "slerp",
        truncation_psi: float | None = None,
        class_labels: Labels = None,
        output: OutputArg = "float32",
        version: int | None = None,
        alias: str | None = None,
        timeout_s: float | None = None,
    ) -> GenerateResult:
        """Async `Client.interpolate`. Example:
        ``await client.interpolate("sprites-vae", seeds=[1, 2, 3], steps=8)``"""
        req = messages.interpolate_request(
            self._core.ref(model, version, alias),
            seeds=seeds,
            latents=latents,
            steps=steps,
            method=method,
            truncation_psi=truncation_psi,
            class_labels_=class_labels,
            output=output,
        )
        return await self._generate("Interpolate", req, timeout_s)

    def stream_interpolate(
        self,
        model: ModelArg,
        *,
        seeds: Sequence[int] | None = None,
        latents: npt.ArrayLike | None = None,
        steps: int = 8,
        method: MethodArg = "slerp",
        truncation_psi: float | None = None,
        class_labels: Labels = None,
        output: OutputArg = "float32",
        version: int | None = None,
        alias: str | None = None,
        timeout_s: float | None = None,
    ) -> AsyncIterator[GenerateResult]:
        """Async `Client.stream_interpolate` (an async iterator; arguments are checked at once).

        Example::

            async for chunk in client.stream_interpolate("sprites-vae", seeds=[1, 2], steps=200):
                print(chunk.offset, len(chunk))
        """
        req = messages.interpolate_request(
            self._core.ref(model, version, alias),
            seeds=seeds,
            latents=latents,
            steps=steps,
            method=method,
            truncation_psi=truncation_psi,
            class_labels_=class_labels,
            output=output,
        )
        return self._stream(req, timeout_s)

    async def _stream(
        self, request: pb.InterpolateRequest, timeout_s: float | None
    ) -> AsyncIterator[GenerateResult]:
        cfg = self._core.config
        deadline = Deadline(cfg.call_timeout(timeout_s))
        attempt = 0
        while True:
            started = False
            call = self._stub().StreamInterpolate(
                request, timeout=max(deadline.remaining(), 0.001), metadata=cfg.metadata()
            )
            try:
                async for resp in call:
                    started = True
                    await self._fetch_range(resp)
                    yield self._core.result(resp)
                return
            except grpc.RpcError as err:
                error = error_from_rpc_error(err)
            finally:
                call.cancel()
            wait = cfg.backoff(attempt)
            if started or not (
                is_retryable(error.status_code)
                and attempt < cfg.retries
                and deadline.allows_wait(wait)
            ):
                raise error
            await asyncio.sleep(wait)
            attempt += 1

    async def edit(
        self,
        model: ModelArg,
        *,
        direction: str | npt.ArrayLike,
        strengths: Sequence[float] | npt.ArrayLike,
        seeds: Sequence[int] | None = None,
        latents: npt.ArrayLike | None = None,
        conditional_on: Sequence[str] = (),
        truncation_psi: float | None = None,
        class_labels: Labels = None,
        output: OutputArg = "float32",
        version: int | None = None,
        alias: str | None = None,
        timeout_s: float | None = None,
    ) -> GenerateResult:
        """Async `Client.edit`. Example:
        ``await client.edit("sprites-vae", seeds=[1], direction="scale", strengths=[-1, 1])``"""
        req = messages.edit_request(
            self._core.ref(model, version, alias),
            seeds=seeds,
            latents=latents,
            direction=direction,
            strengths=strengths,
            conditional_on=conditional_on,
            truncation_psi=truncation_psi,
            class_labels_=class_labels,
            output=output,
        )
        return await self._generate("Edit", req, timeout_s)

    async def encode(
        self,
        model: ModelArg,
        images: ImagesArg,
        *,
        class_labels: Labels = None,
        version: int | None = None,
        alias: str | None = None,
        timeout_s: float | None = None,
    ) -> EncodeResult:
        """Async `Client.encode`. Example: ``(await client.encode("sprites-vae", x)).latents``"""
        req = messages.encode_request(
            self._core.ref(model, version, alias), images=images, class_labels_=class_labels
        )
        resp: pb.EncodeResponse = await self._call(self._stub().Encode, req, timeout_s)
        return encode_result_from_proto(resp)

    async def decode(
        self,
        model: ModelArg,
        latents: npt.ArrayLike,
        *,
        class_labels: Labels = None,
        output: OutputArg = "float32",
        version: int | None = None,
        alias: str | None = None,
        timeout_s: float | None = None,
    ) -> GenerateResult:
        """Async `Client.decode`. Example: ``await client.decode("sprites-vae", z)``"""
        req = messages.decode_request(
            self._core.ref(model, version, alias),
            latents=latents,
            class_labels_=class_labels,
            output=output,
        )
        return await self._generate("Decode", req, timeout_s)

    async def list_models(self, *, timeout_s: float | None = None) -> list[ModelSummary]:
        """Async `Client.list_models`. Example: ``await client.list_models()``"""
        resp: pb.ListModelsResponse = await self._call(
            self._stub().ListModels, pb.ListModelsRequest(), timeout_s
        )
        return [model_summary_from_proto(m) for m in resp.models]

    async def get_model(
        self,
        model: ModelArg,
        *,
        version: int | None = None,
        alias: str | None = None,
        timeout_s: float | None = None,
    ) -> ModelInfo:
        """Async `Client.get_model`. Example: ``await client.get_model("digits-cvae")``"""
        req = pb.GetModelRequest(model=self._core.ref(model, version, alias).to_proto())
        info = model_info_from_proto(await self._call(self._stub().GetModel, req, timeout_s))
        self._core.remember(info)
        return info
