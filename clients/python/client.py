"""The blocking latentserve client.

Example::

    with Client("127.0.0.1:50051") as client:
        out = client.sample("sprites-vae", n=8, seed=1, truncation_psi=0.7, class_labels=[0])
        out.latents.shape, out.images.shape, out.model.version   # (8, 4) (8, 1, 64, 64) 1
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from types import TracebackType
from typing import Any

import grpc
import numpy.typing as npt
from google.protobuf.message import Message

from latentserve.v1 import generator_pb2 as pb

from . import wire
from .messages import ImagesArg, Labels, MethodArg, NoiseArg, OutputArg
from .projection import ProjectMixin
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


class Client(ProjectMixin, Connection):
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

    def __enter__(self) -> Client:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Close the channel (if one was opened); later calls raise RuntimeError."""
        channel = self._detach()
        if channel is not None:
            channel.close()

    def sample(self, model: ModelArg, *, n: int = 1, seed: int = 0,
               truncation_psi: float | None = None, class_labels: Labels = None,
               output: OutputArg = "float32",
               truncation_cutoff: int | None = None, noise: NoiseArg = None,
               noise_seed: int | None = None,
               version: int | None = None,
               alias: str | None = None, timeout_s: float | None = None) -> GenerateResult:
        """Draw `n` seeded latents (item i from SeedSequence([seed, i])) and decode them.

        Example::

            client.sample("digits-cvae", n=10, seed=0, class_labels=list(range(10)))
        """
        request = wire.sample_request(model, n=n, seed=seed, truncation_psi=truncation_psi,
                                      class_labels=class_labels, output=output,
                                      truncation_cutoff=truncation_cutoff, noise=noise,
                                      noise_seed=noise_seed,
                                      version=version, alias=alias)
        return wire.generated(self._call("Sample", request, timeout_s))

    def interpolate(self, model: ModelArg, *, seeds: Sequence[int] | None = None,
                    latents: npt.ArrayLike | None = None, steps: int = 8,
                    method: MethodArg = None, truncation_psi: float | None = None,
                    class_labels: Labels = None, output: OutputArg = "float32",
                    truncation_cutoff: int | None = None, noise: NoiseArg = None,
                    noise_seed: int | None = None,
                    version: int | None = None, alias: str | None = None,
                    timeout_s: float | None = None) -> GenerateResult:
        """Decode a path through keyframes (`seeds=` or `latents=` [k, N]).

        Frame count: `steps` frames per segment, both keyframes included, and the frame shared
        by two segments counted once, so k keyframes give (k - 1) * (steps - 1) + 1 rows
        (3 seeds, `steps=8` → 15 frames). The result's `grid()` is one row (as the CLI's strip).

        Example::

            path = client.interpolate("shapes3d", seeds=[1, 2, 3], steps=8, class_labels=[2])
            len(path), path.grid().size        # 15, one row of 15 frames
            path.save_animation("walk.gif")     # needs Pillow ([images] extra)
        """
        request = wire.interpolate_request(
            model, seeds=seeds, latents=latents, steps=steps, method=method,
            truncation_psi=truncation_psi, class_labels=class_labels, output=output,
            truncation_cutoff=truncation_cutoff, noise=noise, noise_seed=noise_seed,
            version=version, alias=alias)
        return wire.path(self._call("Interpolate", request, timeout_s))

    def stream_interpolate(self, model: ModelArg, *, seeds: Sequence[int] | None = None,
                           latents: npt.ArrayLike | None = None, steps: int = 8,
                           method: MethodArg = None, truncation_psi: float | None = None,
                           class_labels: Labels = None, output: OutputArg = "float32",
                           truncation_cutoff: int | None = None, noise: NoiseArg = None,
                           noise_seed: int | None = None,
                           version: int | None = None, alias: str | None = None,
                           timeout_s: float | None = None) -> Iterator[GenerateResult]:
        """Like `interpolate`, yielding chunks in order (`chunk.offset` = first row); the same
        frame count, (k - 1) * (steps - 1) + 1 rows in all.

        Example::

            for chunk in client.stream_interpolate("shapes3d", seeds=[1, 2], steps=200,
                                                     class_labels=[1]):
                frames[chunk.offset:chunk.offset + len(chunk)] = chunk.images
        """
        request = wire.interpolate_request(
            model, seeds=seeds, latents=latents, steps=steps, method=method,
            truncation_psi=truncation_psi, class_labels=class_labels, output=output,
            truncation_cutoff=truncation_cutoff, noise=noise, noise_seed=noise_seed,
            version=version, alias=alias)
        return self._stream("StreamInterpolate", request, self._config.call_timeout(timeout_s))

    def edit(self, model: ModelArg, *, direction: str | npt.ArrayLike,
             strengths: Sequence[float] | npt.ArrayLike, seeds: Sequence[int] | None = None,
             latents: npt.ArrayLike | None = None, conditional_on: Sequence[str] = (),
             truncation_psi: float | None = None, class_labels: Labels = None,
             output: OutputArg = "float32",
             truncation_cutoff: int | None = None, layers: tuple[int, int] | None = None,
             noise: NoiseArg = None, noise_seed: int | None = None,
             version: int | None = None,
             alias: str | None = None, timeout_s: float | None = None) -> GenerateResult:
        """Move each base latent along `direction` (a name or a vector [D] of the editing space)
        by each strength;
        rows are base-major (row = b * len(strengths) + s), and `grid()` has one row per base,
        one column per strength.

        Example::

            sweep = client.edit("sprites-vae", seeds=[1, 2], direction="scale",
                                strengths=[-2, -1, 0, 1, 2], conditional_on=["pos_y"],
                                class_labels=[0, 2])

        W+ generators: `layers=(start, end)` edits only those layers (default: the direction's
        own range, `DirectionInfo.layers`, else all); `truncation_cutoff=k` truncates seeds
        on the first k layers only. `noise=` ("const", "seeded", "none") and `noise_seed=`
        choose the noise of a decoder with noise inputs (seeded: item i's noise depends only
        on (noise_seed, i, layer)).
        """
        request = wire.edit_request(
            model, direction=direction, strengths=strengths, seeds=seeds, latents=latents,
            conditional_on=conditional_on, truncation_psi=truncation_psi,
            class_labels=class_labels, output=output,
            truncation_cutoff=truncation_cutoff, layers=layers, noise=noise, noise_seed=noise_seed,
            version=version, alias=alias)
        return wire.generated(self._call("Edit", request, timeout_s), len(request.strengths))

    def style_mix(self, model: ModelArg, *, row_seeds: Sequence[int], col_seeds: Sequence[int],
                  layers: tuple[int, int], truncation_psi: float | None = None,
                  truncation_cutoff: int | None = None, class_labels: Labels = None,
                  output: OutputArg = "float32", noise: NoiseArg = None,
                  noise_seed: int | None = None, include_sources: bool = False,
                  version: int | None = None, alias: str | None = None,
                  timeout_s: float | None = None) -> GenerateResult:
        """StyleGAN's style-mixing figure (W+ generators): row r, column c is row seed r's W+
        latent with the layers [start, end) of column seed c's; rows are row-major and
        `grid()` has one row per row seed. With `include_sources`, the R row sources and the
        C column sources come first (the result then holds R + C + R·C items).

        Example::

            mix = client.style_mix("stylish", row_seeds=[1, 2, 3], col_seeds=[4, 5],
                                   layers=(0, 4))      # coarse styles from the columns
            mix.latents.shape                          # (6, num_ws, w_dim)
        """
        request = wire.style_mix_request(
            model, row_seeds=row_seeds, col_seeds=col_seeds, layers=layers,
            truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff,
            class_labels=class_labels, output=output, noise=noise, noise_seed=noise_seed,
            include_sources=include_sources, version=version, alias=alias)
        return wire.mixed(self._call("StyleMix", request, timeout_s), request)

    def encode(self, model: ModelArg, images: ImagesArg, *, class_labels: Labels = None,
               version: int | None = None, alias: str | None = None,
               timeout_s: float | None = None) -> EncodeResult:
        """Map images (float [n, C, H, W] in the output range, uint8 [n, C, H, W], PNG bytes
        or PIL images) to posterior-mean latents of the model's editing space (W codes for
        two-stage generators). `class_labels` is required when `ModelInfo.encoder_conditional`.

        Example::

            z = client.encode("sprites-vae", out.images, class_labels=[0]).latents
        """
        request = wire.encode_request(model, images, class_labels=class_labels,
                                      version=version, alias=alias)
        return encode_result_from_proto(self._call("Encode", request, timeout_s))

    def decode(self, model: ModelArg, latents: npt.ArrayLike, *, class_labels: Labels = None,
               output: OutputArg = "float32",
               noise: NoiseArg = None, noise_seed: int | None = None,
               version: int | None = None,
               alias: str | None = None, timeout_s: float | None = None) -> GenerateResult:
        """Decode caller latents of the model's editing space, flat [n, D] or shaped
        [n, *ModelInfo.editing_shape] ([n, 4, 16, 16] for a spatial VAE, [n, num_ws, w_dim] for
        W+); results carry latents shaped the same way.

        Example::

            again = client.decode("sprites-vae", z, class_labels=[0])
        """
        request = wire.decode_request(model, latents, class_labels=class_labels, output=output,
                                      noise=noise, noise_seed=noise_seed,
                                      version=version, alias=alias)
        return wire.generated(self._call("Decode", request, timeout_s))

    def list_models(self, *, timeout_s: float | None = None) -> list[ModelSummary]:
        """The generators the service can serve, with versions and aliases.

        Example::

            [m.name for m in client.list_models()]     # ['digits-cvae', 'shapes3d', 'sprites-vae']
        """
        return wire.summaries(self._call("ListModels", pb.ListModelsRequest(), timeout_s))

    def get_model(self, model: ModelArg, *, version: int | None = None, alias: str | None = None,
                  timeout_s: float | None = None) -> ModelInfo:
        """Describe one generator version: dims, output range, classes, directions, metrics.

        Example::

            info = client.get_model("digits-cvae")
            info.num_classes, [d.name for d in info.directions]
        """
        request = pb.GetModelRequest(model=wire.model_ref(model, version, alias))
        return model_info_from_proto(self._call("GetModel", request, timeout_s))

    def _call(self, rpc: str, request: Message, timeout_s: float | None) -> Any:
        """One unary RPC under the retry policy; its response message."""
        retry = Retry(self._config, self._config.call_timeout(timeout_s))
        while True:
            try:
                return getattr(self._stub(), rpc)(request, timeout=retry.timeout(),
                                                  metadata=self._config.metadata())
            except grpc.RpcError as err:
                time.sleep(retry.wait(err))

    def _stream(self, rpc: str, request: Message, timeout_s: float) -> Iterator[GenerateResult]:
        """A server stream's chunks under the retry policy; the deadline starts at the first
        read, and leaving the loop early cancels the call."""
        retry = Retry(self._config, timeout_s)
        while True:
            call = getattr(self._stub(), rpc)(request, timeout=retry.timeout(),
                                              metadata=self._config.metadata())
            try:
                for response in call:
                    retry.started = True
                    yield wire.generated(response)
                return
            except grpc.RpcError as err:
                time.sleep(retry.wait(err))
            finally:
                call.cancel()
