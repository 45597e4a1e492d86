"""The blocking latentserve client.

Example::

    with Client("127.0.0.1:50051") as client:
        out = client.sample("sprites-vae", n=8, seed=1, truncation_psi=0.7)
        out.latents.shape, out.images.shape, out.model.version   # (8, 10) (8, 1, 64, 64) 1
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Sequence
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


class Client:
    """Blocking client of a latentserve GeneratorService; thread-safe, connects on first call.

    Example::

        with Client("127.0.0.1:50051", timeout_s=10.0) as client:
            info = client.get_model("sprites-vae")
            out = client.edit("sprites-vae", seeds=[1, 2], direction="scale",
                              strengths=[-2, -1, 0, 1, 2], conditional_on=["pos_x"])

    Failed calls raise `LatentServeClientError` subclasses; UNAVAILABLE is retried
    `retries` times with exponential backoff inside the call's deadline.
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
        self._channel: grpc.Channel | None = None
        self._stub_obj: pb_grpc.GeneratorServiceStub | None = None
        self._lock = threading.Lock()

    @property
    def address(self) -> str:
        """The `host:port` this client talks to."""
        return self._core.config.address

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
            self._core.closed = True
            if self._channel is not None:
                self._channel.close()
            self._channel = self._stub_obj = None

    def _stub(self) -> pb_grpc.GeneratorServiceStub:
        with self._lock:
            self._core.check_open()
            if self._stub_obj is None:
                self._channel = self._core.make_channel(aio=False)
                self._stub_obj = pb_grpc.GeneratorServiceStub(self._channel)
            return self._stub_obj

    def _call(self, rpc: Callable[..., R], request: Any, timeout_s: float | None) -> R:
        cfg = self._core.config
        deadline = Deadline(cfg.call_timeout(timeout_s))
        attempt = 0
        while True:
            try:
                return rpc(
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
            time.sleep(wait)
            attempt += 1

    def _generate(self, name: str, request: Any, timeout_s: float | None) -> GenerateResult:
        resp: pb.GenerateResponse = self._call(getattr(self._stub(), name), request, timeout_s)
        self._fetch_range(resp)
        return self._core.result(resp)

    def _fetch_range(self, resp: pb.GenerateResponse) -> None:
        key = self._core.needs_range(resp)
        if key is not None:
            # the call succeeded; only to_pil() of float images needs the range
            with contextlib.suppress(LatentServeClientError):
                self.get_model(ModelRef(key[0], version=key[1]))

    def sample(
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
        """Draw `n` seeded latents (item i from SeedSequence([seed, i])) and decode them.

        Example::

            client.sample("digits-cvae", n=10, seed=0, class_labels=list(range(10)))
        """
        req = messages.sample_request(
            self._core.ref(model, version, alias),
            n=n,
            seed=seed,
            truncation_psi=truncation_psi,
            class_labels_=class_labels,
            output=output,
        )
        return self._generate("Sample", req, timeout_s)

    def interpolate(
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
        """Decode a path through keyframes (`seeds=` or `latents=` [k, N]), `steps` frames per
        segment: (k - 1) * (steps - 1) + 1 rows.

        Example::

            path = client.interpolate("sprites-vae", seeds=[1, 2, 3], steps=8, method="slerp")
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
        return self._generate("Interpolate", req, timeout_s)

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
    ) -> Iterator[GenerateResult]:
        """Like `interpolate`, yielding chunks in order (`chunk.offset` = first row).

        Example::

            for chunk in client.stream_interpolate("sprites-vae", seeds=[1, 2], steps=200):
                frames[chunk.offset:chunk.offset + len(chunk)] = chunk.images
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

    def _stream(
        self, request: pb.InterpolateRequest, timeout_s: float | None
    ) -> Iterator[GenerateResult]:
        cfg = self._core.config
        deadline = Deadline(cfg.call_timeout(timeout_s))
        attempt = 0
        while True:
            started = False
            call = self._stub().StreamInterpolate(
                request, timeout=max(deadline.remaining(), 0.001), metadata=cfg.metadata()
            )
            try:
                for resp in call:
                    started = True
                    self._fetch_range(resp)
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
            time.sleep(wait)
            attempt += 1

    def edit(
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
        """Move each base latent along `direction` (a name or a vector [N]) by each strength;
        rows are base-major (row = b * len(strengths) + s).

        Example::

            sweep = client.edit("sprites-vae", seeds=[1, 2], direction="scale",
                                strengths=[-2, -1, 0, 1, 2], conditional_on=["pos_x"])
        """
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
        return self._generate("Edit", req, timeout_s)

    def encode(
        self,
        model: ModelArg,
        images: ImagesArg,
        *,
        class_labels: Labels = None,
        version: int | None = None,
        alias: str | None = None,
        timeout_s: float | None = None,
    ) -> EncodeResult:
        """Map images (float [n, C, H, W] in the output range, uint8 [n, C, H, W], PNG bytes
        or PIL images) to posterior-mean latents.

        Example::

            z = client.encode("sprites-vae", out.images).latents
        """
        req = messages.encode_request(
            self._core.ref(model, version, alias), images=images, class_labels_=class_labels
        )
        resp: pb.EncodeResponse = self._call(self._stub().Encode, req, timeout_s)
        return encode_result_from_proto(resp)

    def decode(
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
        """Decode caller latents [n, N].

        Example::

            again = client.decode("sprites-vae", z)
        """
        req = messages.decode_request(
            self._core.ref(model, version, alias),
            latents=latents,
            class_labels_=class_labels,
            output=output,
        )
        return self._generate("Decode", req, timeout_s)

    def list_models(self, *, timeout_s: float | None = None) -> list[ModelSummary]:
        """The generators the service can serve, with versions and aliases.

        Example::

            [m.name for m in client.list_models()]     # ['digits-cvae', 'sprites-vae']
        """
        resp: pb.ListModelsResponse = self._call(
            self._stub().ListModels, pb.ListModelsRequest(), timeout_s
        )
        return [model_summary_from_proto(m) for m in resp.models]

    def get_model(
        self,
        model: ModelArg,
        *,
        version: int | None = None,
        alias: str | None = None,
        timeout_s: float | None = None,
    ) -> ModelInfo:
        """Describe one generator version: dims, output range, classes, directions, metrics.

        Example::

            info = client.get_model("digits-cvae")
            info.num_classes, [d.name for d in info.directions]
        """
        req = pb.GetModelRequest(model=self._core.ref(model, version, alias).to_proto())
        info = model_info_from_proto(self._call(self._stub().GetModel, req, timeout_s))
        self._core.remember(info)
        return info
