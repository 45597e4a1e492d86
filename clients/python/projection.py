"""Project in the SDK: find the latents of your own pictures, with streamed progress.

`Client` and `AsyncClient` get `project()` (the final result) and `project_stream()` (every
progress update, then the result) from the mixins here. Example::

    with Client("127.0.0.1:50051") as client:
        result = client.project("sprites-vae", "heart.png", steps=80)
        result.latents, result.psnr           # [1, 4], e.g. [31.2]
        for update in client.project_stream("sprites-vae", "heart.png"):
            print(update.step, update.loss)   # the last update has done=True
        client.edit("sprites-vae", latents=result.latents, direction="orientation",
                    strengths=[0, 1, 2], class_labels=result.class_labels)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import grpc
import numpy as np
import numpy.typing as npt

from latentserve.core.tensors import from_tensor
from latentserve.v1 import generator_pb2 as pb

from . import images as _images
from . import messages as fields
from .messages import ImagesArg, Labels, OutputArg
from .refs import ModelArg
from .results import LatentSpace, ResolvedModel, latent_space_from_proto, resolved_from_proto
from .transport import Retry
from .wire import model_ref

if TYPE_CHECKING:
    from PIL import Image

InitArg = Literal["auto", "encoder", "prior"]
_INITS = {"auto": pb.PROJECT_INIT_UNSPECIFIED, "encoder": pb.PROJECT_INIT_ENCODER,
          "prior": pb.PROJECT_INIT_PRIOR}
_STOPS = {pb.PROJECT_STOP_STEPS: "steps", pb.PROJECT_STOP_TIMEOUT: "timeout",
          pb.PROJECT_STOP_CONVERGED: "converged"}
ProjectImages = ImagesArg | str | Path
"""Images as for `encode`, or a path to one picture (PNG or anything Pillow reads at the
model's size)."""


@dataclass(frozen=True, eq=False)
class Projection:
    """One message of a projection: progress (`done` False) or the result (`done` True).

    `latents` are the best so far, [n, *editing shape], canonical on circular factors; `loss`
    the best loss per image (MSE + structural term; lower is better); `images` the
    reconstructions (float32/uint8 arrays) or `png`, on the result always and on progress only
    with `include_reconstruction`. The result also has `psnr` (dB) and `ssim` per image and
    `stop` ("steps", "timeout" or "converged").
    """

    model: ResolvedModel
    step: int
    steps: int
    decodes: int
    loss: npt.NDArray[np.float64]
    initial_loss: npt.NDArray[np.float64]
    latents: npt.NDArray[np.float32]
    latent_space: LatentSpace
    class_labels: list[int]
    done: bool
    images: npt.NDArray[Any] | None = None
    png: tuple[bytes, ...] = ()
    output_range: tuple[float, float] | None = None
    psnr: npt.NDArray[np.float64] | None = None
    ssim: npt.NDArray[np.float64] | None = None
    stop: str = ""

    def to_pil(self) -> list[Image.Image]:
        """The reconstructions as PIL images (needs them in this message)."""
        if self.images is not None:
            return _images.to_pil_images(self.images, self.output_range)
        if self.png:
            return _images.pngs_to_pil(list(self.png))
        raise ValueError("this message carries no reconstructions")


def projection_from_proto(resp: pb.ProjectResponse) -> Projection:
    """A Projection from one ProjectResponse."""
    latents = from_tensor(resp.latents, field="latents", dtype=np.float32)
    images = from_tensor(resp.images, field="images", ndim=4) if resp.HasField("images") \
        else None
    value_range = (resp.output_range.min, resp.output_range.max) \
        if resp.HasField("output_range") else None
    return Projection(
        model=resolved_from_proto(resp.model), step=resp.step, steps=resp.steps,
        decodes=resp.decodes, loss=np.asarray(resp.loss, np.float64),
        initial_loss=np.asarray(resp.initial_loss, np.float64), latents=latents,
        latent_space=latent_space_from_proto(resp.latent_space),
        class_labels=list(resp.class_labels), done=resp.done, images=images,
        png=tuple(resp.png), output_range=value_range,
        psnr=np.asarray(resp.psnr, np.float64) if resp.done else None,
        ssim=np.asarray(resp.ssim, np.float64) if resp.done else None,
        stop=_STOPS.get(resp.stop, ""))


def project_request(model: ModelArg, images: ProjectImages, *, class_labels: Labels = None,
                    steps: int = 0, population: int = 0, search_timeout_s: float = 0.0,
                    progress_every: int = 0, include_reconstruction: bool = False,
                    output: OutputArg = None, seed: int = 0, init: InitArg = "auto",
                    version: int | None = None, alias: str | None = None) -> pb.ProjectRequest:
    """The ProjectRequest of `project` / `project_stream`."""
    if init not in _INITS:
        raise ValueError(f"init must be one of {', '.join(_INITS)}, got {init!r}")
    if isinstance(images, str | Path):
        images = Path(images).read_bytes()
    req = pb.ProjectRequest(
        model=model_ref(model, version, alias), class_labels=fields.class_labels(class_labels),
        steps=fields.uint(steps, "steps", 32), population=fields.uint(population, "population", 32),
        timeout_s=float(search_timeout_s),
        progress_every=fields.uint(progress_every, "progress_every", 32),
        include_reconstruction=include_reconstruction, output=fields.output_format(output),
        seed=fields.uint(seed, "seed", 64), init=_INITS[init])
    found = fields.image_input(images)
    if isinstance(found, pb.Tensor):
        req.images.CopyFrom(found)
    else:
        req.png.SetInParent()
        req.png.images.extend(found)
    return req


_DOC_ARGS = """
        `images`: float [n, C, H, W] in the output range, uint8, PNG bytes, PIL images or a
        file path (n ≤ 16). `class_labels`: conditional models; None lets the server pick the
        best label per image. `steps` (0: server default 60), `population` (0: by size),
        `search_timeout_s` (stop refining then and return the best so far; 0: none),
        `progress_every`, `include_reconstruction` (progress carries images), `output`
        (reconstruction format), `seed`, `init` ("auto": the encoder if any, else the prior).
        `timeout_s` is the call's deadline (DEADLINE_EXCEEDED when it passes).
"""


class ProjectMixin:
    """`project` and `project_stream` of the blocking `Client`."""

    _config: Any
    _stub: Callable[[], Any]

    def project_stream(self, model: ModelArg, images: ProjectImages, *,
                       class_labels: Labels = None, steps: int = 0, population: int = 0,
                       search_timeout_s: float = 0.0, progress_every: int = 0,
                       include_reconstruction: bool = False, output: OutputArg = None,
                       seed: int = 0, init: InitArg = "auto", version: int | None = None,
                       alias: str | None = None,
                       timeout_s: float | None = None) -> Iterator[Projection]:
        """Every progress update of a projection, then its result (`done` True); leaving the
        loop early cancels the search on the server."""
        request = project_request(
            model, images, class_labels=class_labels, steps=steps, population=population,
            search_timeout_s=search_timeout_s, progress_every=progress_every,
            include_reconstruction=include_reconstruction, output=output, seed=seed, init=init,
            version=version, alias=alias)
        retry = Retry(self._config, self._config.call_timeout(timeout_s))
        while True:
            call = self._stub().Project(request, timeout=retry.timeout(),
                                        metadata=self._config.metadata())
            try:
                for response in call:
                    retry.started = True
                    yield projection_from_proto(response)
                return
            except grpc.RpcError as err:
                time.sleep(retry.wait(err))
            finally:
                call.cancel()

    def project(self, model: ModelArg, images: ProjectImages, *, class_labels: Labels = None,
                steps: int = 0, population: int = 0, search_timeout_s: float = 0.0,
                progress_every: int = 0, include_reconstruction: bool = False,
                output: OutputArg = None, seed: int = 0, init: InitArg = "auto",
                on_progress: Callable[[Projection], None] | None = None,
                version: int | None = None, alias: str | None = None,
                timeout_s: float | None = None) -> Projection:
        """Find the latents of `images`; returns the final result (`on_progress` sees every
        update before it). Example::

            result = client.project("digits-cvae", "seven.png", steps=100)
            result.latents, result.class_labels, result.psnr
        """
        last: Projection | None = None
        for update in self.project_stream(
                model, images, class_labels=class_labels, steps=steps, population=population,
                search_timeout_s=search_timeout_s, progress_every=progress_every,
                include_reconstruction=include_reconstruction, output=output, seed=seed,
                init=init, version=version, alias=alias, timeout_s=timeout_s):
            if on_progress is not None:
                on_progress(update)
            last = update
        if last is None or not last.done:
            raise RuntimeError("the projection stream ended without a result")
        return last


class AsyncProjectMixin:
    """`project` and `project_stream` of `AsyncClient` (awaited / async iterated)."""

    _config: Any
    _stub: Callable[[], Any]

    async def project_stream(self, model: ModelArg, images: ProjectImages, *,
                             class_labels: Labels = None, steps: int = 0, population: int = 0,
                             search_timeout_s: float = 0.0, progress_every: int = 0,
                             include_reconstruction: bool = False, output: OutputArg = None,
                             seed: int = 0, init: InitArg = "auto",
                             version: int | None = None, alias: str | None = None,
                             timeout_s: float | None = None) -> AsyncIterator[Projection]:
        """``async for update in client.project_stream(...)``: progress, then the result."""
        request = project_request(
            model, images, class_labels=class_labels, steps=steps, population=population,
            search_timeout_s=search_timeout_s, progress_every=progress_every,
            include_reconstruction=include_reconstruction, output=output, seed=seed, init=init,
            version=version, alias=alias)
        retry = Retry(self._config, self._config.call_timeout(timeout_s))
        while True:
            call = self._stub().Project(request, timeout=retry.timeout(),
                                        metadata=self._config.metadata())
            try:
                async for response in call:
                    retry.started = True
                    yield projection_from_proto(response)
                return
            except grpc.RpcError as err:
                await asyncio.sleep(retry.wait(err))
            finally:
                call.cancel()

    async def project(self, model: ModelArg, images: ProjectImages, *,
                      class_labels: Labels = None, steps: int = 0, population: int = 0,
                      search_timeout_s: float = 0.0, progress_every: int = 0,
                      include_reconstruction: bool = False, output: OutputArg = None,
                      seed: int = 0, init: InitArg = "auto",
                      on_progress: Callable[[Projection], None] | None = None,
                      version: int | None = None, alias: str | None = None,
                      timeout_s: float | None = None) -> Projection:
        """Awaitable `Client.project`: the final result."""
        last: Projection | None = None
        async for update in self.project_stream(
                model, images, class_labels=class_labels, steps=steps, population=population,
                search_timeout_s=search_timeout_s, progress_every=progress_every,
                include_reconstruction=include_reconstruction, output=output, seed=seed,
                init=init, version=version, alias=alias, timeout_s=timeout_s):
            if on_progress is not None:
                on_progress(update)
            last = update
        if last is None or not last.done:
            raise RuntimeError("the projection stream ended without a result")
        return last


ProjectMixin.project_stream.__doc__ = (ProjectMixin.project_stream.__doc__ or "") + _DOC_ARGS
ProjectMixin.project.__doc__ = (ProjectMixin.project.__doc__ or "") + _DOC_ARGS
